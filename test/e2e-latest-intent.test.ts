/**
 * Latest intent wins, end to end: 20 hook calls for one IP fired at once in
 * node B's namespace, a mix of "move it here" (`move --interface eth0`) and
 * "release it" (`release`), as keepalived fires notify scripts concurrently.
 * They must all exit 0, the ones overtaken while they waited saying
 * `superseded`, and the IP must end as the newest call wanted: on B's eth0
 * (and routed to B by the OVH emulator) after a move, off eth0 after a
 * release. Which call is newest is read from each call's own debug line
 * (`lock: call #N`). And a newer call that wants something else does not
 * wait for a holder stuck on a slow API operation: the holder stands down at
 * its next poll, its accepted write left to the API. Run `npm run build`
 * first (`npm test` does).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RunningOvhEmulator, startOvhEmulator } from '../emulator/ovh/server.js'
import { ipmove, ipmoveArgv, isolatedEnv, json, requireBuild } from './helpers/cli.js'
import { startNamespacedEmulator } from './rig/emulator.js'
import { createRig, describeRoot, type Exec, type Rig } from './rig/netns.js'

const IP = '203.0.113.10'
const CALLS = 20
const ROUNDS = 3
const MOVE = ['move', '--project', 't18s', '--ip', IP, '--instance', 'bi-edge-sbg-2', '--interface', 'eth0']
const RELEASE = ['release', '--ip', IP, '--interface', 'eth0']

type Intent = 'move' | 'release'

/** Resolves once `done()` holds, polling; fails after `ms`. */
async function until(what: string, done: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** A different mix of intents each round, both kinds in every one. */
function intents(round: number): Intent[] {
  let seed = 0x9e3779b9 ^ (round + 1)
  const next = () => {
    seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0
    return seed / 2 ** 32
  }
  const mix = Array.from({ length: CALLS }, (): Intent => (next() < 0.5 ? 'move' : 'release'))
  mix[round % CALLS] = 'move'
  mix[(round + 1) % CALLS] = 'release'
  return mix
}

describeRoot('latest intent wins: 20 concurrent hook calls for one IP, built CLI, OVH emulator', () => {
  let rig: Rig
  let dir: string

  beforeAll(async () => {
    requireBuild()
    rig = await createRig('lat')
    dir = mkdtempSync(join(tmpdir(), 'ipmove-lat-'))
    writeFileSync(join(dir, 'ipmove.conf'), '', { mode: 0o600 })
  })
  afterAll(async () => {
    await rig?.destroy()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it(`ends in the state of the last call, with at most 2 API writes, all exiting 0 (${ROUNDS} rounds)`, async () => {
    const b = rig.b
    const rounds: string[] = []
    for (let round = 0; round < ROUNDS; round++) {
      // A fresh emulator each round: the IP starts on bi-edge-sbg-1, so a move here is a write.
      const emulator = await startNamespacedEmulator(b, dir)
      const env = {
        ...emulator.env,
        IPMOVE_CONFIG: join(dir, 'ipmove.conf'),
        IPMOVE_CACHE_DIR: join(dir, 'cache'),
        IPMOVE_LOCK_DIR: join(dir, 'locks'),
        IPMOVE_DEBUG: '1',
      }
      try {
        const mix = intents(round)
        const runs: Exec[] = await Promise.all(
          mix.map((intent) =>
            rig.run(b, ipmoveArgv([...(intent === 'move' ? MOVE : RELEASE), '--json']), {
              env,
              timeoutMs: 60_000,
            }),
          ),
        )
        const calls = runs.map((run, i) => {
          expect(run.code, `call ${i} (${mix[i]}): ${run.stderr}`).toBe(0)
          const arrival = /lock: call #(\d+) for /.exec(run.stderr)?.[1]
          expect(arrival, run.stderr).toBeDefined()
          const json = JSON.parse(run.stdout) as { ok: boolean; outcome: string }
          expect(json.ok).toBe(true)
          return { intent: mix[i]!, arrival: Number(arrival), outcome: json.outcome }
        })
        expect(new Set(calls.map((c) => c.arrival)).size).toBe(CALLS)
        const last = calls.reduce((a, c) => (c.arrival > a.arrival ? c : a))
        expect(last.outcome).not.toBe('superseded')
        // The queue was real: calls stood down for newer ones.
        expect(calls.filter((c) => c.outcome === 'superseded').length).toBeGreaterThan(0)

        const carried = (await rig.addresses(b)).some((a) => a.local === IP)
        expect(carried, `round ${round}: the last call was a ${last.intent}`).toBe(last.intent === 'move')
        const writes = emulator.requests().filter((l) => /POST \S+\/attach -> 200/.test(l))
        expect(writes.length).toBeLessThanOrEqual(2)
        if (last.intent === 'move') {
          expect(writes.length).toBeGreaterThan(0)
          const status = await rig.run(b, ipmoveArgv(['status', '--project', 't18s', '--ip', IP, '--json']), {
            env,
          })
          expect(status.code, status.stderr).toBe(0)
          expect(JSON.parse(status.stdout)).toMatchObject({ holder: { name: 'bi-edge-sbg-2' } })
        }
        const superseded = calls.filter((c) => c.outcome === 'superseded').length
        rounds.push(`last ${last.intent}, ${superseded} superseded, ${writes.length} write(s)`)
      } finally {
        await emulator.stop()
        await rig.run(b, ['ip', 'addr', 'del', `${IP}/32`, 'dev', 'eth0'])
      }
    }
    console.log(`latest intent: ${rounds.join('; ')}`)
  }, 120_000)

  it('a release does not wait for a move stuck on a slow OVH operation: the move stands down and takes its address back', async () => {
    const b = rig.b
    // The release must arrive while the operation runs: a CLI took seconds to start on a busy machine, and
    // with an 8 s operation the move sometimes ended `moved` before the release was there.
    const OPERATION_MS = 20_000
    const emulator = await startNamespacedEmulator(b, dir, [], OPERATION_MS)
    const env = {
      ...emulator.env,
      IPMOVE_CONFIG: join(dir, 'ipmove.conf'),
      IPMOVE_CACHE_DIR: join(dir, 'cache'),
      IPMOVE_LOCK_DIR: join(dir, 'locks'),
    }
    const attaches = () => emulator.requests().filter((l) => /POST \S+\/attach -> 200/.test(l))
    const carried = async () => (await rig.addresses(b)).some((a) => a.local === IP)
    try {
      const move = rig.run(b, ipmoveArgv([...MOVE, '--json']), { env, timeoutMs: 60_000 })
      await until(
        'the move to be accepted and the address added',
        async () => attaches().length > 0 && (await carried()),
      )
      const started = Date.now()
      const release = await rig.run(b, ipmoveArgv([...RELEASE, '--json']), { env, timeoutMs: 60_000 })
      const releaseMs = Date.now() - started
      const moved = await move
      expect(moved.code, moved.stderr).toBe(0)
      expect(JSON.parse(moved.stdout)).toMatchObject({
        ok: true,
        outcome: 'superseded',
        changed: true,
        to: { name: 'bi-edge-sbg-2' },
      })
      expect(release.code, release.stderr).toBe(0)
      // The move took back the address it had added, so the release found nothing left to drop.
      expect(JSON.parse(release.stdout)).toMatchObject({ ok: true, outcome: 'absent' })
      expect(await carried()).toBe(false)
      // Neither waited for the API: its operation still runs, and was the only write.
      const status = await rig.run(b, ipmoveArgv(['status', '--project', 't18s', '--ip', IP, '--json']), {
        env,
      })
      expect(status.code, status.stderr).toBe(0)
      expect(JSON.parse(status.stdout)).toMatchObject({ pending: true })
      expect(attaches()).toHaveLength(1)
      console.log(
        `release behind a move stuck on a ${OPERATION_MS / 1000} s operation: done in ${releaseMs} ms`,
      )
    } finally {
      await emulator.stop()
      await rig.run(b, ['ip', 'addr', 'del', `${IP}/32`, 'dev', 'eth0'])
    }
  }, 60_000)
})

describe('a newer call with another intent stops a holder stuck on a slow API operation', () => {
  /** Long enough that waiting it out would show: the holder must stand down well before. */
  const TASK_MS = 6_000
  let emulator: RunningOvhEmulator

  beforeAll(async () => {
    requireBuild()
    emulator = await startOvhEmulator({ pendingMs: TASK_MS, thisHost: 'bi-edge-sbg-2' })
  })
  afterAll(async () => {
    await emulator?.close()
  })

  it('a move elsewhere: the holder stands down after its accepted write, with no second write', async () => {
    const env = isolatedEnv(emulator.env) // one host: one lock directory for both calls
    const attaches = () => emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/attach'))
    const failoverIp = () => emulator.state.projects[0]?.failoverIps.find((f) => f.ip === IP)
    const args = (instance: string) => ['--project', 't18s', '--ip', IP, '--instance', instance]

    // As a hook runs it, in text (the rig's test below reads the same stand-down as JSON).
    const holder = ipmove(args('bi-edge-sbg-2'), env)
    await until('the first move to be accepted', () => attaches().some((r) => r.status === 200))
    // The newer hook moves the IP elsewhere, not waiting for the end of its own move.
    const newer = ipmove([...args('bi-edge-sbg-1'), '--no-wait', '--json'], env)
    const first = await holder
    // The holder did not wait its operation out.
    expect(failoverIp()?.status, 'the API still works on the first move').toBe('operationPending')
    expect(first.code, first.stderr).toBe(0)
    expect(first.stdout).toMatch(
      /^a newer ipmove call for 203\.0\.113\.10\/32 \(move to bi-edge-sbg-1\) arrived: standing down \(superseded\); our move to bi-edge-sbg-2 \S+ was accepted; the API is still working on it$/m,
    )

    const second = await newer
    expect(second.code, second.stderr).toBe(0)
    expect(json(second)).toMatchObject({ ok: true, outcome: 'accepted', to: { name: 'bi-edge-sbg-1' } })
    // The newer call waited out the first operation (one at a time, as the API wants), then wrote
    // once; the holder never wrote again.
    expect(attaches().map((r) => r.status)).toEqual([200, 200])
    const sbg1 = emulator.state.projects[0]?.instances.find((i) => i.name === 'bi-edge-sbg-1')?.id
    expect(failoverIp()?.pending?.target).toBe(sbg1)
  }, 60_000)
})
