/**
 * End to end: the built CLI (bin/run.js → dist/) as a hook runs it, against the
 * OVH emulator over real HTTPS with the emulator's own CA. Run `npm run build`
 * first (`npm test` does).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { OVH_IDS } from '../emulator/ovh/fixture.js'
import { type RunningOvhEmulator, startOvhEmulator } from '../emulator/ovh/server.js'
import { ipmove, isolatedEnv, json, requireBuild } from './helpers/cli.js'

const IP = '203.0.113.10'

/** Whichever of the two edge nodes does not hold the IP now, so that a move must write. */
async function otherInstance(): Promise<string> {
  const status = json(await ipmove(['status', '--project', 't18s', '--ip', IP, '--json'], env()))
  return (status.holder as { name: string }).name === 'bi-edge-sbg-1' ? 'bi-edge-sbg-2' : 'bi-edge-sbg-1'
}

let emulator: RunningOvhEmulator
let baseEnv: NodeJS.ProcessEnv

const env = (extra: Record<string, string> = {}) => isolatedEnv({ ...baseEnv, ...extra })

beforeAll(async () => {
  requireBuild()
  emulator = await startOvhEmulator({ pendingMs: 300, thisHost: 'bi-edge-sbg-2' })
  baseEnv = emulator.env
})

afterAll(async () => {
  await emulator?.close()
})

