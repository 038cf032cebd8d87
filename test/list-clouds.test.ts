/**
 * `ipmove list` on Hetzner Cloud, Hetzner Robot, DigitalOcean and Scaleway,
 * against each emulator over HTTP: what is listed (holders named, pending
 * state), how many requests a cold and a warm run make, that nothing is
 * written, and that --project is refused before any request. Then the built
 * CLI once per provider (run `npm run build` first).
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { DIGITALOCEAN_ADDRESSES, DIGITALOCEAN_IDS } from '../emulator/digitalocean/fixture.js'
import { startDigitalOceanEmulator } from '../emulator/digitalocean/server.js'
import { HETZNER_ADDRESSES, HETZNER_IDS } from '../emulator/hetzner/fixture.js'
import { startHetznerEmulator } from '../emulator/hetzner/server.js'
import { ROBOT_ADDRESSES, ROBOT_SERVERS } from '../emulator/hetzner-robot/fixture.js'
import { startRobotEmulator } from '../emulator/hetzner-robot/server.js'
import type { RestRecordedRequest } from '../emulator/rest.js'
import { SCALEWAY_ADDRESSES, SCALEWAY_IDS } from '../emulator/scaleway/fixture.js'
import { startScalewayEmulator } from '../emulator/scaleway/server.js'
import type { ListedIp } from '../src/core/provider.js'
import { MemoryLogger } from '../src/output.js'
import { listIps } from '../src/services/list.js'
import { ipmove, isolatedEnv, json, requireBuild } from './helpers/cli.js'
import { failure } from './helpers/errors.js'

interface Emulator {
  env: Record<string, string>
  state: unknown
  requests: RestRecordedRequest[]
  close(): Promise<void>
}

interface Case {
  provider: string
  start(): Promise<Emulator>
  ips: ListedIp[]
  /** API requests of a run with an empty cache, and of the next one. */
  cold: number
  warm: number
  /**
   * Where the list shows an operation in progress: how to make the first IP's
   * show in the emulator (as during a move), and the note listed.
   */
  pending?: { make(state: never): void; note: string }
}

const { servers, floatingIps } = HETZNER_IDS
const { droplets } = DIGITALOCEAN_IDS

// biome-ignore format: one provider per block reads best
const CASES: Case[] = [
  {
    provider: 'hetzner',
    start: () => startHetznerEmulator(),
    ips: [
      { ip: `${HETZNER_ADDRESSES.v4}/32`, kind: 'ipv4', id: String(floatingIps.v4), holder: { id: String(servers.web1), name: 'web-1' }, pending: false },
      { ip: HETZNER_ADDRESSES.v6, kind: 'ipv6', id: String(floatingIps.v6), holder: { id: String(servers.web2), name: 'web-2' }, pending: false },
      { ip: `${HETZNER_ADDRESSES.spare}/32`, kind: 'ipv4', id: String(floatingIps.spare), holder: null, pending: false },
    ],
    // The floating IPs, then the servers for their names; warm, the names are cached.
    cold: 2,
    warm: 1,
    // No `pending`: the floating-IP list carries no action state.
  },
  {
    provider: 'hetzner-robot',
    start: () => startRobotEmulator({ pendingMs: 100 }),
    ips: [
      { ip: `${ROBOT_ADDRESSES.v4}/32`, kind: 'failover', holder: { id: ROBOT_SERVERS.db1.ip, name: 'db-1' }, pending: false },
      { ip: `${ROBOT_ADDRESSES.v6}/64`, kind: 'failover', holder: { id: '2001:db8:71::', name: 'db-1' }, pending: false },
      { ip: `${ROBOT_ADDRESSES.unrouted}/32`, kind: 'failover', holder: null, pending: false },
    ],
    cold: 2,
    // No `pending`: a switch holds its own request until it is done.
    warm: 1,
  },
  {
    provider: 'digitalocean',
    start: () => startDigitalOceanEmulator(),
    ips: [
      { ip: `${DIGITALOCEAN_ADDRESSES.fra}/32`, kind: 'reserved', holder: { id: String(droplets.web1), name: 'web-1' }, pending: false },
      { ip: `${DIGITALOCEAN_ADDRESSES.nyc}/32`, kind: 'reserved', holder: { id: String(droplets.nyc), name: 'web-nyc' }, pending: false },
      { ip: `${DIGITALOCEAN_ADDRESSES.spare}/32`, kind: 'reserved', holder: null, pending: false },
    ],
    // Reserved IPs come with their whole droplet: one request, cold or warm.
    cold: 1,
    warm: 1,
    pending: {
      make: (state: { reservedIps: Array<{ pendingAction?: number }> }) => {
        state.reservedIps[0]!.pendingAction = 1
      },
      note: 'locked by a pending action',
    },
  },
  {
    provider: 'scaleway',
    start: () => startScalewayEmulator(),
    // The emulator's env sets SCW_DEFAULT_ZONE=fr-par-1: fr-par-2's IP is not listed.
    ips: [
      { ip: `${SCALEWAY_ADDRESSES.vip}/32`, kind: 'flexible', id: SCALEWAY_IDS.ips.vip, holder: { id: SCALEWAY_IDS.servers.web1, name: 'web-1' }, pending: false },
      { ip: `${SCALEWAY_ADDRESSES.spare}/32`, kind: 'flexible', id: SCALEWAY_IDS.ips.spare, holder: null, pending: false },
    ],
    cold: 1,
    warm: 1,
    pending: {
      make: (state: { ips: Array<{ state: string }> }) => {
        state.ips[0]!.state = 'pending'
      },
      note: 'IP pending',
    },
  },
]

