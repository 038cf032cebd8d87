/**
 * The emulators' control API (/_emulator/ on their own port) and `ipmove emulate
 * control`, as a user's CI drives them: the built CLI runs `ipmove emulate NAME`
 * in its own process, and the test speaks plain HTTP(S) to it. Run `npm run build`
 * first (`npm test` does).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defaultEc2Fixture, WEB1, WEB2 } from '../emulator/aws/fixture.js'
import { defaultDigitalOceanFixture } from '../emulator/digitalocean/fixture.js'
import { defaultHetznerFixture } from '../emulator/hetzner/fixture.js'
import { startHetznerEmulator } from '../emulator/hetzner/server.js'
import { defaultRobotFixture } from '../emulator/hetzner-robot/fixture.js'
import { defaultOvhFixture } from '../emulator/ovh/fixture.js'
import { defaultScalewayFixture } from '../emulator/scaleway/fixture.js'
import { ipmove, isolatedEnv, json, requireBuild } from './helpers/cli.js'
import { type EmulatorProcess, httpCall, spawnEmulator } from './helpers/emulator-process.js'

const dir = mkdtempSync(join(tmpdir(), 'ipmove-control-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
beforeAll(() => requireBuild())

/** Each emulator, and the variable of its env holding a secret that must not leak. */
const EMULATORS = [
  ['ovh', 'OVH_APPLICATION_SECRET'],
  ['aws', 'AWS_SECRET_ACCESS_KEY'],
  ['hetzner', 'HCLOUD_TOKEN'],
  ['hetzner-robot', 'HROBOT_PASSWORD'],
  ['digitalocean', 'DIGITALOCEAN_ACCESS_TOKEN'],
  ['scaleway', 'SCW_SECRET_KEY'],
] as const

/** Faults given at start: never matched, so the counts stay as they began. */
const START_FAULT = 'path=/nowhere/*,status=500,times=0'

describe.each(EMULATORS)('ipmove emulate %s: the control API over real HTTP', (name, secretVar) => {
  let emu: EmulatorProcess
  const control = (method: string, path: string, body?: unknown) =>
    httpCall(method, `${emu.env.IPMOVE_EMULATOR_URL}/_emulator/${path}`, { caFile: emu.caFile, body })

  beforeAll(async () => {
    emu = await spawnEmulator([name, '--port', '0', '--pending-ms', '250', '--fault', START_FAULT])
  })
  afterAll(async () => {
    await emu?.stop()
  })

  it('shows the state with the faults, the pending delay and the request count, and no credentials', async () => {
    expect(emu.env.IPMOVE_EMULATOR_URL).toMatch(/^https?:\/\/127\.0\.0\.1:\d+$/)
    const state = await control('GET', 'state')
    expect(state.status).toBe(200)
    expect(state.headers['content-type']).toBe('application/json')
    expect(state.json).toMatchObject({
      faults: [{ spec: `${START_FAULT}`, left: 'forever' }],
      pendingMs: 250,
      requests: 0,
    })
    expect(emu.env[secretVar]).toBeTruthy()
    expect(state.text).not.toContain(emu.env[secretVar])
  })

  it('adds a fault that takes the next API request, which the log then shows; control calls are not logged', async () => {
    const added = await control('POST', 'faults', { fault: 'path=/**,status=503' })
    expect(added.status).toBe(201)
    expect(added.json.faults).toEqual([
      { spec: START_FAULT, left: 'forever' },
      { spec: 'path=/**,status=503,times=1', left: 1 },
    ])
    // A client's request with the emulator's secret as its credential.
    const api = await httpCall('GET', emu.url, {
      caFile: emu.caFile,
      headers: { Authorization: `Bearer ${emu.env[secretVar]}` },
    })
    expect(api.status).toBe(503)
    const faults = await control('GET', 'faults')
    expect(faults.json.faults[1]).toEqual({ spec: 'path=/**,status=503,times=1', left: 0 })
    const log = await control('GET', 'requests')
    expect(log.status).toBe(200)
    expect(log.json.requests).toHaveLength(1)
    expect(log.json.requests[0]).toMatchObject({
      method: 'GET',
      status: 503,
      fault: 'path=/**,status=503,times=1',
    })
    expect(log.text).not.toContain(emu.env[secretVar])
    expect((await control('DELETE', 'requests')).json).toEqual({ requests: [] })
    expect((await control('GET', 'requests')).json.requests).toEqual([])
    expect((await control('DELETE', 'faults')).json).toEqual({ faults: [] })
    expect((await httpCall('GET', emu.url, { caFile: emu.caFile })).status).not.toBe(503)
  })

  it('refuses what it cannot do with one JSON error line and the right status', async () => {
    const bad = await control('POST', 'faults', { fault: 'path=/x,explode' })
    expect(bad.status).toBe(400)
    expect(bad.json.error).toMatch(/^fault "path=\/x,explode": unknown item "explode"/)
    expect((await control('POST', 'faults', { spec: 'status=503' })).json.error).toBe(
      'give {"fault": "SPEC"}',
    )
    expect((await control('POST', 'faults', 'status=503')).json.error).toBe('the body is not JSON')
    const delay = await control('PUT', 'pending-ms', { ms: -1 })
    expect(delay.status).toBe(400)
    expect(delay.json.error).toMatch(/^give \{"ms": N\}/)
    const unknown = await control('GET', 'nothing')
    expect(unknown.status).toBe(404)
    expect(unknown.json.error).toMatch(/known: state, faults, pending-ms, reset, requests/)
    const method = await control('DELETE', 'state')
    expect(method.status).toBe(405)
    expect(method.headers.allow).toBe('GET')
    // A `path=/**` fault takes API requests, never the control API.
    await control('POST', 'faults', { fault: 'path=/**,hang,times=0' })
    expect((await control('GET', 'state')).status).toBe(200)
    await control('DELETE', 'faults')
  })

  it('changes the pending delay while it runs, and reset brings back the start', async () => {
    await control('DELETE', 'requests')
    expect((await control('PUT', 'pending-ms', { ms: 4000 })).json).toEqual({ pendingMs: 4000 })
    await control('POST', 'faults', { fault: 'path=/**,status=502,times=5' })
    await httpCall('GET', emu.url, { caFile: emu.caFile })
    expect((await control('GET', 'state')).json).toMatchObject({ pendingMs: 4000, requests: 1 })
    const reset = await control('POST', 'reset')
    expect(reset.status).toBe(200)
    expect(reset.json).toMatchObject({
      faults: [{ spec: START_FAULT, left: 'forever' }],
      pendingMs: 250,
      requests: 0,
    })
  })
})

