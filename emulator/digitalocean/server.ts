/**
 * An emulator of the part of the DigitalOcean API ipmove uses (reserved IPs,
 * their actions, droplets) and of the droplet metadata service, for our tests,
 * demos and users' CI (`ipmove emulate digitalocean`). Plain HTTP on loopback.
 *
 * Confirmed from DigitalOcean's OpenAPI description (github.com/digitalocean/openapi,
 * specification/, 2026) and godo (github.com/digitalocean/godo):
 * - `Authorization: Bearer TOKEN`; custom-scoped tokens: `reserved_ip:read` for
 *   GET /v2/reserved_ips/{ip} and its actions, `reserved_ip:update` for POST
 *   …/actions, `droplet:read` for droplets, `actions:read` for GET /v2/actions/{id};
 * - the error object `{"id","message","request_id"?}`: 401 `unauthorized`
 *   "Unable to authenticate you.", 403 `forbidden`, 404 `not_found`, 422
 *   `unprocessable_entity`, 429 `too_many_requests` "API rate limit exceeded.";
 * - `POST /v2/reserved_ips/{ip}/actions {"type":"assign","droplet_id":N}` (or
 *   `{"type":"unassign"}`) answers 201 `{action}`; an action is `id, status
 *   (in-progress|completed|errored), type (assign_ip), started_at, completed_at,
 *   resource_id, resource_type (reserved_ip), region, region_slug`; its resource_id
 *   is the address as a 32-bit number (the reference's examples agree);
 * - `GET /v2/reserved_ips/{ip}` → `{reserved_ip: {ip, region, droplet (whole
 *   droplet or null), locked (pending actions prevent new ones), project_id}}`;
 * - `GET /v2/droplets?name=` matches exact names case-insensitively and cannot be
 *   combined with `tag_name`; `per_page` default 20, at most 200; `meta.total`
 *   and `links.pages` (only when there are more pages);
 * - rate limits per token: 5000 per hour, each request counting for one hour
 *   after it is made; `ratelimit-limit`, `ratelimit-remaining`, `ratelimit-reset`
 *   (when the oldest counted request expires) on every answer; 250 per minute
 *   burst, whose 429 carries `retry-after`;
 * - reserved IPs are regional: "can only be assigned to Droplets within the same
 *   datacenter" (docs.digitalocean.com/products/networking/floating-ips/);
 * - metadata at `http://169.254.169.254/metadata/v1/…` (id, hostname, region, the
 *   public interface's ipv4 and anchor_ipv4 addresses) and `/metadata/v1.json`.
 *
 * Unconfirmed, chosen here:
 * - 422 `unprocessable_entity` for a missing or wrong `type`/`droplet_id`, an
 *   unknown droplet, a droplet in another region (the status and words the API
 *   gives are not published), and an IP with a pending action
 *   (`locked`), and every message text but the reference's examples;
 * - assigning to the droplet already holding the IP runs a normal action;
 * - the assignment shows in GET answers once the action completes;
 * - `reserved_ip/ipv4/active` and `reserved_ip/ipv4/ip_address` in the metadata
 *   (older droplets say `floating_ip`; both are served); the metadata service
 *   answers 404 text when no --this-host is set, and is served on the API's port.
 */
import type { IncomingMessage } from 'node:http'
import { usageError } from '../../src/errors.js'
import { parseIp, shown } from '../../src/validate.js'
import { type EmulateFlags, emulateServices } from '../emulate.js'
import {
  bearerHolder,
  bearerToken,
  integerField,
  pageOf,
  type RestAnswer,
  RestEmulator,
  RestError,
  type RestRecordedRequest,
  type RestRequest,
  type RestRoute,
  type RunningRestEmulator,
  resolveThisHost,
  SlidingWindowLimit,
} from '../rest.js'
import type { EmulatorOptions } from '../server.js'
import {
  type DigitalOceanFixture,
  type DigitalOceanFixtureDroplet,
  type DigitalOceanFixtureReservedIp,
  defaultDigitalOceanFixture,
  parseDigitalOceanFixture,
} from './fixture.js'