const running: Emulator[] = []
afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.close()))
})

async function start(c: Case): Promise<Emulator> {
  const emulator = await c.start()
  running.push(emulator)
  return emulator
}

/** Requests to the API, not to the metadata service or the emulator's own state. */
const apiRequests = (emulator: Emulator) => emulator.requests.filter((r) => !r.path.startsWith('/_emulator'))

describe.each(CASES)('ipmove list --provider $provider against its emulator', (c) => {
  it('lists every IP with its holder named; cold and warm request counts; no write', async () => {
    const emulator = await start(c)
    const env = isolatedEnv(emulator.env)
    const cold = await listIps({ provider: c.provider, env }, new MemoryLogger())
    expect(cold.ips).toEqual(c.ips)
    expect(cold.requests, 'cold requests').toBe(c.cold)
    const warm = await listIps({ provider: c.provider, env }, new MemoryLogger())
    expect(warm.ips).toEqual(c.ips)
    expect(warm.requests, 'warm requests').toBe(c.warm)
    expect(apiRequests(emulator).filter((r) => r.method !== 'GET')).toEqual([])
    expect(apiRequests(emulator).length).toBe(c.cold + c.warm)
  })

  it('refuses --project with exit 2 before any request', async () => {
    const emulator = await start(c)
    const error = await failure(
      listIps({ provider: c.provider, project: 'p1', env: isolatedEnv(emulator.env) }, new MemoryLogger()),
    )
    expect(error).toMatchObject({
      kind: 'usage',
      message: expect.stringMatching(/^--project does not apply/),
    })
    expect(apiRequests(emulator)).toEqual([])
  })
})

describe.each(CASES.filter((c) => c.pending))('ipmove list --provider $provider: pending state', (c) => {
  it('shows an IP with an operation in progress as pending', async () => {
    const emulator = await start(c)
    const { make, note } = c.pending!
    make(emulator.state as never)
    const log = new MemoryLogger()
    const result = await listIps({ provider: c.provider, env: isolatedEnv(emulator.env) }, log)
    expect(result.ips[0]).toMatchObject({ pending: true, note })
    expect(result.ips.slice(1).every((ip) => !ip.pending)).toBe(true)
    expect(log.lines[0]).toMatch(new RegExp(`; pending: ${note}$`))
  })
})

describe('ipmove list: the built CLI against each emulator', () => {
  beforeAll(requireBuild)

  it.each(CASES)('list --provider $provider --json', async (c) => {
    const emulator = await start(c)
    const run = await ipmove(['list', '--provider', c.provider, '--json'], isolatedEnv(emulator.env))
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    expect(json(run)).toMatchObject({ ok: true, provider: c.provider, ips: c.ips, requests: c.cold })
  })
})

describe('ipmove list on Scaleway without a zone', () => {
  it('is a usage error naming SCW_DEFAULT_ZONE, before any request', async () => {
    const emulator = await start(CASES[3]!)
    const { SCW_DEFAULT_ZONE: _zone, ...env } = emulator.env
    const error = await failure(listIps({ provider: 'scaleway', env: isolatedEnv(env) }, new MemoryLogger()))
    expect(error).toMatchObject({ kind: 'usage', message: expect.stringContaining('SCW_DEFAULT_ZONE') })
    expect(apiRequests(emulator)).toEqual([])
  })
})