describe('RunningEmulator.reset() for tests that hold the emulator in process', () => {
  it('puts the fixture back into the same state object, and refills the rate-limit budget', async () => {
    const emu = await startHetznerEmulator({
      pendingMs: 0,
      fixture: { ...defaultHetznerFixture(), rateLimitPerHour: 2 },
    })
    try {
      const state = emu.state
      const get = () =>
        httpCall('GET', `${emu.url}/floating_ips`, {
          headers: { Authorization: `Bearer ${emu.env.HCLOUD_TOKEN}` },
        })
      expect((await get()).status).toBe(200)
      expect((await get()).status).toBe(200)
      expect((await get()).status).toBe(429)
      state.floatingIps[0]!.server = null
      emu.reset()
      expect(emu.state).toBe(state)
      expect(state.floatingIps[0]!.server).toBe(defaultHetznerFixture().floatingIps[0]!.server)
      expect(emu.requests).toEqual([])
      expect((await get()).status).toBe(200)
    } finally {
      await emu.close()
    }
  })
})

describe('pending=MS and reset on synchronous and eventually consistent APIs', () => {
  it('Robot: a switch held by pending=MS is in progress until a reset drops it (and its connection)', async () => {
    const emu = await spawnEmulator(['hetzner-robot', '--port', '0', '--pending-ms', '100'])
    try {
      const control = (method: string, path: string, body?: unknown) =>
        httpCall(method, `${emu.env.IPMOVE_EMULATOR_URL}/_emulator/${path}`, { body })
      await control('POST', 'faults', { fault: 'path=/failover/*,method=POST,pending=60000' })
      const basic = Buffer.from(`${emu.env.HROBOT_USER}:${emu.env.HROBOT_PASSWORD}`).toString('base64')
      const switching = httpCall('POST', `${emu.url}/failover/203.0.113.70`, {
        body: 'active_server_ip=198.51.100.72',
        headers: { Authorization: `Basic ${basic}`, 'Content-Type': 'application/x-www-form-urlencoded' },
      }).catch((error: NodeJS.ErrnoException) => error)
      const failover = async () =>
        (await control('GET', 'state')).json.failovers.find((f: { ip: string }) => f.ip === '203.0.113.70')
      await expect.poll(failover, { timeout: 5000 }).toMatchObject({ switchingTo: '198.51.100.72' })
      // Well past --pending-ms, the switch is still in progress: the fault's delay holds it.
      await new Promise((resolve) => setTimeout(resolve, 500))
      expect(await failover()).toMatchObject({
        activeServerIp: '198.51.100.71',
        switchingTo: '198.51.100.72',
      })

      const started = Date.now()
      expect((await control('POST', 'reset')).status).toBe(200)
      const dropped = await switching
      expect(Date.now() - started).toBeLessThan(10_000)
      expect((dropped as NodeJS.ErrnoException).code).toBe('ECONNRESET')
      const after = await failover()
      expect(after).toMatchObject({ activeServerIp: '198.51.100.71' })
      expect(after.switchingTo).toBeUndefined()
    } finally {
      await emu.stop()
    }
  })

  it('EC2: pending=MS keeps Describe* showing the old holder that long; the next write settles at --pending-ms', async () => {
    const emu = await spawnEmulator(['aws', '--port', '0', '--pending-ms', '100', '--this-host', 'web-2'])
    try {
      const env = isolatedEnv(emu.env)
      const eip = ['--provider', 'aws', '--ip', '203.0.113.5']
      const fault = await ipmove(
        ['emulate', 'control', 'fault', 'path=/AssociateAddress,pending=60000', '--json'],
        env,
      )
      expect(json(fault)).toMatchObject({
        faults: [{ spec: 'path=/AssociateAddress,pending=60000,times=1' }],
      })
      // ipmove re-reads until EC2 shows the target: it never does within --timeout.
      expect((await ipmove([...eip, '--timeout', '2'], env)).code).toBe(5)
      const holder = async () => json(await ipmove(['status', ...eip, '--json'], env)).holder
      expect(await holder()).toMatchObject({ id: WEB1 })
      await ipmove(['emulate', 'control', 'reset'], env)
      expect(json(await ipmove([...eip, '--json'], env))).toMatchObject({ ok: true, outcome: 'moved' })
      expect(await holder()).toMatchObject({ id: WEB2 })
    } finally {
      await emu.stop()
    }
  })
})