/** `pendingMs`: how long an action stays in progress, ms; default 1000. */
export type DigitalOceanEmulatorOptions = EmulatorOptions<DigitalOceanFixture>

export interface DigitalOceanAction {
  id: number
  status: 'in-progress' | 'completed' | 'errored'
  type: 'assign_ip' | 'unassign_ip'
  started_at: string
  completed_at: string | null
  resource_id: number
  resource_type: 'reserved_ip'
  region_slug: string
}

export interface DigitalOceanReservedIpState extends DigitalOceanFixtureReservedIp {
  /** The action in progress on this IP, if any. */
  pendingAction?: number
}

export interface DigitalOceanEmulatorState {
  tokens: DigitalOceanFixture['tokens']
  droplets: DigitalOceanFixtureDroplet[]
  reservedIps: DigitalOceanReservedIpState[]
  actions: DigitalOceanAction[]
  /** Droplet id the metadata service reports. */
  thisHost: number | undefined
}

/** `url`: e.g. http://127.0.0.1:PORT (paths start with /v2); `env`: DIGITALOCEAN_API_URL, DIGITALOCEAN_ACCESS_TOKEN, IPMOVE_DIGITALOCEAN_METADATA_URL. */
export type RunningDigitalOceanEmulator = RunningRestEmulator<DigitalOceanEmulatorState>

const METADATA = ['metadata', 'v1']
const CREATED = '2026-01-05T09:00:00Z'
const REGIONS: Record<string, string> = {
  fra1: 'Frankfurt 1',
  nyc3: 'New York 3',
  ams3: 'Amsterdam 3',
  lon1: 'London 1',
}

const STATUS_ID: Record<number, string> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
  413: 'bad_request',
  422: 'unprocessable_entity',
  429: 'too_many_requests',
  500: 'server_error',
  503: 'service_unavailable',
}

const apiError = (status: number, id: string, message: string) => new RestError(status, { id, message })
const unprocessable = (message: string) => apiError(422, 'unprocessable_entity', message)
const notFound = () => apiError(404, 'not_found', 'The resource you requested could not be found.')

/** DigitalOcean's timestamps: ISO 8601 to the second, with Z. */
const isoZ = (ms: number) => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z')

function regionJson(slug: string) {
  return { name: REGIONS[slug] ?? slug, slug, features: ['metadata'], available: true, sizes: [] }
}

/** An IPv4 address as the 32-bit number DigitalOcean uses as a reserved IP's resource id. */
function addressNumber(ip: string): number {
  return ip.split('.').reduce((n, octet) => n * 256 + Number(octet), 0)
}

/** Which scope each route needs, as the reference lists them. */
const SCOPES = {
  reservedIpRead: 'reserved_ip:read',
  reservedIpUpdate: 'reserved_ip:update',
  dropletRead: 'droplet:read',
  actionsRead: 'actions:read',
} as const

export async function startDigitalOceanEmulator(
  options: DigitalOceanEmulatorOptions = {},
): Promise<RunningDigitalOceanEmulator> {
  return new DigitalOceanEmulator(options).start()
}

class DigitalOceanEmulator extends RestEmulator<DigitalOceanEmulatorState, RestRecordedRequest> {
  readonly state: DigitalOceanEmulatorState
  protected readonly prefix = ['v2']
  protected readonly routes: readonly RestRoute[]
  protected readonly credentialsKey = 'tokens'
  protected readonly dirPrefix = 'ipmove-digitalocean-emulator-'
  /** One window per token, as the API limits per token; unauthenticated requests share one. */
  private readonly windows = new Map<string, SlidingWindowLimit>()
  private readonly fixtureLimits: { perHour: number; perMinute: number }
  private nextActionId = 72_531_001
  /** The scopes of the current request's token, set by authenticate(). */
  private scopes: string[] = []

