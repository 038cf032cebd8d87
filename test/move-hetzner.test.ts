/**
 * The Hetzner Cloud provider through the engine (moveIp / ipStatus), with the
 * API and the metadata service faked at the HTTP level by nock, checking the
 * token as the API does.
 */
import nock from 'nock'
import { describe, expect, it } from 'vitest'
import { MemoryLogger } from '../src/output.js'
import { type MoveOptions, moveIp } from '../src/services/move.js'
import { ipStatus } from '../src/services/status.js'
import { isolatedEnv } from './helpers/cli.js'
import { failure } from './helpers/errors.js'
import { guardNock } from './helpers/nock-guard.js'

const API = 'https://api.hetzner.cloud'
const METADATA = 'http://169.254.169.254'
const TOKEN = 'hcloud-test-token-0123456789abcdef0123456789abcdef0123456789abcdef0'
const IP = '198.51.100.20'
const FIP = 42
const WEB1 = 1001
const WEB2 = 1002
const FAST = { first: 10, max: 40 }

const floating = (server: number | null, extra: object = {}) => ({
  id: FIP,
  name: 'vip',
  ip: IP,
  type: 'ipv4',
  server,
  ...extra,
})
const v6 = (server: number) => floating(server, { id: 43, ip: '2001:db8:20::/64', type: 'ipv6' })
const action = (status: string, extra: object = {}) => ({
  action: {
    id: 9001,
    command: 'assign_floating_ip',
    status,
    progress: status === 'success' ? 100 : 0,
    ...extra,
  },
})
const page = (floatingIps: object[], nextPage: number | null = null) => ({
  floating_ips: floatingIps,
  meta: { pagination: { page: 1, per_page: 50, next_page: nextPage, last_page: nextPage ?? 1 } },
})
const rateHeaders = {
  'RateLimit-Limit': '3600',
  'RateLimit-Remaining': '3590',
  'RateLimit-Reset': '1900000000',
}

/** The API, answering only requests that carry the token (as the real one: 401 otherwise). */
function api() {
  return nock(API, { reqheaders: { authorization: `Bearer ${TOKEN}` } }).defaultReplyHeaders(rateHeaders)
}

/** This host, as the metadata service's summary tells it. */
function metadata(id = WEB2, name = 'web-2') {
  return nock(METADATA)
    .get('/hetzner/v1/metadata')
    .reply(
      200,
      `availability-zone: fsn1-dc14\nhostname: ${name}\ninstance-id: ${id}\npublic-ipv4: 203.0.113.12\nregion: eu-central\n`,
    )
}

function options(env: NodeJS.ProcessEnv, extra: Partial<MoveOptions> = {}): MoveOptions {
  return { ip: IP, provider: 'hetzner', wait: true, dryRun: false, env, pollMs: FAST, ...extra }
}

const testEnv = (extra: Record<string, string> = {}) => isolatedEnv({ HCLOUD_TOKEN: TOKEN, ...extra })

guardNock()

