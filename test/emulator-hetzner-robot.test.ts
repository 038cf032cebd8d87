/**
 * The Hetzner Robot failover emulator at the HTTP level: Basic auth and the
 * login block, form bodies, the synchronous switch, the documented error codes
 * and the request limit (see the header of emulator/hetzner-robot/server.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  defaultRobotFixture,
  ROBOT_ADDRESSES,
  ROBOT_SERVERS,
  ROBOT_USER,
} from '../emulator/hetzner-robot/fixture.js'
import { type RunningRobotEmulator, startRobotEmulator } from '../emulator/hetzner-robot/server.js'
import { type JsonAnswer, jsonCall } from './helpers/rest.js'

let emulator: RunningRobotEmulator

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`

function call(
  method: string,
  path: string,
  form?: Record<string, string>,
  authorization: string | null = basic(ROBOT_USER.user, ROBOT_USER.password),
  on: RunningRobotEmulator = emulator,
): Promise<JsonAnswer> {
  const headers: Record<string, string> = {}
  if (authorization !== null) headers.Authorization = authorization
  if (form) headers['Content-Type'] = 'application/x-www-form-urlencoded'
  return jsonCall(`${on.url}${path}`, method, form && new URLSearchParams(form).toString(), headers)
}

const errorOf = (answer: JsonAnswer) => [answer.status, answer.json?.error?.code]

beforeAll(async () => {
  emulator = await startRobotEmulator({ pendingMs: 200 })
})

afterAll(async () => {
  await emulator?.close()
})

describe('Hetzner Robot failover', () => {
  it('shows failover IPs with their owner and active server', async () => {
    const one = await call('GET', `/failover/${ROBOT_ADDRESSES.v4}`)
    expect(one.status).toBe(200)
    expect(one.json.failover).toEqual({
      ip: ROBOT_ADDRESSES.v4,
      netmask: '255.255.255.255',
      server_ip: ROBOT_SERVERS.db1.ip,
      server_ipv6_net: '2001:db8:71::',
      server_number: ROBOT_SERVERS.db1.number,
      active_server_ip: ROBOT_SERVERS.db1.ip,
    })
    const all = await call('GET', '/failover')
    expect(all.json.map((f: { failover: { ip: string } }) => f.failover.ip)).toContain(
      ROBOT_ADDRESSES.unrouted,
    )
    expect(errorOf(await call('GET', '/failover/203.0.113.99'))).toEqual([404, 'NOT_FOUND'])
  })

  it('switches synchronously, FAILOVER_LOCKED meanwhile, FAILOVER_ALREADY_ROUTED after', async () => {
    const path = `/failover/${ROBOT_ADDRESSES.v4}`
    const started = Date.now()
    const switching = call('POST', path, { active_server_ip: ROBOT_SERVERS.db2.ip })
    await new Promise((resolve) => setTimeout(resolve, 50))
    const locked = await call('POST', path, { active_server_ip: ROBOT_SERVERS.db3.ip })
    expect(errorOf(locked)).toEqual([409, 'FAILOVER_LOCKED'])
    expect((await call('GET', path)).json.failover.active_server_ip).toBe(ROBOT_SERVERS.db1.ip)
    const done = await switching
    expect(Date.now() - started).toBeGreaterThanOrEqual(190)
    expect(done.status).toBe(200)
    expect(done.json.failover.active_server_ip).toBe(ROBOT_SERVERS.db2.ip)
    const again = await call('POST', path, { active_server_ip: ROBOT_SERVERS.db2.ip })
    expect(errorOf(again)).toEqual([409, 'FAILOVER_ALREADY_ROUTED'])
    expect(again.json.failover.active_server_ip).toBe(ROBOT_SERVERS.db2.ip)
  })

  it('routes an IPv6 failover net to a server IPv6 net, and unroutes with DELETE', async () => {
    const v6 = await call('POST', `/failover/${ROBOT_ADDRESSES.v6}`, { active_server_ip: '2001:db8:72::' })
    expect(v6.json.failover.active_server_ip).toBe('2001:db8:72::')
    const v4Target = await call('POST', `/failover/${ROBOT_ADDRESSES.v6}`, {
      active_server_ip: ROBOT_SERVERS.db3.ip,
    })
    expect(errorOf(v4Target)).toEqual([404, 'FAILOVER_NEW_SERVER_NOT_FOUND'])
    const unrouted = await call('DELETE', `/failover/${ROBOT_ADDRESSES.v6}`)
    expect(unrouted.json.failover.active_server_ip).toBeNull()
  })

  it('checks the form: INVALID_INPUT names missing and invalid fields; unknown servers are refused', async () => {
    const path = `/failover/${ROBOT_ADDRESSES.unrouted}`
    const missing = await call('POST', path, {})
    expect(missing.json.error).toEqual({
      status: 400,
      code: 'INVALID_INPUT',
      message: 'invalid input',
      missing: ['active_server_ip'],
      invalid: null,
    })
    expect((await call('POST', path, { active_server_ip: 'db-2' })).json.error.invalid).toEqual([
      'active_server_ip',
    ])
    expect(errorOf(await call('POST', path, { active_server_ip: '198.51.100.99' }))).toEqual([
      404,
      'FAILOVER_NEW_SERVER_NOT_FOUND',
    ])
    // A JSON body is not what Robot reads: the field is missing.
    const json = await jsonCall(
      `${emulator.url}${path}`,
      'POST',
      { active_server_ip: ROBOT_SERVERS.db2.ip },
      {
        Authorization: basic(ROBOT_USER.user, ROBOT_USER.password),
      },
    )
    expect(errorOf(json)).toEqual([400, 'INVALID_INPUT'])
  })

  it('refuses a wrong login with 401, and blocks the address after 3 failures', async () => {
    const own = await startRobotEmulator({ pendingMs: 0 })
    try {
      expect(errorOf(await call('GET', '/failover', undefined, null, own))).toEqual([401, 'UNAUTHORIZED'])
      expect((await call('GET', '/failover', undefined, basic(ROBOT_USER.user, 'wrong'), own)).status).toBe(
        401,
      )
      expect((await call('GET', '/failover', undefined, undefined, own)).status).toBe(200)
      for (let i = 0; i < 3; i++) await call('GET', '/failover', undefined, basic('nobody', 'x'), own)
      const blocked = await call('GET', '/failover', undefined, undefined, own)
      expect(errorOf(blocked)).toEqual([401, 'UNAUTHORIZED'])
      expect(blocked.json.error.message).toMatch(/blocked/)
    } finally {
      await own.close()
    }
  })

  it('answers 403 RATE_LIMIT_EXCEEDED with max_request and interval past the hourly switches', async () => {
    const own = await startRobotEmulator({
      pendingMs: 0,
      fixture: { ...defaultRobotFixture(), switchesPerHour: 1 },
    })
    try {
      const path = `/failover/${ROBOT_ADDRESSES.v4}`
      expect(
        (await call('POST', path, { active_server_ip: ROBOT_SERVERS.db3.ip }, undefined, own)).status,
      ).toBe(200)
      const refused = await call('POST', path, { active_server_ip: ROBOT_SERVERS.db1.ip }, undefined, own)
      expect(refused.json.error).toEqual({
        status: 403,
        code: 'RATE_LIMIT_EXCEEDED',
        message: 'rate limit exceeded',
        max_request: 1,
        interval: 3600,
      })
      expect((await call('GET', path, undefined, undefined, own)).status).toBe(200)
    } finally {
      await own.close()
    }
  })

  it('injects faults in the Robot envelope, and refuses --this-host', async () => {
    emulator.addFault('path=/failover/*,method=POST,status=500')
    const fault = await call('POST', `/failover/${ROBOT_ADDRESSES.unrouted}`, {
      active_server_ip: ROBOT_SERVERS.db1.ip,
    })
    expect(fault.json.error).toMatchObject({ status: 500, code: 'INTERNAL_ERROR' })
    await expect(startRobotEmulator({ thisHost: 'db-1' })).rejects.toThrow(/no metadata service/)
    expect(emulator.env).toEqual({
      HROBOT_URL: emulator.url,
      HROBOT_USER: ROBOT_USER.user,
      HROBOT_PASSWORD: ROBOT_USER.password,
      IPMOVE_EMULATOR_URL: emulator.url,
    })
  })
})
