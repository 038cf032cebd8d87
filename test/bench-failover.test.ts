/**
 * ipmove watch against keepalived in one rig, on one link death: the bench's
 * own comparison (`scripts/bench-watch.mjs failover`), one round of each
 * with the defaults, so the claim the README makes is checked on every run.
 * `npm run bench:failover` gives the figures with more rounds and the fast
 * profile against VRRPv3 with 100 ms adverts.
 */
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'
import { requireBuild } from './helpers/cli.js'
import { describeRoot, exec } from './rig/netns.js'

const BENCH = fileURLToPath(new URL('../scripts/bench-watch.mjs', import.meta.url))

interface Figure {
  label: string
  medianMs: number
  samplesMs: number[]
}

describeRoot('ipmove watch against keepalived, same rig and link death', () => {
  it("defaults: the client's ping gap is shorter than with keepalived's default (advert_int 1)", async () => {
    requireBuild()
    const run = await exec([process.execPath, BENCH, 'failover', 'defaults', '--json'], {
      env: { BENCH_WATCH_RUNS: '1' },
      timeoutMs: 80_000,
    })
    expect(run.code, run.stderr).toBe(0)
    const { comparisons } = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as {
      comparisons: Array<{ ipmove: Figure; keepalived: Figure & { version: string }; ratio: number }>
    }
    const [defaults] = comparisons
    expect(defaults!.keepalived.version).toMatch(/^Keepalived v\d/)
    // keepalived's backup waits three adverts plus its skew after the last one it heard: over 2 s, whatever
    // the phase of the adverts when the link died. A smaller figure means the measure is broken.
    expect(defaults!.keepalived.medianMs).toBeGreaterThan(2000)
    expect(defaults!.ipmove.medianMs).toBeGreaterThan(0)
    expect(defaults!.ipmove.medianMs).toBeLessThan(defaults!.keepalived.medianMs)
    console.log(
      `client ping gap: ipmove watch ${defaults!.ipmove.medianMs} ms, keepalived ${defaults!.keepalived.medianMs} ms (${defaults!.ratio}x)`,
    )
  }, 90_000)
}, ['keepalived'])
