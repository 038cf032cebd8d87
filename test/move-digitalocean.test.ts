/**
 * The DigitalOcean provider through the engine (moveIp / ipStatus), with the
 * API and the droplet metadata faked at the HTTP level by nock, checking the
 * token as the API does.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import nock from 'nock'
import { describe, expect, it } from 'vitest'
import { MemoryLogger } from '../src/output.js'
import { type MoveOptions, moveIp } from '../src/services/move.js'
import { ipStatus } from '../src/services/status.js'
import { isolatedEnv } from './helpers/cli.js'
import { failure } from './helpers/errors.js'
import { guardNock } from './helpers/nock-guard.js'

const API = 'https://api.digitalocean.com'
const METADATA = 'http://169.254.169.254'
const TOKEN = 'dop_v1_test0123456789abcdef0123456789abcdef0123456789abcdef01234567'
const IP = '203.0.113.40'
const WEB1 = 3164441
const WEB2 = 3164442
const FAST = { first: 10, max: 40 }

const droplet = (id: number, name: string, region = 'fra1') => ({ id, name, region: { slug: region } })
const reserved = (on: [number, string] | null, locked = false) => ({
  reserved_ip: { ip: IP, region: { slug: 'fra1' }, droplet: on && droplet(...on), locked },
})
const action = (status: string) => ({ action: { id: 72531001, status, type: 'assign_ip' } })

function api() {
  return nock(API, { reqheaders: { authorization: `Bearer ${TOKEN}` } })
}

/** web-1 looked up by name, beside the IP it already holds. */
function webOneByName() {
  api()
    .get('/v2/droplets?name=web-1')
    .reply(200, { droplets: [droplet(WEB1, 'web-1')] })
    .get(`/v2/reserved_ips/${IP}`)
    .reply(200, reserved([WEB1, 'web-1']))
}

function metadata(id = WEB2, hostname = 'web-2', region = 'fra1') {
  return nock(METADATA).get('/metadata/v1.json').reply(200, { droplet_id: id, hostname, region })
}

function options(env: NodeJS.ProcessEnv, extra: Partial<MoveOptions> = {}): MoveOptions {
  return { ip: IP, provider: 'digitalocean', wait: true, dryRun: false, env, pollMs: FAST, ...extra }
}

const testEnv = () => isolatedEnv({ DIGITALOCEAN_ACCESS_TOKEN: TOKEN })

guardNock()