describe('move on Hetzner Cloud', () => {
  it('moves cold to this host: metadata and list side by side, one assign, the action followed to success', async () => {
    metadata()
    const writes: unknown[] = []
    api()
      .get('/v1/floating_ips?page=1&per_page=50')
      .reply(200, page([floating(WEB1)]))
      .post(`/v1/floating_ips/${FIP}/actions/assign`, (body) => writes.push(body) > 0)
      .reply(201, action('running'))
      .get(`/v1/floating_ips/${FIP}`)
      .reply(200, { floating_ip: floating(WEB1) })
      .get('/v1/actions/9001')
      .reply(200, action('running', { progress: 50 }))
      .get(`/v1/floating_ips/${FIP}`)
      .reply(200, { floating_ip: floating(WEB2) })
      .get('/v1/actions/9001')
      .reply(200, action('success'))
    const result = await moveIp(options(testEnv()), new MemoryLogger())
    expect(writes).toEqual([{ server: WEB2 }])
    expect(result).toMatchObject({
      ip: `${IP}/32`,
      provider: 'hetzner',
      kind: 'ipv4',
      outcome: 'moved',
      from: { id: String(WEB1) },
      to: { id: String(WEB2), name: 'web-2' },
      requests: 7,
      // metadata ‖ list, assign, (ip ‖ action) twice
      roundTrips: 4,
    })
  })

  it('is warm on the second run: the cached id and the metadata, one round trip, no write in place', async () => {
    const env = testEnv()
    metadata()
    api()
      .get('/v1/floating_ips?page=1&per_page=50')
      .reply(200, page([floating(WEB2)]))
    expect(await moveIp(options(env), new MemoryLogger())).toMatchObject({ outcome: 'in-place', requests: 2 })

    metadata()
    api()
      .get(`/v1/floating_ips/${FIP}`)
      .reply(200, { floating_ip: floating(WEB2) })
    const warm = await moveIp(options(env), new MemoryLogger())
    expect(warm).toMatchObject({ outcome: 'in-place', changed: false, requests: 2, roundTrips: 1 })
  })

  it('finds the IP on a later page, and an IPv6 address inside a floating /64', async () => {
    const list = api()
      .get('/v1/floating_ips?page=1&per_page=50')
      .reply(200, page([floating(WEB1, { id: 7, ip: '198.51.100.99' })], 2))
      .get('/v1/floating_ips?page=2&per_page=50')
      .reply(200, page([floating(WEB1), v6(WEB2)]))
    const found = await ipStatus({ ip: IP, provider: 'hetzner', env: testEnv() }, new MemoryLogger())
    expect(found).toMatchObject({ holder: { id: String(WEB1) }, pending: false, requests: 2 })
    expect(list.isDone()).toBe(true)

    api()
      .get('/v1/floating_ips?page=1&per_page=50')
      .reply(200, page([floating(WEB1), v6(WEB2)]))
    const inNet = await ipStatus(
      { ip: '2001:db8:20::5', provider: 'hetzner', env: testEnv() },
      new MemoryLogger(),
    )
    expect(inNet).toMatchObject({ kind: 'ipv6', holder: { id: String(WEB2) } })
    api()
      .get('/v1/floating_ips?page=1&per_page=50')
      .reply(200, page([v6(WEB2)]))
    const outside = await failure(
      ipStatus({ ip: '2001:db8:21::5', provider: 'hetzner', env: testEnv() }, new MemoryLogger()),
    )
    expect(outside.kind).toBe('not-found')
  })

  it('resolves --instance by exact name (or id), and refuses an ambiguous name', async () => {
    api()
      .get('/v1/servers?name=web-1')
      .reply(200, { servers: [{ id: WEB1, name: 'web-1' }] })
      .get('/v1/floating_ips?page=1&per_page=50')
      .reply(200, page([floating(WEB1)]))
    const byName = await moveIp(options(testEnv(), { instance: 'web-1' }), new MemoryLogger())
    expect(byName).toMatchObject({ outcome: 'in-place', to: { id: String(WEB1), name: 'web-1' } })

    api()
      .get(`/v1/servers?name=${WEB1}`)
      .reply(200, { servers: [] })
      .get(`/v1/servers/${WEB1}`)
      .reply(200, { server: { id: WEB1, name: 'web-1' } })
      .get('/v1/floating_ips?page=1&per_page=50')
      .reply(200, page([floating(WEB1)]))
    const byId = await moveIp(options(testEnv(), { instance: String(WEB1) }), new MemoryLogger())
    expect(byId).toMatchObject({ outcome: 'in-place', to: { id: String(WEB1), name: 'web-1' } })

    api()
      .get('/v1/servers?name=twin')
      .reply(200, {
        servers: [
          { id: 1, name: 'twin' },
          { id: 2, name: 'twin' },
        ],
      })
      .get('/v1/floating_ips?page=1&per_page=50')
      .reply(200, page([floating(WEB1)]))
    const ambiguous = await failure(moveIp(options(testEnv(), { instance: 'twin' }), new MemoryLogger()))
    expect(ambiguous.kind).toBe('not-found')
    expect(ambiguous.message).toMatch(/ambiguous: 1, 2; pass the id/)
  })

  it('waits when the IP is locked by another action, then assigns', async () => {
    metadata()
    api()
      .get('/v1/floating_ips?page=1&per_page=50')
      .reply(200, page([floating(WEB1)]))
      .post(`/v1/floating_ips/${FIP}/actions/assign`)
      .reply(423, { error: { code: 'locked', message: 'resource is locked', details: {} } })
      .get(`/v1/floating_ips/${FIP}`)
      .reply(200, { floating_ip: floating(WEB1) })
      .post(`/v1/floating_ips/${FIP}/actions/assign`)
      .reply(201, action('success'))
    const log = new MemoryLogger()
    const result = await moveIp(options(testEnv()), log)
    expect(result).toMatchObject({ outcome: 'moved', to: { id: String(WEB2) } })
    expect(log.lines.join('\n')).toMatch(/busy .*locked/)
  })

  it('takes floating_ip_assigned as done: the IP is already on that server', async () => {
    metadata()
    api()
      .get('/v1/floating_ips?page=1&per_page=50')
      .reply(200, page([floating(WEB1)]))
      .post(`/v1/floating_ips/${FIP}/actions/assign`)
      .reply(422, { error: { code: 'floating_ip_assigned', message: 'already assigned', details: {} } })
    expect(await moveIp(options(testEnv()), new MemoryLogger())).toMatchObject({ outcome: 'moved' })
  })

  it('honours the rate limit: a 429 without Retry-After waits for the budget RateLimit-* announce', async () => {
    metadata()
    api()
      .get('/v1/floating_ips?page=1&per_page=50')
      .reply(
        429,
        { error: { code: 'rate_limit_exceeded', message: 'limit reached', details: {} } },
        {
          'RateLimit-Limit': '1800',
          'RateLimit-Remaining': '0',
          'RateLimit-Reset': String(Math.ceil(Date.now() / 1000) + 3600),
        },
      )
      .get('/v1/floating_ips?page=1&per_page=50')
      .reply(200, page([floating(WEB2)]))
    const started = Date.now()
    const result = await moveIp(options(testEnv()), new MemoryLogger())
    // 1800 per hour come back one every 2 s; plain backoff would retry within 0.5 s.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900)
    expect(result).toMatchObject({ outcome: 'in-place', requests: 3 })
  })

  it('maps errors: 401 is auth without the token in the message; a failed action is provider-failed', async () => {
    nock(API)
      .get('/v1/floating_ips?page=1&per_page=50')
      .reply(401, {
        error: { code: 'unauthorized', message: 'unable to authenticate', details: {} },
      })
    const wrong = testEnv({ HCLOUD_TOKEN: `${TOKEN}x` })
    const auth = await failure(moveIp(options(wrong, { instance: String(WEB2) }), new MemoryLogger()), [
      TOKEN,
    ])
    expect(auth.kind).toBe('auth')
    expect(auth.message).toMatch(/unable to authenticate \(unauthorized\)/)

    api()
      .get(`/v1/servers?name=${WEB2}`)
      .reply(200, { servers: [{ id: WEB2, name: String(WEB2) }] })
      .get('/v1/floating_ips?page=1&per_page=50')
      .reply(200, page([floating(WEB1)]))
      .post(`/v1/floating_ips/${FIP}/actions/assign`)
      .reply(201, action('running'))
      .get(`/v1/floating_ips/${FIP}`)
      .reply(200, { floating_ip: floating(WEB1) })
      .get('/v1/actions/9001')
      .reply(200, action('error', { error: { code: 'action_failed', message: 'Action failed' } }))
    const failed = await failure(moveIp(options(testEnv(), { instance: String(WEB2) }), new MemoryLogger()))
    expect(failed.kind).toBe('provider-failed')
    expect(failed.message).toMatch(/action 9001 .* failed: Action failed/)
  })

  it('needs a token, from HCLOUD_TOKEN or the [hetzner] section, before any request', async () => {
    const none = await failure(moveIp(options(isolatedEnv()), new MemoryLogger()))
    expect(none.kind).toBe('usage')
    expect(none.message).toMatch(/HCLOUD_TOKEN/)
    api()
      .get('/v1/floating_ips?page=1&per_page=50')
      .reply(200, page([floating(WEB1)]))
    const fromSettings = await ipStatus(
      { ip: IP, provider: 'hetzner', env: isolatedEnv(), providerSettings: { token: TOKEN } },
      new MemoryLogger(),
    )
    expect(fromSettings).toMatchObject({ holder: { id: String(WEB1) } })
  })
})