  constructor(options: DigitalOceanEmulatorOptions) {
    super(options, 1000)
    this.state = this.freshState()
    const fixture = options.fixture ?? defaultDigitalOceanFixture()
    this.fixtureLimits = { perHour: fixture.rateLimitPerHour, perMinute: fixture.burstPerMinute }
    this.routes = this.buildRoutes()
  }

  protected freshState(): DigitalOceanEmulatorState {
    const options = this.options as DigitalOceanEmulatorOptions
    const fixture = structuredClone(options.fixture ?? defaultDigitalOceanFixture())
    for (const ip of fixture.reservedIps) {
      if (parseIp(ip.ip, 'reserved IP').version !== 4)
        throw usageError(`reserved IP ${shown(ip.ip)} must be an IPv4 address`)
    }
    return {
      tokens: fixture.tokens,
      droplets: fixture.droplets,
      reservedIps: fixture.reservedIps,
      actions: [],
      thisHost: resolveThisHost(fixture.droplets, options.thisHost, 'droplet'),
    }
  }

  protected override afterReset(): void {
    this.windows.clear()
  }

  protected clientEnv(origin: string): Record<string, string> {
    return {
      DIGITALOCEAN_API_URL: origin,
      DIGITALOCEAN_ACCESS_TOKEN: this.state.tokens.find((t) => t.scopes.includes('*'))?.token ?? '',
      IPMOVE_DIGITALOCEAN_METADATA_URL: `${origin}/${METADATA.join('/')}`,
    }
  }

  protected errorAnswer(status: number, reason: 'fault' | 'not_found' | 'bad_body'): RestError {
    if (reason === 'not_found') return notFound()
    if (reason === 'bad_body') return apiError(status, 'bad_request', 'unable to parse request body')
    return apiError(status, STATUS_ID[status] ?? 'server_error', `injected fault (HTTP ${status})`)
  }

  protected authenticate(request: IncomingMessage): void {
    this.scopes = bearerHolder(request, this.state.tokens, () =>
      apiError(401, 'unauthorized', 'Unable to authenticate you.'),
    ).scopes
  }

  private need(scope: string): void {
    if (!this.scopes.includes('*') && !this.scopes.includes(scope))
      throw apiError(403, 'forbidden', 'You do not have permission to perform this action.')
  }

  protected rateLimit(request: IncomingMessage): { headers: Record<string, string>; refused?: RestError } {
    const key = bearerToken(request) ?? ''
    let window = this.windows.get(key)
    if (!window) {
      window = new SlidingWindowLimit(this.fixtureLimits.perHour, 3600, this.fixtureLimits.perMinute, 60)
      this.windows.set(key, window)
    }
    const outcome = window.take()
    const headers: Record<string, string> = {
      'ratelimit-limit': String(window.limit),
      'ratelimit-remaining': String(outcome === 'burst' ? 0 : window.remaining),
      'ratelimit-reset': String(window.resetAt()),
    }
    if (outcome === 'ok') return { headers }
    if (outcome === 'burst') headers['retry-after'] = String(window.burstRetryAfter())
    return { headers, refused: apiError(429, 'too_many_requests', 'API rate limit exceeded.') }
  }