describe('ipmove against the OVH emulator', () => {
  it('moves with ipmoveOvh’s spelling, then is a no-op the second time', async () => {
    const e = env()
    const first = await ipmove(['-project', 't18s', '-ip', IP, '-instance', 'bi-edge-sbg-2'], e)
    expect(first.stderr).toBe('')
    expect(first.code).toBe(0)
    expect(first.stdout).toMatch(/moved from bi-edge-sbg-1 .* to bi-edge-sbg-2 .* in \d+\.\d s/)

    const writesBefore = emulator.requests.filter((r) => r.method === 'POST').length
    const second = await ipmove(['--project', 't18s', '--ip', IP, '--instance', 'bi-edge-sbg-2', '--json'], e)
    expect(second.code).toBe(0)
    expect(json(second)).toMatchObject({ ok: true, outcome: 'in-place', changed: false, requests: 1 })
    expect(emulator.requests.filter((r) => r.method === 'POST').length).toBe(writesBefore)
  })

  it('moves back to this host when --instance is omitted (metadata service)', async () => {
    const run = await ipmove(
      ['--project', 't18s', '--ip', IP, '--instance', 'bi-edge-sbg-1', '--json'],
      env(),
    )
    expect(json(run)).toMatchObject({ ok: true, to: { name: 'bi-edge-sbg-1' } })
    const back = await ipmove(['--project', 't18s', '--ip', IP, '--json'], env())
    expect(back.code).toBe(0)
    expect(json(back)).toMatchObject({
      outcome: 'moved',
      to: { name: 'bi-edge-sbg-2' },
      from: { name: 'bi-edge-sbg-1' },
    })
  })

  it('takes ipmoveOvh’s -ip-id instead of -ip', async () => {
    const run = await ipmove(
      ['-project', 't18s', '-ip-id', OVH_IDS.failoverIps.v4, '-instance', 'bi-edge-sbg-1', '--json'],
      env(),
    )
    expect(run.stderr).toBe('')
    expect(json(run)).toMatchObject({ ok: true, ip: `${IP}/32`, to: { name: 'bi-edge-sbg-1' } })
  })

  it('serialises two hooks moving one IP on one host: one writes, the other finds it in place or stands down', async () => {
    const e = env() // one host: one lock directory for both runs
    const target = await otherInstance()
    const posts = () => emulator.requests.filter((r) => r.method === 'POST').length
    const before = posts()
    const args = ['--project', 't18s', '--ip', IP, '--instance', target, '--json']
    const runs = await Promise.all([ipmove(args, e), ipmove(args, e)])
    expect(runs.map((run) => run.code)).toEqual([0, 0])
    const outcomes = runs.map((run) => json(run).outcome).sort()
    // The later arrival either waits and finds the IP in place, or, when it arrives while the
    // first still waits for the lock, the first stands down (latest intent wins).
    expect([
      ['in-place', 'moved'],
      ['moved', 'superseded'],
    ]).toContainEqual(outcomes)
    expect(posts() - before).toBe(1)
  })

  it('status reports the holder as JSON', async () => {
    const run = await ipmove(['status', '--project', 't18s', '--ip', IP, '--json'], env())
    expect(run.code).toBe(0)
    const result = json(run)
    // This test host never carries the emulator's address.
    expect(result).toMatchObject({
      ok: true,
      kind: 'cloud',
      pending: false,
      local: { carried: false, interfaces: [] },
    })
    const human = await ipmove(['status', '--project', 't18s', '--ip', IP], env())
    expect(human.stdout).toMatch(/^this host does not carry 203\.0\.113\.10\/32$/m)
    expect((result.holder as { name: string }).name).toMatch(/^bi-edge-sbg-[12]$/)
  })

  it('moves a classic failover IP through /ip/{block}/move and its task', async () => {
    const e = env()
    const run = await ipmove(
      ['--ip', '198.51.100.7/32', '--instance', 'ns3000002.ip-198-51-100.eu', '--json'],
      e,
    )
    expect(run.stderr).toBe('')
    expect(json(run)).toMatchObject({
      ok: true,
      kind: 'classic',
      outcome: 'moved',
      to: { id: 'ns3000002.ip-198-51-100.eu' },
    })
  })

  it('exits 3 when the consumer key may not write, naming the refused call', async () => {
    const run = await ipmove(
      ['--project', 't18s', '--ip', IP, '--instance', await otherInstance(), '--json'],
      env({ OVH_CONSUMER_KEY: 'emulator-ck-readonly' }),
    )
    expect(run.code).toBe(3)
    const result = json(run)
    expect(result).toMatchObject({ ok: false, error: { code: 'AUTH', exitCode: 3 } })
    expect(run.stderr).toMatch(/^ipmove: error: OVH API POST .*attach: This call has not been granted/)
    expect(run.stderr.trim().split('\n')).toHaveLength(1)
  })

  it('exits 3 on a wrong secret, and never prints it', async () => {
    const secret = 'not-the-real-secret-42'
    const run = await ipmove(
      ['--project', 't18s', '--ip', IP, '--instance', 'bi-edge-sbg-1', '--json', '--debug'],
      env({ OVH_APPLICATION_SECRET: secret }),
    )
    expect(run.code).toBe(3)
    expect(run.stdout + run.stderr).not.toContain(secret)
    expect(run.stdout + run.stderr).not.toContain(emulator.env.OVH_CONSUMER_KEY)
  })

  it('exits 4 for an unknown instance and for an ambiguous one', async () => {
    const missing = await ipmove(['--project', 't18s', '--ip', IP, '--instance', 'nope'], env())
    expect(missing.code).toBe(4)
    const twin = await ipmove(['--project', 't18s', '--ip', IP, '--instance', 'twin'], env())
    expect(twin.code).toBe(4)
    expect(twin.stderr).toMatch(/ambiguous/)
  })

  it('exits 2 on bad input before any API call', async () => {
    const before = emulator.requests.length
    for (const args of [
      ['--ip', '203.0.113.999'],
      ['--ip', IP, '--instance', '$(reboot)'],
      ['--ip', IP, '--project', 'a'.repeat(5000)],
      ['--ip', IP, '--timeout', 'soon'],
      ['move'],
      ['--ip', IP, '--no-such-flag'],
    ]) {
      const run = await ipmove(args, env())
      expect(run.code, args.join(' ')).toBe(2)
      expect(run.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1)
    }
    expect(emulator.requests.length).toBe(before)
  })

  it('refuses to run with TLS checks turned off (exit 2), before any request, for OVH and AWS', async () => {
    const before = emulator.requests.length
    // Without the emulator's CA: only the turned-off checks would let the request through.
    const { NODE_EXTRA_CA_CERTS: _ca, ...untrusting } = env({ NODE_TLS_REJECT_UNAUTHORIZED: '0' })
    for (const args of [
      ['--project', 't18s', '--ip', IP, '--instance', 'bi-edge-sbg-2'],
      ['status', '--project', 't18s', '--ip', IP],
      ['--provider', 'aws', '--ip', IP, '--instance', 'i-0123456789abcdef0'],
    ]) {
      const run = await ipmove(args, untrusting)
      expect(run.code, args.join(' ')).toBe(2)
      expect(run.stderr).toBe(
        'ipmove: error: NODE_TLS_REJECT_UNAUTHORIZED=0 turns off TLS certificate checks, so anyone on the path could take the API credentials; unset it (to trust a test CA, use NODE_EXTRA_CA_CERTS)\n',
      )
    }
    expect(emulator.requests.length).toBe(before)
  })

  it('exits 5 when the move outlasts --timeout', async () => {
    const slow = await startOvhEmulator({ pendingMs: 60_000 })
    try {
      const run = await ipmove(
        ['--project', 't18s', '--ip', IP, '--instance', 'bi-edge-sbg-2', '--timeout', '1.5'],
        env(slow.env),
      )
      expect(run.code).toBe(5)
      expect(run.stderr).toMatch(/timed out/)
    } finally {
      await slow.close()
    }
  })

  it('exits 8 when the API keeps answering 503, after retrying', async () => {
    const failing = await startOvhEmulator({ faults: [] })
    failing.addFault('path=/cloud/project,status=503,times=0')
    try {
      const run = await ipmove(
        ['--project', 't18s', '--ip', IP, '--instance', 'bi-edge-sbg-2'],
        env(failing.env),
      )
      expect(run.code).toBe(8)
      expect(failing.requests.filter((r) => r.path.endsWith('/cloud/project')).length).toBe(5)
    } finally {
      await failing.close()
    }
  })

  it('rides out a reset and a 503 on the way', async () => {
    const flaky = await startOvhEmulator({ pendingMs: 200 })
    flaky.addFault('path=/cloud/project,reset')
    flaky.addFault('path=/cloud/project/*/ip/failover,status=503,retry-after=1')
    try {
      const run = await ipmove(
        ['--project', 't18s', '--ip', IP, '--instance', 'bi-edge-sbg-2', '--json'],
        env(flaky.env),
      )
      expect(run.stderr).toBe('')
      expect(json(run)).toMatchObject({ ok: true, outcome: 'moved' })
    } finally {
      await flaky.close()
    }
  })

  it('recovers from a server clock ±2 min and ±1 h off, cold and with a stale cached delta', async () => {
    const args = ['status', '--project', 't18s', '--ip', IP, '--json']
    const times = () => emulator.requests.filter((r) => r.path.endsWith('/auth/time')).length
    const refusals = () =>
      emulator.requests.filter((r) => r.status === 400 && r.responseBody.includes('QUERY_TIME_OUT')).length
    /** A status run with the server's clock `skew` s ahead; what it cost in clock repairs. */
    const runAt = async (skew: number, e: NodeJS.ProcessEnv) => {
      emulator.state.clockSkewSeconds = skew
      const [t, r] = [times(), refusals()]
      const run = await ipmove(args, e)
      expect(run.stderr).toBe('')
      expect(json(run)).toMatchObject({ ok: true, kind: 'cloud' })
      return { times: times() - t, refused: refusals() - r > 0 }
    }
    try {
      for (const skew of [120, -120, 3600, -3600]) {
        const e = env()
        expect(await runAt(skew, e)).toEqual({ times: 1, refused: true }) // cold
        expect(await runAt(skew, e)).toEqual({ times: 0, refused: false }) // the cached delta is right
        expect(await runAt(-skew, e)).toEqual({ times: 1, refused: true }) // and now stale
      }
    } finally {
      emulator.state.clockSkewSeconds = 0
    }
  })

  it('sends the attach at most twice when it keeps failing with 502, then exits 8', async () => {
    const failing = await startOvhEmulator({ pendingMs: 200 })
    failing.addFault('path=/cloud/project/*/ip/failover/*/attach,method=POST,status=502,times=0')
    try {
      const run = await ipmove(
        ['--project', 't18s', '--ip', IP, '--instance', 'bi-edge-sbg-2', '--timeout', '20', '--json'],
        env(failing.env),
      )
      expect(run.code).toBe(8)
      expect(json(run)).toMatchObject({ ok: false, error: { code: 'UNREACHABLE' } })
      expect(failing.requests.filter((r) => r.method === 'POST').length).toBe(2)
    } finally {
      await failing.close()
    }
  })

  it('authenticates with an OAuth2 service account', async () => {
    const e = env({ OVH_CLIENT_ID: 'emulator-client', OVH_CLIENT_SECRET: 'emulator-client-secret' })
    delete e.OVH_APPLICATION_KEY
    delete e.OVH_APPLICATION_SECRET
    delete e.OVH_CONSUMER_KEY
    const run = await ipmove(['status', '--project', 't18s', '--ip', IP, '--json'], e)
    expect(run.stderr).toBe('')
    expect(json(run)).toMatchObject({ ok: true, kind: 'cloud' })
  })
})
