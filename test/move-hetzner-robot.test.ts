/**
 * The Hetzner Robot provider through the engine (moveIp), with the Robot web
 * service faked at the HTTP level by nock, checking Basic auth as Robot does;
 * and end to end, the built CLI against the Robot emulator (run `npm run build`
 * first).
 */
import nock from 'nock'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROBOT_ADDRESSES, ROBOT_SERVERS } from '../emulator/hetzner-robot/fixture.js'
import { type RunningRobotEmulator, startRobotEmulator } from '../emulator/hetzner-robot/server.js'
import { MemoryLogger } from '../src/output.js'
import { type MoveOptions, moveIp } from '../src/services/move.js'
import { ipmove, isolatedEnv, json, requireBuild } from './helpers/cli.js'
import { failure } from './helpers/errors.js'
import { guardNock } from './helpers/nock-guard.js'

const API = 'https://robot-ws.your-server.de'
const USER = '#ws+Test'
const PASSWORD = 'robot-test-password'
const IP = '203.0.113.70'
const DB1 = '198.51.100.71'
const DB2 = '198.51.100.72'
const FAST = { first: 10, max: 40 }

const failover = (active: string | null) => ({
  failover: {
    ip: IP,
    netmask: '255.255.255.255',
    server_ip: DB1,
    server_number: 321,
    active_server_ip: active,
  },
})
const servers = [
  { server: { server_ip: DB1, server_ipv6_net: '2001:db8:71::', server_number: 321, server_name: 'db-1' } },
  { server: { server_ip: DB2, server_ipv6_net: '2001:db8:72::', server_number: 322, server_name: 'db-2' } },
]

function robot() {
  const basic = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`
  return nock(API, { reqheaders: { authorization: basic } })
}

function options(env: NodeJS.ProcessEnv, extra: Partial<MoveOptions> = {}): MoveOptions {
  return {
    ip: IP,
    provider: 'hetzner-robot',
    instance: 'db-2',
    wait: true,
    dryRun: false,
    env,
    pollMs: FAST,
    ...extra,
  }
}

const testEnv = () => isolatedEnv({ HROBOT_USER: USER, HROBOT_PASSWORD: PASSWORD })

describe('move on Hetzner Robot (nock)', () => {
  guardNock()

  it('routes with one form POST whose answer is the end state: no poll', async () => {
    const forms: string[] = []
    robot()
      .get('/server')
      .reply(200, servers)
      .get(`/failover/${IP}`)
      .reply(200, failover(DB1))
      .post(`/failover/${IP}`, (body) => forms.push(new URLSearchParams(body).toString()) > 0)
      .reply(200, failover(DB2))
    const result = await moveIp(options(testEnv()), new MemoryLogger())
    expect(forms).toEqual([`active_server_ip=${DB2}`])
    expect(result).toMatchObject({
      outcome: 'moved',
      to: { id: DB2, name: 'db-2' },
      requests: 3,
      roundTrips: 2,
    })
  })

  it('takes FAILOVER_ALREADY_ROUTED as done and waits out FAILOVER_LOCKED', async () => {
    robot()
      .get('/server')
      .reply(200, servers)
      .get(`/failover/${IP}`)
      .reply(200, failover(DB1))
      .post(`/failover/${IP}`)
      .reply(409, { error: { status: 409, code: 'FAILOVER_LOCKED', message: 'locked' } })
      .get(`/failover/${IP}`)
      .reply(200, failover(DB1))
      .post(`/failover/${IP}`)
      .reply(409, { error: { status: 409, code: 'FAILOVER_ALREADY_ROUTED', message: 'already routed' } })
    expect(await moveIp(options(testEnv()), new MemoryLogger())).toMatchObject({ outcome: 'moved' })
  })

  it('reports the hourly limit as such (exit 1), never as an auth failure', async () => {
    robot()
      .get('/server')
      .reply(200, servers)
      .get(`/failover/${IP}`)
      .reply(200, failover(DB1))
      .post(`/failover/${IP}`)
      .reply(403, {
        error: {
          status: 403,
          code: 'RATE_LIMIT_EXCEEDED',
          max_request: 50,
          interval: 3600,
          message: 'rate limit exceeded',
        },
      })
    const limited = await failure(moveIp(options(testEnv()), new MemoryLogger()), [PASSWORD])
    expect(limited.kind).toBe('provider-failed')
    expect(limited.message).toMatch(
      /request limit reached \(50 per 3600 s, RATE_LIMIT_EXCEEDED\); nothing was switched/,
    )
  })

  it('needs a web-service user; refuses an unknown server; a wrong password is auth', async () => {
    const none = await failure(moveIp(options(isolatedEnv()), new MemoryLogger()))
    expect(none.kind).toBe('usage')
    robot().get('/server').reply(200, servers).get(`/failover/${IP}`).reply(200, failover(DB1))
    const unknown = await failure(moveIp(options(testEnv(), { instance: 'db-9' }), new MemoryLogger()))
    expect(unknown.kind).toBe('not-found')
    nock(API)
      .get('/server')
      .reply(401, { error: { status: 401, code: 'UNAUTHORIZED', message: 'Unauthorized' } })
      .get(`/failover/${IP}`)
      .reply(401, { error: { status: 401, code: 'UNAUTHORIZED', message: 'Unauthorized' } })
    const wrong = isolatedEnv({ HROBOT_USER: USER, HROBOT_PASSWORD: 'wrong' })
    const auth = await failure(moveIp(options(wrong), new MemoryLogger()), ['wrong'])
    expect(auth.kind).toBe('auth')
  })
})

describe('ipmove --provider hetzner-robot against the Robot emulator', () => {
  let emulator: RunningRobotEmulator
  beforeAll(async () => {
    requireBuild()
    emulator = await startRobotEmulator({ pendingMs: 300 })
  })
  afterAll(async () => {
    await emulator?.close()
  })

  it('switches synchronously, then is in place with one request; an IPv6 address finds its /64', async () => {
    const env = isolatedEnv(emulator.env)
    const args = ['--provider', 'hetzner-robot', '--ip', ROBOT_ADDRESSES.v4, '--instance', 'db-2', '--json']
    const first = await ipmove(args, env)
    expect(json(first)).toMatchObject({
      ok: true,
      outcome: 'moved',
      to: { id: ROBOT_SERVERS.db2.ip, name: 'db-2' },
    })
    expect(json(await ipmove(args, env))).toMatchObject({ outcome: 'in-place', requests: 1, roundTrips: 1 })
    const v6 = await ipmove(
      ['--provider', 'hetzner-robot', '--ip', '2001:db8:70::1', '--instance', '323', '--json'],
      env,
    )
    expect(json(v6)).toMatchObject({ ok: true, ip: '2001:db8:70::/64', to: { id: '2001:db8:73::' } })
  })

  it('exits 5 when --timeout ends before the switch answers', async () => {
    const slow = await startRobotEmulator({ pendingMs: 5000 })
    try {
      const run = await ipmove(
        ['--provider', 'hetzner-robot', '--ip', ROBOT_ADDRESSES.v4, '--instance', 'db-3', '--timeout', '1'],
        isolatedEnv(slow.env),
      )
      expect(run.code).toBe(5)
      expect(run.stderr).toMatch(/timed out during POST \/failover\//)
    } finally {
      await slow.close()
    }
  })
})