  protected metadata(segments: readonly string[]): RestAnswer | undefined {
    const json = segments.length === 2 && segments[0] === 'metadata' && segments[1] === 'v1.json'
    if (!json && !METADATA.every((p, i) => segments[i] === p)) return undefined
    const droplet = this.state.droplets.find((d) => d.id === this.state.thisHost)
    if (!droplet) return { status: 404, body: 'not found\n' }
    const reserved = this.state.reservedIps.find((r) => r.dropletId === droplet.id)
    const reservedInfo = {
      ipv4: { active: reserved !== undefined, ...(reserved ? { ip_address: reserved.ip } : {}) },
    }
    if (json) {
      return {
        body: {
          droplet_id: droplet.id,
          hostname: droplet.name,
          region: droplet.region,
          interfaces: {
            public: [
              {
                ipv4: { ip_address: droplet.publicIpv4, netmask: '255.255.255.0', gateway: '198.51.100.1' },
                anchor_ipv4: { ip_address: droplet.anchorIpv4, netmask: '255.255.0.0', gateway: '10.19.0.1' },
                type: 'public',
              },
            ],
          },
          reserved_ip: reservedInfo,
          floating_ip: reservedInfo,
          tags: droplet.tags,
        },
      }
    }
    const path = segments.slice(METADATA.length).join('/')
    const reservedValues = (prefix: string) => ({
      [`${prefix}/ipv4/active`]: String(reserved !== undefined),
      ...(reserved ? { [`${prefix}/ipv4/ip_address`]: reserved.ip } : {}),
    })
    const values: Record<string, string> = {
      id: String(droplet.id),
      hostname: droplet.name,
      region: droplet.region,
      'interfaces/public/0/ipv4/address': droplet.publicIpv4,
      'interfaces/public/0/anchor_ipv4/address': droplet.anchorIpv4,
      ...reservedValues('reserved_ip'),
      ...reservedValues('floating_ip'),
    }
    const value = values[path]
    return value === undefined ? { status: 404, body: 'not found\n' } : { body: value }
  }

  private dropletJson(droplet: DigitalOceanFixtureDroplet): unknown {
    return {
      id: droplet.id,
      name: droplet.name,
      memory: 1024,
      vcpus: 1,
      disk: 25,
      locked: false,
      status: 'active',
      created_at: CREATED,
      features: ['monitoring'],
      tags: droplet.tags,
      region: regionJson(droplet.region),
      networks: {
        v4: [
          {
            ip_address: droplet.publicIpv4,
            netmask: '255.255.255.0',
            gateway: '198.51.100.1',
            type: 'public',
          },
        ],
        v6: [],
      },
    }
  }

  private reservedIpJson(ip: DigitalOceanReservedIpState): unknown {
    const droplet = this.state.droplets.find((d) => d.id === ip.dropletId)
    return {
      ip: ip.ip,
      region: regionJson(ip.region),
      droplet: droplet ? this.dropletJson(droplet) : null,
      locked: ip.pendingAction !== undefined,
      project_id: ip.projectId,
    }
  }

  private actionJson(action: DigitalOceanAction): unknown {
    return { ...action, region: regionJson(action.region_slug) }
  }

  private reservedIp(ip: string | undefined): DigitalOceanReservedIpState {
    const found = this.state.reservedIps.find((r) => r.ip === ip)
    if (!found) throw notFound()
    return found
  }

  private postAction({ params, body }: RestRequest): RestAnswer {
    this.need(SCOPES.reservedIpUpdate)
    const ip = this.reservedIp(params.ip)
    if (body.type !== 'assign' && body.type !== 'unassign')
      throw unprocessable('type must be one of: assign, unassign')
    let target: number | null = null
    if (body.type === 'assign') {
      const dropletId = integerField(body.droplet_id)
      if (dropletId === undefined) throw unprocessable('droplet_id is required and must be an integer')
      const droplet = this.state.droplets.find((d) => d.id === dropletId)
      if (!droplet) throw unprocessable(`Droplet ${dropletId} could not be found`)
      if (droplet.region !== ip.region)
        throw unprocessable('The Droplet and the reserved IP must be in the same region')
      target = dropletId
    } else if (ip.dropletId === null) throw unprocessable('The reserved IP is not assigned to a Droplet')
    if (ip.pendingAction !== undefined)
      throw unprocessable('The reserved IP has a pending action; try again later')

    const action: DigitalOceanAction = {
      id: this.nextActionId++,
      status: 'in-progress',
      type: body.type === 'assign' ? 'assign_ip' : 'unassign_ip',
      started_at: isoZ(Date.now()),
      completed_at: null,
      resource_id: addressNumber(ip.ip),
      resource_type: 'reserved_ip',
      region_slug: ip.region,
    }
    this.state.actions.push(action)
    ip.pendingAction = action.id
    this.schedule(this.pendingMs, () => {
      // Another droplet's hold on the address ends with the move.
      ip.dropletId = target
      ip.pendingAction = undefined
      action.status = 'completed'
      action.completed_at = isoZ(Date.now())
    })
    return { status: 201, body: { action: this.actionJson(action) } }
  }