describe('move on DigitalOcean', () => {
  it('moves to this droplet: the IP and the metadata side by side, one assign action followed to completion', async () => {
    metadata()
    const writes: unknown[] = []
    api()
      .get(`/v2/reserved_ips/${IP}`)
      .reply(200, reserved([WEB1, 'web-1']))
      .post(`/v2/reserved_ips/${IP}/actions`, (body) => writes.push(body) > 0)
      .reply(201, action('in-progress'))
      .get(`/v2/reserved_ips/${IP}`)
      .reply(200, reserved([WEB1, 'web-1'], true))
      .get('/v2/actions/72531001')
      .reply(200, action('in-progress'))
      .get(`/v2/reserved_ips/${IP}`)
      .reply(200, reserved([WEB2, 'web-2']))
      .get('/v2/actions/72531001')
      .reply(200, action('completed'))
    const result = await moveIp(options(testEnv()), new MemoryLogger())
    expect(writes).toEqual([{ type: 'assign', droplet_id: WEB2 }])
    expect(result).toMatchObject({
      kind: 'reserved',
      outcome: 'moved',
      from: { id: String(WEB1), name: 'web-1' },
      to: { id: String(WEB2), name: 'web-2' },
      requests: 7,
      roundTrips: 4,
    })
  })

  it('waits while the IP is locked by another action, and writes nothing once it is in place', async () => {
    metadata()
    api()
      .get(`/v2/reserved_ips/${IP}`)
      .reply(200, reserved([WEB1, 'web-1'], true))
      .get(`/v2/reserved_ips/${IP}`)
      .reply(200, reserved([WEB2, 'web-2']))
    const log = new MemoryLogger()
    expect(await moveIp(options(testEnv()), log)).toMatchObject({ outcome: 'in-place', requests: 3 })
    expect(log.lines.join('\n')).toMatch(/already pending \(locked by a pending action\)/)
  })

  it('takes a 422 on a freshly locked IP as busy, then assigns', async () => {
    metadata()
    api()
      .get(`/v2/reserved_ips/${IP}`)
      .reply(200, reserved([WEB1, 'web-1']))
      .post(`/v2/reserved_ips/${IP}/actions`)
      .reply(422, { id: 'unprocessable_entity', message: 'pending event' })
      .get(`/v2/reserved_ips/${IP}`)
      .reply(200, reserved([WEB1, 'web-1'], true))
      .get(`/v2/reserved_ips/${IP}`)
      .reply(200, reserved([WEB1, 'web-1']))
      .post(`/v2/reserved_ips/${IP}/actions`)
      .reply(201, action('completed'))
    expect(await moveIp(options(testEnv()), new MemoryLogger())).toMatchObject({ outcome: 'moved' })
  })

  it('resolves --instance by name (cached for the next run) and refuses an ambiguous name', async () => {
    const env = testEnv()
    webOneByName()
    expect(await moveIp(options(env, { instance: 'web-1' }), new MemoryLogger())).toMatchObject({
      outcome: 'in-place',
    })
    api()
      .get(`/v2/reserved_ips/${IP}`)
      .reply(200, reserved([WEB1, 'web-1']))
    const warm = await moveIp(options(env, { instance: 'web-1' }), new MemoryLogger())
    expect(warm).toMatchObject({ outcome: 'in-place', requests: 1, roundTrips: 1 })

    api()
      .get('/v2/droplets?name=twin')
      .reply(200, { droplets: [droplet(1, 'twin'), droplet(2, 'twin')] })
      .get(`/v2/reserved_ips/${IP}`)
      .reply(200, reserved([WEB1, 'web-1']))
    const ambiguous = await failure(moveIp(options(testEnv(), { instance: 'twin' }), new MemoryLogger()))
    expect(ambiguous.kind).toBe('not-found')
    expect(ambiguous.message).toMatch(/ambiguous: 1 \(fra1\), 2 \(fra1\)/)
  })

  it('refuses a droplet in another region than the IP before any write (exit 2), by name, cached id or this host', async () => {
    const env = testEnv()
    // No POST is set up: guardNock fails the test on any request not listed here.
    api()
      .get('/v2/droplets?name=web-nyc')
      .reply(200, { droplets: [droplet(3164445, 'web-nyc', 'nyc3')] })
      .get(`/v2/reserved_ips/${IP}`)
      .reply(200, reserved([WEB1, 'web-1']))
    const byName = await failure(moveIp(options(env, { instance: 'web-nyc' }), new MemoryLogger()))
    expect(byName.kind).toBe('usage')
    expect(byName.message).toBe(
      `droplet web-nyc is in nyc3, reserved IP ${IP} in fra1: a reserved IP moves only within its region`,
    )
    // Warm: the droplet's region comes from the cache with its id (one request, still refused).
    api()
      .get(`/v2/reserved_ips/${IP}`)
      .reply(200, reserved([WEB1, 'web-1']))
    const warm = await failure(
      moveIp(options(env, { instance: 'web-nyc', dryRun: true }), new MemoryLogger()),
    )
    expect(warm.kind).toBe('usage')

    metadata(3164445, 'web-nyc', 'nyc3')
    api()
      .get(`/v2/reserved_ips/${IP}`)
      .reply(200, reserved([WEB1, 'web-1']))
    const thisHost = await failure(moveIp(options(testEnv()), new MemoryLogger()))
    expect(thisHost.kind).toBe('usage')
    expect(thisHost.message).toMatch(/is in nyc3, .* in fra1/)
  })

  it('looks a cached droplet up again when its region was not cached (a cache from an older ipmove)', async () => {
    const env = testEnv()
    webOneByName()
    await moveIp(options(env, { instance: 'web-1' }), new MemoryLogger())
    const cacheDir = env.IPMOVE_CACHE_DIR!
    for (const file of readdirSync(cacheDir)) {
      const path = join(cacheDir, file)
      const entries = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>
      expect(Object.keys(entries)).toContain(`droplet-region:${WEB1}`)
      delete entries[`droplet-region:${WEB1}`]
      writeFileSync(path, JSON.stringify(entries))
    }
    webOneByName()
    const again = await moveIp(options(env, { instance: 'web-1' }), new MemoryLogger())
    expect(again).toMatchObject({ outcome: 'in-place', requests: 2 })
  })

  it('maps errors: 401 auth, an unknown IP not-found, an errored action provider-failed; no token is usage', async () => {
    nock(API)
      .get(`/v2/reserved_ips/${IP}`)
      .reply(401, { id: 'unauthorized', message: 'Unable to authenticate you.' })
    metadata()
    const wrong = isolatedEnv({ DIGITALOCEAN_ACCESS_TOKEN: `${TOKEN}x` })
    const auth = await failure(moveIp(options(wrong), new MemoryLogger()), [TOKEN])
    expect(auth.kind).toBe('auth')

    api()
      .get('/v2/reserved_ips/203.0.113.99')
      .reply(404, { id: 'not_found', message: 'The resource you requested could not be found.' })
    const missing = await failure(
      ipStatus({ ip: '203.0.113.99', provider: 'digitalocean', env: testEnv() }, new MemoryLogger()),
    )
    expect(missing.kind).toBe('not-found')

    metadata()
    api()
      .get(`/v2/reserved_ips/${IP}`)
      .reply(200, reserved([WEB1, 'web-1']))
      .post(`/v2/reserved_ips/${IP}/actions`)
      .reply(201, action('in-progress'))
      .get(`/v2/reserved_ips/${IP}`)
      .reply(200, reserved([WEB1, 'web-1'], true))
      .get('/v2/actions/72531001')
      .reply(200, action('errored'))
    const errored = await failure(moveIp(options(testEnv()), new MemoryLogger()))
    expect(errored.kind).toBe('provider-failed')

    const none = await failure(moveIp(options(isolatedEnv()), new MemoryLogger()))
    expect(none.kind).toBe('usage')
    expect(none.message).toMatch(/DIGITALOCEAN_ACCESS_TOKEN/)
    const v6 = await failure(moveIp(options(testEnv(), { ip: '2001:db8::1' }), new MemoryLogger()))
    expect(v6.kind).toBe('usage')
  })
})
