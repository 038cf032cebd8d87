/**
 * The Hetzner Cloud emulator at the HTTP level: the paths, JSON shapes, error
 * envelope, statuses and headers the API reference documents (see the header
 * of emulator/hetzner/server.ts for what is confirmed and what is not).
 */
import { readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  defaultHetznerFixture,
  HETZNER_ADDRESSES,
  HETZNER_IDS,
  HETZNER_TOKENS,
} from '../emulator/hetzner/fixture.js'
import {
  hetznerEmulatorOptionsFromFlags,
  type RunningHetznerEmulator,
  startHetznerEmulator,
} from '../emulator/hetzner/server.js'
import { IpmoveError } from '../src/errors.js'
import { type JsonAnswer, jsonCall, textGet } from './helpers/rest.js'

const { servers, floatingIps } = HETZNER_IDS
let emulator: RunningHetznerEmulator
let dir: string

async function call(
  method: string,
  path: string,
  body?: unknown,
  token: string | null = HETZNER_TOKENS.readWrite,
  on: RunningHetznerEmulator = emulator,
): Promise<JsonAnswer> {
  return jsonCall(
    `${on.url}${path}`,
    method,
    body,
    token === null ? {} : { Authorization: `Bearer ${token}` },
  )
}

const errorOf = (answer: JsonAnswer) => [answer.status, answer.json?.error?.code]

async function waitForAction(id: number): Promise<JsonAnswer> {
  for (let i = 0; i < 100; i++) {
    const answer = await call('GET', `/actions/${id}`)
    if (answer.json.action.status !== 'running') return answer
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`action ${id} still running`)
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ipmove-hetzner-emu-test-'))
  emulator = await startHetznerEmulator({ pendingMs: 150, thisHost: 'web-2', dir })
})

afterAll(async () => {
  await emulator?.close()
  await rm(dir, { recursive: true, force: true })
})