const DEFAULT_FIXTURES: Record<(typeof EMULATORS)[number][0], () => object> = {
  ovh: defaultOvhFixture,
  aws: defaultEc2Fixture,
  hetzner: defaultHetznerFixture,
  'hetzner-robot': defaultRobotFixture,
  digitalocean: defaultDigitalOceanFixture,
  scaleway: defaultScalewayFixture,
}

describe.each(EMULATORS)('ipmove emulate %s --print-fixture', (name) => {
  it('prints the default fixture and exits; fed back with --fixture, it serves the default state', async () => {
    const printed = await ipmove(['emulate', name, '--print-fixture'], isolatedEnv())
    expect(printed.code, printed.stderr).toBe(0)
    expect(printed.stderr).toBe('')
    expect(JSON.parse(printed.stdout)).toEqual(DEFAULT_FIXTURES[name]())
    // --json: the same fixture on one line, nothing around it.
    const oneLine = await ipmove(['emulate', name, '--print-fixture', '--json'], isolatedEnv())
    expect(json(oneLine)).toEqual(JSON.parse(printed.stdout))

    const file = join(dir, `${name}-fixture.json`)
    writeFileSync(file, printed.stdout)
    const [fromDefault, fromFile] = await Promise.all([
      spawnEmulator([name, '--port', '0']),
      spawnEmulator([name, '--port', '0', '--fixture', file]),
    ])
    try {
      const state = async (emu: EmulatorProcess) => {
        const answer = await httpCall('GET', `${emu.env.IPMOVE_EMULATOR_URL}/_emulator/state`, {
          caFile: emu.caFile,
        })
        expect(answer.status).toBe(200)
        // EC2 association ids are drawn at each start, as EC2 draws them: the one part that differs.
        return JSON.parse(answer.text.replace(/"eipassoc-[0-9a-f]{17}"/g, '"eipassoc-drawn"')) as unknown
      }
      const served = await state(fromFile)
      expect(served).toEqual(await state(fromDefault))
      expect(JSON.stringify(served).length).toBeGreaterThan(100)
    } finally {
      await Promise.all([fromDefault.stop(), fromFile.stop()])
    }
  })
})

