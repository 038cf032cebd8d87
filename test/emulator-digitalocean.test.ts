/**
 * The DigitalOcean emulator at the HTTP level: the paths, JSON shapes, error
 * objects, statuses, scopes and headers DigitalOcean's OpenAPI description
 * documents (see the header of emulator/digitalocean/server.ts).
 */
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  DIGITALOCEAN_ADDRESSES,
  DIGITALOCEAN_IDS,
  DIGITALOCEAN_TOKENS,
  defaultDigitalOceanFixture,
} from '../emulator/digitalocean/fixture.js'
import {
  type RunningDigitalOceanEmulator,
  startDigitalOceanEmulator,
} from '../emulator/digitalocean/server.js'
import { type JsonAnswer, jsonCall, textGet } from './helpers/rest.js'

const { droplets } = DIGITALOCEAN_IDS
let emulator: RunningDigitalOceanEmulator
let dir: string

function call(
  method: string,
  path: string,
  body?: unknown,
  token: string | null = DIGITALOCEAN_TOKENS.full,
  on: RunningDigitalOceanEmulator = emulator,
): Promise<JsonAnswer> {
  return jsonCall(
    `${on.url}/v2${path}`,
    method,
    body,
    token === null ? {} : { Authorization: `Bearer ${token}` },
  )
}

const errorOf = (answer: JsonAnswer) => [answer.status, answer.json?.id]

async function waitForAction(id: number): Promise<JsonAnswer> {
  for (let i = 0; i < 100; i++) {
    const answer = await call('GET', `/actions/${id}`)
    if (answer.json.action.status !== 'in-progress') return answer
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`action ${id} still in progress`)
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ipmove-do-emu-test-'))
  emulator = await startDigitalOceanEmulator({ pendingMs: 150, thisHost: 'web-1', dir })
})

afterAll(async () => {
  await emulator?.close()
  await rm(dir, { recursive: true, force: true })
})