describe('Hetzner Cloud API', () => {
  it('lists floating IPs and servers by exact name, paginated, with the rate-limit headers', async () => {
    const all = await call('GET', '/floating_ips?per_page=2')
    expect(all.status).toBe(200)
    expect(all.json.floating_ips).toHaveLength(2)
    expect(all.json.meta.pagination).toEqual({
      page: 1,
      per_page: 2,
      previous_page: null,
      next_page: 2,
      last_page: 2,
      total_entries: 3,
    })
    expect(all.json.floating_ips[0]).toMatchObject({
      id: floatingIps.v4,
      ip: HETZNER_ADDRESSES.v4,
      type: 'ipv4',
      server: servers.web1,
      home_location: { name: 'fsn1', network_zone: 'eu-central' },
      blocked: false,
    })
    expect(all.json.floating_ips[1]).toMatchObject({ type: 'ipv6', ip: HETZNER_ADDRESSES.v6 })
    expect(all.headers.get('ratelimit-limit')).toBe('3600')
    expect(Number(all.headers.get('ratelimit-remaining'))).toBeLessThan(3600)
    expect(Number(all.headers.get('ratelimit-reset'))).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000))

    const web1 = await call('GET', '/servers?name=web-1')
    expect(web1.json.servers).toHaveLength(1)
    expect(web1.json.servers[0]).toMatchObject({
      id: servers.web1,
      name: 'web-1',
      status: 'running',
      public_net: { ipv4: { ip: '203.0.113.11' }, floating_ips: [floatingIps.v4] },
    })
    expect((await call('GET', '/servers?name=web')).json.servers).toEqual([])
    expect((await call('GET', '/floating_ips?per_page=0')).status).toBe(400)
  })

  it('assigns through an action that runs for pendingMs, locking the IP meanwhile', async () => {
    const started = await call('POST', `/floating_ips/${floatingIps.v4}/actions/assign`, {
      server: servers.web2,
    })
    expect(started.status).toBe(201)
    const action = started.json.action
    expect(action).toMatchObject({
      command: 'assign_floating_ip',
      status: 'running',
      progress: 0,
      finished: null,
      error: null,
      resources: [
        { id: servers.web2, type: 'server' },
        { id: floatingIps.v4, type: 'floating_ip' },
      ],
    })
    expect((await call('GET', `/floating_ips/${floatingIps.v4}`)).json.floating_ip.server).toBe(servers.web1)

    const again = await call('POST', `/floating_ips/${floatingIps.v4}/actions/assign`, {
      server: servers.nbg,
    })
    expect(errorOf(again)).toEqual([423, 'locked'])

    const done = await waitForAction(action.id)
    expect(done.json.action).toMatchObject({ id: action.id, status: 'success', progress: 100 })
    expect(done.json.action.finished).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$/)
    const viaIp = await call('GET', `/floating_ips/${floatingIps.v4}/actions/${action.id}`)
    expect(viaIp.json.action.status).toBe('success')
    expect((await call('GET', `/actions?id=${action.id}`)).json.actions).toHaveLength(1)
    expect((await call('GET', `/floating_ips/${floatingIps.v4}`)).json.floating_ip.server).toBe(servers.web2)
    const web2 = await call('GET', `/servers/${servers.web2}`)
    expect(web2.json.server.public_net.floating_ips).toContain(floatingIps.v4)

    const same = await call('POST', `/floating_ips/${floatingIps.v4}/actions/assign`, {
      server: servers.web2,
    })
    expect(errorOf(same)).toEqual([422, 'floating_ip_assigned'])
  })

  it('checks the token as the API does: 401 without or with a wrong one, 403 for a Read token writing', async () => {
    const none = await call('GET', '/floating_ips', undefined, null)
    expect(none.json).toEqual({
      error: { code: 'unauthorized', message: 'unable to authenticate', details: {} },
    })
    expect(none.status).toBe(401)
    expect(none.headers.get('ratelimit-limit')).toBe('3600')
    expect(errorOf(await call('GET', '/floating_ips', undefined, 'wrong'))).toEqual([401, 'unauthorized'])
    expect((await call('GET', '/floating_ips', undefined, HETZNER_TOKENS.readOnly)).status).toBe(200)
    const write = await call(
      'POST',
      `/floating_ips/${floatingIps.spare}/actions/assign`,
      { server: servers.web1 },
      HETZNER_TOKENS.readOnly,
    )
    expect(errorOf(write)).toEqual([403, 'token_readonly'])
  })

  it('refuses bad input with invalid_input and its field details, unknown ids with not_found', async () => {
    const path = `/floating_ips/${floatingIps.spare}/actions/assign`
    const missing = await call('POST', path, {})
    expect(errorOf(missing)).toEqual([400, 'invalid_input'])
    expect(missing.json.error.details.fields[0].name).toBe('server')
    expect(errorOf(await call('POST', path, { server: String(servers.web1) }))).toEqual([
      400,
      'invalid_input',
    ])
    expect(errorOf(await call('POST', path, '{"server":'))).toEqual([400, 'json_error'])
    expect(errorOf(await call('POST', path, { server: 999 }))).toEqual([404, 'not_found'])
    expect(errorOf(await call('POST', '/floating_ips/999/actions/assign', { server: servers.web1 }))).toEqual(
      [404, 'not_found'],
    )
    expect(errorOf(await call('GET', '/actions/1'))).toEqual([404, 'not_found'])
    expect(errorOf(await call('GET', '/nothing/here'))).toEqual([404, 'not_found'])
    expect(errorOf(await call('GET', '/actions'))).toEqual([410, 'deprecated_api_endpoint'])
  })

  it('injects faults in the API error envelope', async () => {
    emulator.addFault('path=/floating_ips/*/actions/assign,method=POST,status=423')
    const path = `/floating_ips/${floatingIps.spare}/actions/assign`
    expect(errorOf(await call('POST', path, { server: servers.web1 }))).toEqual([423, 'locked'])
    const next = await call('POST', path, { server: servers.web1 })
    expect(next.status).toBe(201)
    await waitForAction(next.json.action.id)
    emulator.addFault('path=/servers,status=503,retry-after=2')
    const unavailable = await call('GET', '/servers')
    expect(errorOf(unavailable)).toEqual([503, 'unavailable'])
    expect(unavailable.headers.get('retry-after')).toBe('2')
  })

  it('serves the metadata service as plain text without a token', async () => {
    const base = emulator.env.IPMOVE_HETZNER_METADATA_URL!
    const text = (path: string) => textGet(`${base}${path}`)
    expect(await text('/instance-id')).toEqual([200, String(servers.web2)])
    expect(await text('/hostname')).toEqual([200, 'web-2'])
    expect(await text('/public-ipv4')).toEqual([200, '203.0.113.12'])
    const [, summary] = await text('')
    expect(summary).toContain(`instance-id: ${servers.web2}`)
    expect((await text('/nothing'))[0]).toBe(404)
  })

  it('answers 429 rate_limit_exceeded once the hourly budget is spent, counting unauthenticated requests', async () => {
    const small = await startHetznerEmulator({ fixture: { ...defaultHetznerFixture(), rateLimitPerHour: 3 } })
    try {
      expect((await call('GET', '/servers', undefined, null, small)).status).toBe(401)
      expect((await call('GET', '/servers', undefined, undefined, small)).status).toBe(200)
      const last = await call('GET', '/servers', undefined, undefined, small)
      expect(last.headers.get('ratelimit-remaining')).toBe('0')
      const refused = await call('GET', '/servers', undefined, undefined, small)
      expect(errorOf(refused)).toEqual([429, 'rate_limit_exceeded'])
      expect(refused.headers.get('ratelimit-limit')).toBe('3')
      // One request comes back every 3600/3 s: the reset is about 20 min away.
      const reset = Number(refused.headers.get('ratelimit-reset')) - Date.now() / 1000
      expect(reset).toBeGreaterThan(3000)
      expect(reset).toBeLessThanOrEqual(3601)
    } finally {
      await small.close()
    }
  })

  it('writes env.sh, and turns flags into options refusing bad ones with exit 2', async () => {
    const envSh = readFileSync(join(dir, 'env.sh'), 'utf8')
    expect(envSh).toContain(`export HCLOUD_ENDPOINT=${emulator.url}`)
    expect(envSh).toContain(`export HCLOUD_TOKEN=${HETZNER_TOKENS.readWrite}`)
    expect(emulator.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/)

    const file = join(dir, 'fixture.json')
    await writeFile(file, JSON.stringify({ ...defaultHetznerFixture(), floatingIps: [{ id: 'x' }] }))
    const bad = await hetznerEmulatorOptionsFromFlags({ fixtureFile: file }).catch((e: unknown) => e)
    expect(bad).toBeInstanceOf(IpmoveError)
    expect((bad as IpmoveError).message).toMatch(/floatingIps\[0\]\.id must be a whole number/)
    const twins = defaultHetznerFixture()
    twins.servers[1]!.name = 'web-1'
    await expect(startHetznerEmulator({ fixture: twins })).rejects.toThrow(
      /servers\[1\]\.name repeats "web-1"/,
    )
    await expect(startHetznerEmulator({ thisHost: 'nope' })).rejects.toThrow(/no server/)
  })
})