describe('a failover scenario driven through ipmove emulate control', () => {
  const IP = '203.0.113.10'
  const move = ['--project', 't18s', '--ip', IP, '--instance', 'bi-edge-sbg-2']
  let emu: EmulatorProcess
  let env: NodeJS.ProcessEnv
  const controlCli = (...args: string[]) => ipmove(['emulate', 'control', ...args], env)
  const holder = async () => {
    const state = json(await controlCli('state', '--json'))
    const ip = (state.projects as Array<{ failoverIps: Array<{ ip: string; routedTo: string }> }>)[0]!
      .failoverIps[0]!
    expect(ip.ip).toBe(IP)
    return ip
  }

  beforeAll(async () => {
    emu = await spawnEmulator(['ovh', '--port', '0', '--pending-ms', '200', '--dir', join(dir, 'ovh')])
    // What a CI step has after sourcing env.sh: the URL and the CA included.
    env = isolatedEnv(emu.env)
  })
  afterAll(async () => {
    await emu?.stop()
  })

  it('a pending=MS fault keeps the move pending past --timeout (exit 5); reset puts the fixture back', async () => {
    const before = await holder()
    const added = await controlCli(
      'fault',
      'path=/cloud/project/*/ip/failover/*/attach,method=POST,pending=60000',
    )
    expect(added.code).toBe(0)
    expect(added.stdout).toContain('pending=60000,times=1')
    const run = await ipmove([...move, '--timeout', '2'], env)
    expect(run.code).toBe(5)
    const pending = await holder()
    expect(pending).toMatchObject({ status: 'operationPending', routedTo: before.routedTo })

    const reset = await controlCli('reset', '--json')
    expect(reset.code).toBe(0)
    expect(json(reset)).toMatchObject({ ok: true, faults: [], pendingMs: 200, requests: 0 })
    expect(await holder()).toMatchObject({ status: 'ok', routedTo: before.routedTo })

    // The 60 s change was dropped with the old state: the move goes through at --pending-ms.
    const again = await ipmove([...move, '--json'], env)
    expect(json(again)).toMatchObject({ ok: true, outcome: 'moved' })
    expect((await holder()).routedTo).not.toBe(before.routedTo)
  })

  it('a fault added at run time fails the next move as the API would (503 after retries: exit 8)', async () => {
    await controlCli('reset')
    expect(
      (await controlCli('fault', 'path=/cloud/project/*/ip/failover/*/attach,status=503,times=0')).code,
    ).toBe(0)
    const run = await ipmove([...move, '--timeout', '30'], env)
    expect(run.code).toBe(8)
    const log = json(await controlCli('requests', '--json')).requests as Array<{
      path: string
      fault?: string
    }>
    expect(log.filter((r) => r.fault?.includes('status=503')).length).toBeGreaterThan(1)
    await controlCli('clear-faults')
    expect(json(await ipmove([...move, '--json'], env))).toMatchObject({ ok: true, outcome: 'moved' })
  })

  it('removes an env.sh left in --dir before listening: a CI step waiting for it never reads a stale one', async () => {
    const stale = join(dir, 'stale')
    mkdirSync(stale)
    writeFileSync(join(stale, 'env.sh'), 'export OVH_ENDPOINT=https://127.0.0.1:1/1.0\n')
    // The port is taken: this run never listens, so it must leave no env.sh behind.
    const failed = await spawnEmulator(['ovh', '--port', String(emu.port), '--dir', stale]).catch(
      (e: Error) => e,
    )
    expect((failed as Error).message).toMatch(/EADDRINUSE/)
    expect(existsSync(join(stale, 'env.sh'))).toBe(false)
  })

  it('refuses bad use with exit 2, and an emulator that is gone with exit 8', async () => {
    const noUrl = await ipmove(['emulate', 'control', 'state'], isolatedEnv())
    expect(noUrl.code).toBe(2)
    expect(noUrl.stderr).toMatch(/^ipmove: error: no emulator: give --url/)
    expect((await controlCli('fault')).stderr).toMatch(/^ipmove: error: fault needs SPEC$/m)
    expect((await controlCli('pending-ms', 'soon')).code).toBe(2)
    expect((await controlCli('reset', 'now')).stderr).toMatch(/reset takes no value/)
    const bad = await controlCli('fault', 'status=700')
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(
      /^ipmove: error: emulator: fault "status=700": "status=700" needs a whole number/,
    )
    const unknown = await controlCli('explode')
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toMatch(
      /^ipmove: error: unknown action "explode" \(known: state, requests, clear-requests/,
    )
    // An HTTPS emulator is trusted only through its CA: without it, no call gets through.
    const { NODE_EXTRA_CA_CERTS: _, ...untrusted } = env
    const refused = await ipmove(['emulate', 'control', 'state'], untrusted)
    expect(refused.code).toBe(8)
    const trusted = await ipmove(['emulate', 'control', 'faults', '--ca', emu.caFile!, '--json'], untrusted)
    expect(json(trusted)).toMatchObject({ ok: true, faults: [] })
    const gone = await ipmove(['emulate', 'control', 'state', '--url', 'http://127.0.0.1:1'], env)
    expect(gone.code).toBe(8)
    expect(gone.stderr).toMatch(
      /^ipmove: error: cannot reach the emulator at http:\/\/127\.0\.0\.1:1: ECONNREFUSED/,
    )
  })
})
