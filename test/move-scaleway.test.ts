/**
 * The Scaleway provider through the engine (moveIp), with the Instance API and
 * its metadata faked at the HTTP level by nock, checking X-Auth-Token as the
 * API does; and end to end, the built CLI against the Scaleway emulator (run
 * `npm run build` first).
 */
import nock from 'nock'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SCALEWAY_ADDRESSES, SCALEWAY_IDS } from '../emulator/scaleway/fixture.js'
import { type RunningScalewayEmulator, startScalewayEmulator } from '../emulator/scaleway/server.js'
import { MemoryLogger } from '../src/output.js'
import { type MoveOptions, moveIp } from '../src/services/move.js'
import { ipmove, isolatedEnv, json, requireBuild } from './helpers/cli.js'
import { failure } from './helpers/errors.js'
import { guardNock } from './helpers/nock-guard.js'

const API = 'https://api.scaleway.com'
const METADATA = 'http://169.254.42.42'
const SECRET = '01234567-89ab-4cde-8f01-23456789abcd'
const IP = '198.51.100.60'
const WEB1 = '10000000-0000-4000-8000-000000000001'
const WEB2 = '10000000-0000-4000-8000-000000000002'
const WEB10 = '10000000-0000-4000-8000-000000000010'
const FAST = { first: 10, max: 40 }
const BASE = '/instance/v1/zones/fr-par-1'

const flexible = (server: [string, string] | null, state = server ? 'attached' : 'detached') => ({
  ip: {
    id: 'ip-1',
    address: IP,
    server: server && { id: server[0], name: server[1] },
    state,
    zone: 'fr-par-1',
  },
})

function api() {
  return nock(API, { reqheaders: { 'x-auth-token': SECRET } })
}

function options(env: NodeJS.ProcessEnv, extra: Partial<MoveOptions> = {}): MoveOptions {
  return { ip: IP, provider: 'scaleway', wait: true, dryRun: false, env, pollMs: FAST, ...extra }
}

const testEnv = (zone = 'fr-par-1') =>
  isolatedEnv({ SCW_SECRET_KEY: SECRET, ...(zone ? { SCW_DEFAULT_ZONE: zone } : {}) })

describe('move on Scaleway (nock)', () => {
  guardNock()

  it('moves with one PATCH {server}, polling while the routed IP is pending', async () => {
    nock(METADATA)
      .get('/conf?format=json')
      .reply(200, { id: WEB2, name: 'web-2', location: { zone_id: 'fr-par-1' } })
    const patches: unknown[] = []
    api()
      .get(`${BASE}/ips/${IP}`)
      .reply(200, flexible([WEB1, 'web-1']))
      .patch(`${BASE}/ips/${IP}`, (body) => patches.push(body) > 0)
      .reply(200, flexible([WEB2, 'web-2'], 'pending'))
      .get(`${BASE}/ips/${IP}`)
      .reply(200, flexible([WEB2, 'web-2']))
    const result = await moveIp(options(testEnv()), new MemoryLogger())
    expect(patches).toEqual([{ server: WEB2 }])
    expect(result).toMatchObject({
      outcome: 'moved',
      from: { id: WEB1, name: 'web-1' },
      to: { id: WEB2, name: 'web-2' },
      requests: 4,
      roundTrips: 3,
    })
  })

  it('matches --instance exactly although the API filter matches substrings; a transient state waits', async () => {
    api()
      .get(`${BASE}/servers?name=web-1&per_page=100`)
      .reply(200, {
        servers: [
          { id: WEB1, name: 'web-1' },
          { id: WEB10, name: 'web-10' },
        ],
      })
      .get(`${BASE}/ips/${IP}`)
      .reply(200, flexible([WEB2, 'web-2']))
      .patch(`${BASE}/ips/${IP}`)
      .reply(409, { type: 'transient_state', message: 'resource is in a transient state' })
      .get(`${BASE}/ips/${IP}`)
      .reply(200, flexible([WEB2, 'web-2']))
      .patch(`${BASE}/ips/${IP}`)
      .reply(200, flexible([WEB1, 'web-1']))
    const result = await moveIp(options(testEnv(), { instance: 'web-1' }), new MemoryLogger())
    expect(result).toMatchObject({ outcome: 'moved', to: { id: WEB1, name: 'web-1' } })
  })

  it('takes the zone from this host when none is set; maps 401 to auth without the key in the message', async () => {
    nock(METADATA)
      .get('/conf?format=json')
      .reply(200, { id: WEB2, name: 'web-2', location: { zone_id: 'fr-par-1' } })
    api()
      .get(`${BASE}/ips/${IP}`)
      .reply(200, flexible([WEB2, 'web-2']))
    expect(await moveIp(options(testEnv('')), new MemoryLogger())).toMatchObject({ outcome: 'in-place' })

    const noZone = await failure(moveIp(options(testEnv(''), { instance: 'web-1' }), new MemoryLogger()))
    expect(noZone.kind).toBe('usage')
    expect(noZone.message).toMatch(/SCW_DEFAULT_ZONE/)

    nock(API)
      .get(`${BASE}/servers?name=web-1&per_page=100`)
      .reply(401, {
        type: 'denied_authentication',
        method: 'api_key',
        reason: 'not_found',
        message: 'denied',
      })
      .get(`${BASE}/ips/${IP}`)
      .reply(401, {
        type: 'denied_authentication',
        method: 'api_key',
        reason: 'not_found',
        message: 'denied',
      })
    const wrong = isolatedEnv({
      SCW_SECRET_KEY: '11111111-2222-4333-8444-555555555555',
      SCW_DEFAULT_ZONE: 'fr-par-1',
    })
    const auth = await failure(moveIp(options(wrong, { instance: 'web-1' }), new MemoryLogger()), [
      '11111111-2222-4333-8444-555555555555',
    ])
    expect(auth.kind).toBe('auth')
  })
})

describe('ipmove --provider scaleway against the Scaleway emulator', () => {
  let emulator: RunningScalewayEmulator
  beforeAll(async () => {
    requireBuild()
    emulator = await startScalewayEmulator({ pendingMs: 200, thisHost: SCALEWAY_IDS.servers.web2 })
  })
  afterAll(async () => {
    await emulator?.close()
  })

  it('moves to this server, then is in place with 2 requests in 1 round trip; a read-only key exits 3', async () => {
    const env = isolatedEnv(emulator.env)
    const args = ['--provider', 'scaleway', '--ip', SCALEWAY_ADDRESSES.vip, '--json']
    expect(json(await ipmove(args, env))).toMatchObject({
      ok: true,
      outcome: 'moved',
      to: { id: SCALEWAY_IDS.servers.web2, name: 'web-2' },
    })
    expect(json(await ipmove(args, env))).toMatchObject({ outcome: 'in-place', requests: 2, roundTrips: 1 })
    const readOnly = await ipmove(
      ['--provider', 'scaleway', '--ip', SCALEWAY_ADDRESSES.vip, '--instance', 'web-10'],
      isolatedEnv({ ...emulator.env, SCW_SECRET_KEY: '66666666-7777-4888-8999-000000000000' }),
    )
    expect(readOnly.code).toBe(3)
    expect(readOnly.stderr).toMatch(/permissions_denied/)
  })
})