  private action(id: string | undefined): DigitalOceanAction {
    const found = this.state.actions.find((a) => String(a.id) === id)
    if (!found) throw notFound()
    return found
  }

  private buildRoutes(): RestRoute[] {
    const get = (path: string, scope: string, handle: (request: RestRequest) => unknown): RestRoute => ({
      method: 'GET',
      path,
      handle: (request) => {
        this.need(scope)
        return { body: handle(request) }
      },
    })
    return [
      get('reserved_ips', SCOPES.reservedIpRead, ({ query, headers }) =>
        this.page('reserved_ips', this.state.reservedIps, query, headers, (r) => this.reservedIpJson(r)),
      ),
      get('reserved_ips/{ip}', SCOPES.reservedIpRead, ({ params }) => ({
        reserved_ip: this.reservedIpJson(this.reservedIp(params.ip)),
      })),
      { method: 'POST', path: 'reserved_ips/{ip}/actions', handle: (r) => this.postAction(r) },
      get('reserved_ips/{ip}/actions/{actionId}', SCOPES.reservedIpRead, ({ params }) => {
        const ip = this.reservedIp(params.ip)
        const action = this.action(params.actionId)
        if (action.resource_id !== addressNumber(ip.ip)) throw notFound()
        return { action: this.actionJson(action) }
      }),
      get('actions/{id}', SCOPES.actionsRead, ({ params }) => ({
        action: this.actionJson(this.action(params.id)),
      })),
      get('droplets', SCOPES.dropletRead, ({ query, headers }) => {
        const name = query.get('name')
        const tag = query.get('tag_name')
        if (name !== null && tag !== null) throw unprocessable('name and tag_name cannot be combined')
        const droplets = this.state.droplets.filter(
          (d) =>
            (name === null || d.name.toLowerCase() === name.toLowerCase()) &&
            (tag === null || d.tags.includes(tag)),
        )
        return this.page('droplets', droplets, query, headers, (d) => this.dropletJson(d))
      }),
      get('droplets/{id}', SCOPES.dropletRead, ({ params }) => {
        const droplet = this.state.droplets.find((d) => String(d.id) === params.id)
        if (!droplet) throw notFound()
        return { droplet: this.dropletJson(droplet) }
      }),
    ]
  }

  /** One page of a collection with `links` and `meta.total`, as the API pages. */
  private page<T>(
    key: string,
    items: T[],
    query: URLSearchParams,
    headers: IncomingMessage['headers'],
    json: (item: T) => unknown,
  ): unknown {
    const {
      items: slice,
      page,
      perPage,
      lastPage: last,
    } = pageOf(items, query, 20, 200, (name) => apiError(400, 'bad_request', `invalid ${name}`))
    const url = (n: number) => {
      const next = new URLSearchParams(query)
      next.set('page', String(n))
      next.set('per_page', String(perPage))
      return `http://${headers.host ?? '127.0.0.1'}/v2/${key}?${next.toString()}`
    }
    const pages: Record<string, string> = {}
    if (page > 1) Object.assign(pages, { first: url(1), prev: url(page - 1) })
    if (page < last) Object.assign(pages, { next: url(page + 1), last: url(last) })
    return {
      [key]: slice.map(json),
      links: Object.keys(pages).length > 0 ? { pages } : {},
      meta: { total: items.length },
    }
  }
}

/** The flags of `ipmove emulate digitalocean`, as typed on the command line. */
export type EmulateDigitalOceanFlags = EmulateFlags

export const { optionsFromFlags: digitalOceanEmulatorOptionsFromFlags, emulate: emulateDigitalOcean } =
  emulateServices<EmulateDigitalOceanFlags, DigitalOceanFixture, RunningDigitalOceanEmulator>(
    parseDigitalOceanFixture,
    startDigitalOceanEmulator,
    defaultDigitalOceanFixture,
  )
