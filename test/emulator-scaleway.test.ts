/**
 * The Scaleway Instance API emulator at the HTTP level: paths by zone, the IP
 * by id or address, the substring name filter, error types, X-Auth-Token, the
 * metadata service (see the header of emulator/scaleway/server.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SCALEWAY_ADDRESSES, SCALEWAY_IDS, SCALEWAY_KEYS } from '../emulator/scaleway/fixture.js'
import { type RunningScalewayEmulator, startScalewayEmulator } from '../emulator/scaleway/server.js'
import { type JsonAnswer, jsonCall } from './helpers/rest.js'

const { servers, ips } = SCALEWAY_IDS
let emulator: RunningScalewayEmulator
let dir: string

function call(method: string, path: string, body?: unknown, secret: string | null = SCALEWAY_KEYS.secretKey) {
  return jsonCall(
    `${emulator.url}/instance/v1/zones${path}`,
    method,
    body,
    secret === null ? {} : { 'X-Auth-Token': secret },
  )
}

const errorOf = (answer: JsonAnswer) => [answer.status, answer.json?.type]

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ipmove-scw-emu-test-'))
  emulator = await startScalewayEmulator({ pendingMs: 150, thisHost: servers.web2, dir })
})

afterAll(async () => {
  await emulator?.close()
  await rm(dir, { recursive: true, force: true })
})

describe('Scaleway Instance API', () => {
  it('reads an IP by id or by address within its zone only', async () => {
    const byAddress = await call('GET', `/fr-par-1/ips/${SCALEWAY_ADDRESSES.vip}`)
    expect(byAddress.status).toBe(200)
    expect(byAddress.json.ip).toMatchObject({
      id: ips.vip,
      address: SCALEWAY_ADDRESSES.vip,
      server: { id: servers.web1, name: 'web-1' },
      state: 'attached',
      type: 'routed_ipv4',
      zone: 'fr-par-1',
    })
    expect((await call('GET', `/fr-par-1/ips/${ips.vip}`)).json.ip.address).toBe(SCALEWAY_ADDRESSES.vip)
    const otherZone = await call('GET', `/fr-par-2/ips/${SCALEWAY_ADDRESSES.vip}`)
    expect(errorOf(otherZone)).toEqual([404, 'unknown_resource'])
    expect(otherZone.json.message).toContain(SCALEWAY_ADDRESSES.vip)
    const list = await call('GET', '/fr-par-1/ips')
    expect(list.json.total_count).toBe(2)
    expect(list.headers.get('x-total-count')).toBe('2')
  })

  it('filters servers by a name that contains the text, as the API does', async () => {
    const found = await call('GET', '/fr-par-1/servers?name=web-1')
    expect(found.json.servers.map((s: { name: string }) => s.name)).toEqual(['web-1', 'web-10'])
    expect(found.json.servers[0].public_ips[0]).toMatchObject({ address: SCALEWAY_ADDRESSES.vip })
    expect((await call('GET', '/fr-par-2/servers?name=web-1')).json.servers).toHaveLength(1)
    expect(errorOf(await call('GET', `/fr-par-2/servers/${servers.web1}`))).toEqual([404, 'unknown_resource'])
  })

  it('moves an IP with PATCH {server}: pending for pendingMs, then attached', async () => {
    const path = `/fr-par-1/ips/${SCALEWAY_ADDRESSES.vip}`
    const moved = await call('PATCH', path, { server: servers.web2 })
    expect(moved.status).toBe(200)
    expect(moved.json.ip).toMatchObject({ server: { id: servers.web2 }, state: 'pending' })
    const busy = await call('PATCH', path, { server: servers.web1 })
    expect(errorOf(busy)).toEqual([409, 'transient_state'])
    await new Promise((resolve) => setTimeout(resolve, 250))
    expect((await call('GET', path)).json.ip.state).toBe('attached')
    const detached = await call('PATCH', `/fr-par-1/ips/${ips.spare}`, { server: null })
    expect(detached.json.ip).toMatchObject({ server: null, state: 'detached' })
  })

  it('refuses bad input, other zones and unknown servers in the Instance API error format', async () => {
    const path = `/fr-par-1/ips/${ips.spare}`
    const wrongType = await call('PATCH', path, { server: 42 })
    expect(errorOf(wrongType)).toEqual([400, 'invalid_request_error'])
    expect(wrongType.json.fields.server).toBeDefined()
    expect(errorOf(await call('PATCH', path, { server: servers.par2 }))).toEqual([404, 'unknown_resource'])
    expect(errorOf(await call('PATCH', path, '{"server"'))).toEqual([400, 'invalid_request_error'])
    expect(errorOf(await call('GET', '/paris/ips'))).toEqual([400, 'invalid_request_error'])
  })

  it('checks X-Auth-Token: denied_authentication with its reason, permissions_denied for a read-only key', async () => {
    const none = await call('GET', '/fr-par-1/ips', undefined, null)
    expect(errorOf(none)).toEqual([401, 'denied_authentication'])
    expect(none.json).toMatchObject({ method: 'api_key', reason: 'invalid_argument' })
    const wrong = await call('GET', '/fr-par-1/ips', undefined, '00000000-0000-4000-8000-000000000000')
    expect(wrong.json.reason).toBe('not_found')
    const readOnly = SCALEWAY_KEYS.readOnlySecretKey
    expect((await call('GET', '/fr-par-1/ips', undefined, readOnly)).status).toBe(200)
    const write = await call('PATCH', `/fr-par-1/ips/${ips.spare}`, { server: servers.web1 }, readOnly)
    expect(errorOf(write)).toEqual([403, 'permissions_denied'])
    expect(write.json.details).toEqual([{ resource: 'instance_ip', action: 'update' }])
  })

  it('sends no rate-limit headers (none are published); faults give 429 with Retry-After', async () => {
    const plain = await call('GET', '/fr-par-1/servers')
    expect([...plain.headers.keys()].filter((h) => h.includes('ratelimit'))).toEqual([])
    emulator.addFault('path=/zones/*/servers,status=429,retry-after=3')
    const limited = await call('GET', '/fr-par-1/servers')
    expect(limited.status).toBe(429)
    expect(limited.headers.get('retry-after')).toBe('3')
  })

  it('serves the metadata service as JSON at /conf', async () => {
    const response = await fetch(`${emulator.env.IPMOVE_SCALEWAY_METADATA_URL}/conf?format=json`)
    expect(response.status).toBe(200)
    expect(await response.json()).toMatchObject({
      id: servers.web2,
      name: 'web-2',
      location: { zone_id: 'fr-par-1' },
      project: SCALEWAY_IDS.project,
    })
    expect(emulator.env).toMatchObject({
      SCW_API_URL: emulator.url,
      SCW_SECRET_KEY: SCALEWAY_KEYS.secretKey,
      SCW_DEFAULT_ZONE: 'fr-par-1',
    })
  })
})