describe('DigitalOcean API', () => {
  it('shows a reserved IP with its whole droplet, and finds droplets by name or tag', async () => {
    const got = await call('GET', `/reserved_ips/${DIGITALOCEAN_ADDRESSES.fra}`)
    expect(got.status).toBe(200)
    expect(got.json.reserved_ip).toMatchObject({
      ip: DIGITALOCEAN_ADDRESSES.fra,
      region: { slug: 'fra1' },
      droplet: { id: droplets.web1, name: 'web-1', status: 'active' },
      locked: false,
    })
    expect(got.headers.get('ratelimit-limit')).toBe('5000')
    expect(got.headers.get('ratelimit-remaining')).toMatch(/^\d+$/)
    expect(Number(got.headers.get('ratelimit-reset'))).toBeGreaterThan(Date.now() / 1000 + 3000)

    const twins = await call('GET', '/droplets?name=TWIN')
    expect(twins.json.droplets.map((d: { id: number }) => d.id)).toEqual([droplets.twinA, droplets.twinB])
    expect(twins.json.meta).toEqual({ total: 2 })
    expect(twins.json.links).toEqual({})
    const paged = await call('GET', '/droplets?tag_name=lb&per_page=1')
    expect(paged.json.droplets).toHaveLength(1)
    expect(paged.json.links.pages.next).toMatch(/\/v2\/droplets\?tag_name=lb&per_page=1&page=2$/)
    expect(errorOf(await call('GET', '/droplets?name=web-1&tag_name=lb'))).toEqual([
      422,
      'unprocessable_entity',
    ])
    expect(errorOf(await call('GET', '/reserved_ips/203.0.113.99'))).toEqual([404, 'not_found'])
  })

  it('assigns through an action in progress for pendingMs, the IP locked meanwhile', async () => {
    const ip = DIGITALOCEAN_ADDRESSES.fra
    const started = await call('POST', `/reserved_ips/${ip}/actions`, {
      type: 'assign',
      droplet_id: droplets.web2,
    })
    expect(started.status).toBe(201)
    const action = started.json.action
    expect(action).toMatchObject({
      status: 'in-progress',
      type: 'assign_ip',
      completed_at: null,
      resource_type: 'reserved_ip',
      // 203.0.113.40 as a 32-bit number
      resource_id: 3405803816,
      region_slug: 'fra1',
      region: { slug: 'fra1' },
    })
    const during = await call('GET', `/reserved_ips/${ip}`)
    expect(during.json.reserved_ip).toMatchObject({ locked: true, droplet: { id: droplets.web1 } })
    const again = await call('POST', `/reserved_ips/${ip}/actions`, {
      type: 'assign',
      droplet_id: droplets.twinA,
    })
    expect(errorOf(again)).toEqual([422, 'unprocessable_entity'])

    const done = await waitForAction(action.id)
    expect(done.json.action.status).toBe('completed')
    expect(done.json.action.completed_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)
    expect((await call('GET', `/reserved_ips/${ip}/actions/${action.id}`)).json.action.status).toBe(
      'completed',
    )
    const after = await call('GET', `/reserved_ips/${ip}`)
    expect(after.json.reserved_ip).toMatchObject({ locked: false, droplet: { id: droplets.web2 } })
  })

  it('refuses bad bodies, unknown droplets and other regions with 422', async () => {
    const path = `/reserved_ips/${DIGITALOCEAN_ADDRESSES.spare}/actions`
    expect(errorOf(await call('POST', path, { droplet_id: droplets.web1 }))).toEqual([
      422,
      'unprocessable_entity',
    ])
    expect(errorOf(await call('POST', path, { type: 'assign' }))).toEqual([422, 'unprocessable_entity'])
    expect(errorOf(await call('POST', path, { type: 'assign', droplet_id: 1 }))).toEqual([
      422,
      'unprocessable_entity',
    ])
    const otherRegion = await call('POST', path, { type: 'assign', droplet_id: droplets.nyc })
    expect(errorOf(otherRegion)).toEqual([422, 'unprocessable_entity'])
    expect(otherRegion.json.message).toMatch(/same region/)
    expect(errorOf(await call('POST', path, '{"type":'))).toEqual([400, 'bad_request'])
    expect(errorOf(await call('POST', '/reserved_ips/203.0.113.99/actions', { type: 'unassign' }))).toEqual([
      404,
      'not_found',
    ])
  })

  it('authenticates with the reference example bodies, and checks scopes', async () => {
    const none = await call('GET', '/droplets', undefined, null)
    expect(none.status).toBe(401)
    expect(none.json).toEqual({ id: 'unauthorized', message: 'Unable to authenticate you.' })
    expect(errorOf(await call('GET', '/droplets', undefined, 'dop_v1_wrong'))).toEqual([401, 'unauthorized'])
    const readOnly = DIGITALOCEAN_TOKENS.readOnly
    expect(
      (await call('GET', `/reserved_ips/${DIGITALOCEAN_ADDRESSES.nyc}`, undefined, readOnly)).status,
    ).toBe(200)
    const write = await call(
      'POST',
      `/reserved_ips/${DIGITALOCEAN_ADDRESSES.spare}/actions`,
      { type: 'assign', droplet_id: droplets.twinA },
      readOnly,
    )
    expect(errorOf(write)).toEqual([403, 'forbidden'])
  })

  it('limits each token per hour and per minute; the burst 429 carries retry-after', async () => {
    const small = await startDigitalOceanEmulator({
      fixture: { ...defaultDigitalOceanFixture(), rateLimitPerHour: 3, burstPerMinute: 2 },
    })
    try {
      expect((await call('GET', '/droplets', undefined, undefined, small)).status).toBe(200)
      expect((await call('GET', '/droplets', undefined, undefined, small)).status).toBe(200)
      const burst = await call('GET', '/droplets', undefined, undefined, small)
      expect(errorOf(burst)).toEqual([429, 'too_many_requests'])
      expect(burst.json.message).toBe('API rate limit exceeded.')
      expect(Number(burst.headers.get('retry-after'))).toBeGreaterThan(0)
      // Another token has its own budget.
      expect((await call('GET', '/droplets', undefined, DIGITALOCEAN_TOKENS.readOnly, small)).status).toBe(
        200,
      )
    } finally {
      await small.close()
    }
    const hourly = await startDigitalOceanEmulator({
      fixture: { ...defaultDigitalOceanFixture(), rateLimitPerHour: 1, burstPerMinute: 250 },
    })
    try {
      const first = await call('GET', '/droplets', undefined, undefined, hourly)
      expect(first.headers.get('ratelimit-remaining')).toBe('0')
      const refused = await call('GET', '/droplets', undefined, undefined, hourly)
      expect(errorOf(refused)).toEqual([429, 'too_many_requests'])
      expect(refused.headers.get('retry-after')).toBeNull()
    } finally {
      await hourly.close()
    }
  })

  it('injects faults as DigitalOcean error objects', async () => {
    emulator.addFault('path=/reserved_ips/*/actions,method=POST,status=500')
    const path = `/reserved_ips/${DIGITALOCEAN_ADDRESSES.nyc}/actions`
    expect(errorOf(await call('POST', path, { type: 'unassign' }))).toEqual([500, 'server_error'])
    const next = await call('POST', path, { type: 'unassign' })
    expect(next.status).toBe(201)
    await waitForAction(next.json.action.id)
    expect(
      (await call('GET', `/reserved_ips/${DIGITALOCEAN_ADDRESSES.nyc}`)).json.reserved_ip.droplet,
    ).toBeNull()
  })

  it('serves the droplet metadata, with the anchor IP and the active reserved IP', async () => {
    const base = emulator.env.IPMOVE_DIGITALOCEAN_METADATA_URL!
    expect(await textGet(`${base}/id`)).toEqual([200, String(droplets.web1)])
    expect(await textGet(`${base}/hostname`)).toEqual([200, 'web-1'])
    expect(await textGet(`${base}/interfaces/public/0/anchor_ipv4/address`)).toEqual([200, '10.19.0.31'])
    expect((await textGet(`${base}/reserved_ip/ipv4/active`))[0]).toBe(200)
    const [status, text] = await textGet(`${base}.json`)
    expect(status).toBe(200)
    expect(JSON.parse(text)).toMatchObject({ droplet_id: droplets.web1, region: 'fra1' })
    expect((await textGet(`${base}/nothing`))[0]).toBe(404)
  })

  it('writes env.sh with the variables doctl and ipmove read', async () => {
    const envSh = readFileSync(join(dir, 'env.sh'), 'utf8')
    expect(envSh).toContain(`export DIGITALOCEAN_API_URL=${emulator.url}`)
    expect(envSh).toContain(`export DIGITALOCEAN_ACCESS_TOKEN=${DIGITALOCEAN_TOKENS.full}`)
    await expect(startDigitalOceanEmulator({ thisHost: 'twin' })).rejects.toThrow(/several droplets/)
  })
})
