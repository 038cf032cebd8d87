/**
 * An emulator of the part of the Hetzner Cloud API ipmove uses (floating IPs,
 * their actions, servers) and of the server metadata service, for our tests,
 * demos and users' CI (`ipmove emulate hetzner`). Plain HTTP on loopback; point
 * a client at it with HCLOUD_ENDPOINT (the name the hcloud CLI and the Ansible
 * collection read).
 *
 * Confirmed from the published API reference (docs.hetzner.cloud, as mirrored in
 * the API document of github.com/smrezvani/Hetzner-Cloud-API-Document, 2025) and
 * hcloud-go (github.com/hetznercloud/hcloud-go, hcloud/schema, error.go,
 * client_handler_retry*.go, metadata/client.go):
 * - `Authorization: Bearer TOKEN`; a token belongs to one project; "Read" tokens
 *   may only GET (error code `token_readonly`);
 * - the error envelope `{"error":{"code","message","details"}}` and its codes;
 *   HTTP statuses 409 `conflict`, 423 `locked`, 429 `rate_limit_exceeded`,
 *   502 `bad_gateway`, 503 `unavailable`, 504 `timeout` (hcloud-go's retry tests);
 * - `GET /floating_ips[?name=]` and `GET /servers[?name=]` (exact name) with
 *   `page`/`per_page` (default 25, at most 50) and `meta.pagination`; the list has
 *   no filter by address, so a client finds an IP by listing;
 * - the FloatingIP schema (`id, name, description, ip, type, server, dns_ptr,
 *   home_location, blocked, protection, labels, created`); an ipv6 floating IP's
 *   `ip` is its /64 network;
 * - `POST /floating_ips/{id}/actions/assign {"server": ID}` answers 201 with an
 *   Action (`id, command: assign_floating_ip, status running|success|error,
 *   progress, started, finished, resources, error`); its operation error 422
 *   `floating_ip_assigned`; actions are read with `GET /actions/{id}`,
 *   `GET /actions?id=` or `GET /floating_ips/{id}/actions/{action_id}`; listing
 *   every action of a project was removed on 2025-01-30;
 * - `locked`: "there is already an Action running" on the item;
 * - rate limiting counts every request, authenticated or not; headers
 *   `RateLimit-Limit` (per hour), `RateLimit-Remaining`, `RateLimit-Reset` (UNIX
 *   time of full recovery); default 3600 per hour, refilled by one per second;
 * - metadata at `http://169.254.169.254/hetzner/v1/metadata[/hostname|/instance-id|
 *   /public-ipv4|/region|/availability-zone]`, plain text (YAML for the summary).
 *
 * - server and floating IP names are unique per project (the fixture refuses
 *   duplicates);
 *
 * Unconfirmed, chosen here:
 * - the HTTP status of `unauthorized` (401), `forbidden`/`token_readonly` (403),
 *   `not_found` (404), `invalid_input`/`json_error` (400), and every message text
 *   (the 401 says "unable to authenticate", as public reports quote it);
 * - when `floating_ip_assigned` is given: here, assigning to the server that
 *   already holds the IP (reassigning from another server works, as failover
 *   scripts rely on);
 * - a missing target server answers 404 `not_found`; what is locked: the floating
 *   IP and the target server while the assign action runs (the action's resources);
 * - the assignment shows in GET answers only once the action succeeds;
 * - `GET /actions` without `id` answers 410 `deprecated_api_endpoint`;
 * - no `Retry-After` on 429 (none is documented); the metadata service answers 404
 *   text when no --this-host is set, and is served on the API's port.
 */
import type { IncomingMessage } from 'node:http'
import { usageError } from '../../src/errors.js'
import { parseIp, shown } from '../../src/validate.js'
import { type EmulateFlags, emulateServices } from '../emulate.js'
import {
  bearerHolder,
  integerField,
  isoSeconds,
  pageOf,
  RequestBudget,
  type RestAnswer,
  RestEmulator,
  RestError,
  type RestRecordedRequest,
  type RestRequest,
  type RestRoute,
  type RunningRestEmulator,
  resolveThisHost,
} from '../rest.js'
import type { EmulatorOptions } from '../server.js'
import {
  checkUniqueNames,
  defaultHetznerFixture,
  type HetznerFixture,
  type HetznerFixtureFloatingIp,
  type HetznerFixtureServer,
  parseHetznerFixture,
} from './fixture.js'

/** `pendingMs`: how long an action runs before it succeeds, ms; default 1000. */
export type HetznerEmulatorOptions = EmulatorOptions<HetznerFixture>

export interface HetznerAction {
  id: number
  command: string
  status: 'running' | 'success' | 'error'
  progress: number
  started: string
  finished: string | null
  resources: Array<{ id: number; type: 'server' | 'floating_ip' }>
  error: { code: string; message: string } | null
}

export interface HetznerFloatingIpState extends HetznerFixtureFloatingIp {
  created: string
  /** The running action on this IP, if any. */
  runningAction?: number
}

export interface HetznerEmulatorState {
  tokens: HetznerFixture['tokens']
  servers: HetznerFixtureServer[]
  floatingIps: HetznerFloatingIpState[]
  actions: HetznerAction[]
  rateLimitPerHour: number
  /** Server id the metadata service reports. */
  thisHost: number | undefined
}

/** `url`: e.g. http://127.0.0.1:PORT/v1; `env`: HCLOUD_ENDPOINT, HCLOUD_TOKEN, IPMOVE_HETZNER_METADATA_URL. */
export type RunningHetznerEmulator = RunningRestEmulator<HetznerEmulatorState>

const PREFIX = 'v1'
const METADATA = ['hetzner', 'v1', 'metadata']
const CREATED = '2026-01-05T09:00:00+00:00'

const LOCATIONS: Record<string, { id: number; description: string; country: string; city: string }> = {
  fsn1: { id: 1, description: 'Falkenstein DC Park 1', country: 'DE', city: 'Falkenstein' },
  nbg1: { id: 2, description: 'Nuremberg DC Park 1', country: 'DE', city: 'Nuremberg' },
  hel1: { id: 3, description: 'Helsinki DC Park 1', country: 'FI', city: 'Helsinki' },
}

/** The error codes' HTTP statuses, for faults and generic errors. */
const CODE_OF_STATUS: Record<number, string> = {
  400: 'invalid_input',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
  413: 'invalid_input',
  422: 'invalid_input',
  423: 'locked',
  429: 'rate_limit_exceeded',
  500: 'server_error',
  502: 'bad_gateway',
  503: 'unavailable',
  504: 'timeout',
}

function apiError(status: number, code: string, message: string, details: unknown = {}): RestError {
  return new RestError(status, { error: { code, message, details } })
}

const invalidField = (field: string, message: string) =>
  apiError(400, 'invalid_input', `invalid input in field '${field}': ${message}`, {
    fields: [{ name: field, messages: [message] }],
  })

function location(name: string) {
  const known = LOCATIONS[name] ?? { id: 99, description: name, country: 'DE', city: name }
  return { ...known, name, latitude: 50.47612, longitude: 12.370071, network_zone: 'eu-central' }
}

/** `page`/`per_page` over a list, with the API's `meta.pagination`. */
function paginate<T>(items: T[], query: URLSearchParams): { page: T[]; meta: unknown } {
  const {
    items: slice,
    page,
    perPage,
    lastPage,
  } = pageOf(items, query, 25, 50, (name) => invalidField(name, 'must be a positive integer'))
  return {
    page: slice,
    meta: {
      pagination: {
        page,
        per_page: perPage,
        previous_page: page > 1 ? page - 1 : null,
        next_page: page < lastPage ? page + 1 : null,
        last_page: lastPage,
        total_entries: items.length,
      },
    },
  }
}

export async function startHetznerEmulator(
  options: HetznerEmulatorOptions = {},
): Promise<RunningHetznerEmulator> {
  return new HetznerEmulator(options).start()
}

class HetznerEmulator extends RestEmulator<HetznerEmulatorState, RestRecordedRequest> {
  readonly state: HetznerEmulatorState
  protected readonly prefix = [PREFIX]
  protected readonly routes: readonly RestRoute[]
  protected readonly credentialsKey = 'tokens'
  protected readonly dirPrefix = 'ipmove-hetzner-emulator-'
  private budget: RequestBudget
  private nextActionId = 9_000_001

  constructor(options: HetznerEmulatorOptions) {
    super(options, 1000)
    this.state = this.freshState()
    this.budget = new RequestBudget(this.state.rateLimitPerHour, 3600)
    this.routes = this.buildRoutes()
  }

  protected freshState(): HetznerEmulatorState {
    const options = this.options as HetznerEmulatorOptions
    const fixture = structuredClone(options.fixture ?? defaultHetznerFixture())
    checkUniqueNames(fixture, (where, what) => {
      throw usageError(`the fixture: ${where} ${what}`)
    })
    for (const ip of fixture.floatingIps) {
      const block = parseIp(ip.ip, `floating IP ${ip.id}`)
      if ((ip.type === 'ipv4') !== (block.version === 4))
        throw usageError(`floating IP ${ip.id}: ${shown(ip.ip)} is not of type ${ip.type}`)
    }
    return {
      tokens: fixture.tokens,
      servers: fixture.servers,
      floatingIps: fixture.floatingIps.map((ip) => ({ ...ip, created: CREATED })),
      actions: [],
      rateLimitPerHour: fixture.rateLimitPerHour,
      thisHost: resolveThisHost(fixture.servers, options.thisHost, 'server'),
    }
  }

  protected override afterReset(): void {
    this.budget = new RequestBudget(this.state.rateLimitPerHour, 3600)
  }

  protected override apiUrl(origin: string): string {
    return `${origin}/${PREFIX}`
  }

  protected clientEnv(origin: string): Record<string, string> {
    return {
      HCLOUD_ENDPOINT: `${origin}/${PREFIX}`,
      HCLOUD_TOKEN: this.state.tokens.find((t) => !t.readOnly)?.token ?? '',
      IPMOVE_HETZNER_METADATA_URL: `${origin}/${METADATA.join('/')}`,
    }
  }

  protected errorAnswer(status: number, reason: 'fault' | 'not_found' | 'bad_body'): RestError {
    if (reason === 'not_found') return apiError(404, 'not_found', 'not found')
    if (reason === 'bad_body')
      return status === 413
        ? apiError(413, 'invalid_input', 'request too large')
        : apiError(400, 'json_error', 'invalid JSON')
    return apiError(status, CODE_OF_STATUS[status] ?? 'server_error', `injected fault (HTTP ${status})`)
  }

  protected authenticate(request: IncomingMessage): void {
    const found = bearerHolder(request, this.state.tokens, () =>
      apiError(401, 'unauthorized', 'unable to authenticate'),
    )
    if (found.readOnly && request.method !== 'GET')
      throw apiError(403, 'token_readonly', 'The token is only allowed to perform GET requests')
  }

  protected rateLimit(): { headers: Record<string, string>; refused?: RestError } {
    const allowed = this.budget.take()
    const headers = {
      'RateLimit-Limit': String(this.budget.limit),
      'RateLimit-Remaining': String(this.budget.remaining),
      'RateLimit-Reset': String(this.budget.resetAt()),
    }
    if (allowed) return { headers }
    return {
      headers,
      refused: apiError(
        429,
        'rate_limit_exceeded',
        `limit of ${this.budget.limit} requests per hour reached`,
      ),
    }
  }

  protected metadata(segments: readonly string[]): RestAnswer | undefined {
    if (!METADATA.every((p, i) => segments[i] === p) || segments.length > METADATA.length + 1)
      return undefined
    const server = this.state.servers.find((s) => s.id === this.state.thisHost)
    if (!server) return { status: 404, body: 'not found\n' }
    const loc = location(server.location)
    const values: Record<string, string> = {
      hostname: server.name,
      'instance-id': String(server.id),
      'public-ipv4': server.ipv4,
      region: loc.network_zone,
      'availability-zone': `${server.location}-dc14`,
    }
    const item = segments[METADATA.length]
    if (item === undefined)
      return {
        body: `${Object.entries(values)
          .map(([k, v]) => `${k}: ${v}`)
          .join('\n')}\n`,
      }
    const value = values[item]
    return value === undefined ? { status: 404, body: 'not found\n' } : { body: value }
  }

  private serverJson(server: HetznerFixtureServer): unknown {
    const loc = location(server.location)
    return {
      id: server.id,
      name: server.name,
      status: 'running',
      created: CREATED,
      public_net: {
        ipv4: {
          id: server.id * 10,
          ip: server.ipv4,
          blocked: false,
          dns_ptr: `static.${server.ipv4}.example`,
        },
        ipv6: { id: server.id * 10 + 1, ip: server.ipv6, blocked: false, dns_ptr: [] },
        floating_ips: this.state.floatingIps.filter((f) => f.server === server.id).map((f) => f.id),
        firewalls: [],
      },
      datacenter: {
        id: loc.id,
        name: `${server.location}-dc14`,
        description: `${loc.city} DC 14`,
        location: loc,
      },
      labels: {},
      protection: { delete: false, rebuild: false },
    }
  }

  private floatingIpJson(ip: HetznerFloatingIpState): unknown {
    return {
      id: ip.id,
      name: ip.name,
      description: null,
      ip: ip.ip,
      type: ip.type,
      server: ip.server,
      dns_ptr: ip.type === 'ipv4' ? [{ ip: ip.ip, dns_ptr: `static.${ip.ip}.example` }] : [],
      home_location: location(ip.homeLocation),
      blocked: false,
      protection: { delete: false },
      labels: {},
      created: ip.created,
    }
  }

  private floatingIp(id: string | undefined): HetznerFloatingIpState {
    const found = this.state.floatingIps.find((f) => String(f.id) === id)
    if (!found) throw apiError(404, 'not_found', `Floating IP with ID ${id} not found`)
    return found
  }

  private action(id: string | undefined): HetznerAction {
    const found = this.state.actions.find((a) => String(a.id) === id)
    if (!found) throw apiError(404, 'not_found', `action with ID ${id} not found`)
    return found
  }

  /** Start an action on a floating IP (and a server); it succeeds after pendingMs. */
  private startAction(
    command: string,
    ip: HetznerFloatingIpState,
    serverId: number | null,
    apply: () => void,
  ): HetznerAction {
    const busy = (id: number) =>
      this.state.actions.some(
        (a) => a.status === 'running' && a.resources.some((r) => r.type === 'server' && r.id === id),
      )
    if (ip.runningAction !== undefined || (serverId !== null && busy(serverId)))
      throw apiError(
        423,
        'locked',
        'the item you are trying to access is locked (there is already an action running)',
      )
    const action: HetznerAction = {
      id: this.nextActionId++,
      command,
      status: 'running',
      progress: 0,
      started: isoSeconds(Date.now()),
      finished: null,
      resources: [
        ...(serverId === null ? [] : [{ id: serverId, type: 'server' as const }]),
        { id: ip.id, type: 'floating_ip' as const },
      ],
      error: null,
    }
    this.state.actions.push(action)
    ip.runningAction = action.id
    this.schedule(this.pendingMs, () => {
      apply()
      action.status = 'success'
      action.progress = 100
      action.finished = isoSeconds(Date.now())
      ip.runningAction = undefined
    })
    return action
  }

  private assign({ params, body }: RestRequest): RestAnswer {
    const ip = this.floatingIp(params.id)
    if (body.server === undefined) throw invalidField('server', 'Missing data for required field.')
    const serverId = integerField(body.server)
    if (serverId === undefined) throw invalidField('server', 'Not a valid integer.')
    if (!this.state.servers.some((s) => s.id === serverId))
      throw apiError(404, 'not_found', `server with ID ${serverId} not found`)
    if (ip.server === serverId && ip.runningAction === undefined)
      throw apiError(422, 'floating_ip_assigned', 'The Floating IP is already assigned')
    const action = this.startAction('assign_floating_ip', ip, serverId, () => {
      ip.server = serverId
    })
    return { status: 201, body: { action } }
  }

  private unassign({ params }: RestRequest): RestAnswer {
    const ip = this.floatingIp(params.id)
    const action = this.startAction('unassign_floating_ip', ip, ip.server, () => {
      ip.server = null
    })
    return { status: 201, body: { action } }
  }

  private buildRoutes(): RestRoute[] {
    const get = (path: string, handle: (request: RestRequest) => unknown): RestRoute => ({
      method: 'GET',
      path,
      handle: (request) => ({ body: handle(request) }),
    })
    return [
      get('floating_ips', ({ query }) => {
        const name = query.get('name')
        const all = this.state.floatingIps.filter((f) => name === null || f.name === name)
        const { page, meta } = paginate(all, query)
        return { floating_ips: page.map((f) => this.floatingIpJson(f)), meta }
      }),
      get('floating_ips/{id}', ({ params }) => ({
        floating_ip: this.floatingIpJson(this.floatingIp(params.id)),
      })),
      { method: 'POST', path: 'floating_ips/{id}/actions/assign', handle: (r) => this.assign(r) },
      { method: 'POST', path: 'floating_ips/{id}/actions/unassign', handle: (r) => this.unassign(r) },
      get('floating_ips/{id}/actions', ({ params, query }) => {
        const ip = this.floatingIp(params.id)
        const mine = this.state.actions.filter((a) =>
          a.resources.some((r) => r.type === 'floating_ip' && r.id === ip.id),
        )
        const { page, meta } = paginate(mine, query)
        return { actions: page, meta }
      }),
      get('floating_ips/{id}/actions/{actionId}', ({ params }) => {
        const ip = this.floatingIp(params.id)
        const action = this.action(params.actionId)
        if (!action.resources.some((r) => r.type === 'floating_ip' && r.id === ip.id))
          throw apiError(404, 'not_found', `action with ID ${params.actionId} not found`)
        return { action }
      }),
      get('actions', ({ query }) => {
        const ids = query.getAll('id')
        if (ids.length === 0)
          throw new RestError(410, {
            error: {
              code: 'deprecated_api_endpoint',
              message: 'API functionality was removed',
              details: {
                announcement:
                  'https://docs.hetzner.cloud/changelog#2025-01-30-listing-arbitrary-actions-in-the-actions-list-endpoint-is-removed',
              },
            },
          })
        const actions = this.state.actions.filter((a) => ids.includes(String(a.id)))
        const { page, meta } = paginate(actions, query)
        return { actions: page, meta }
      }),
      get('actions/{id}', ({ params }) => ({ action: this.action(params.id) })),
      get('servers', ({ query }) => {
        const name = query.get('name')
        const all = this.state.servers.filter((s) => name === null || s.name === name)
        const { page, meta } = paginate(all, query)
        return { servers: page.map((s) => this.serverJson(s)), meta }
      }),
      get('servers/{id}', ({ params }) => {
        const server = this.state.servers.find((s) => String(s.id) === params.id)
        if (!server) throw apiError(404, 'not_found', `server with ID ${params.id} not found`)
        return { server: this.serverJson(server) }
      }),
    ]
  }
}

/** The flags of `ipmove emulate hetzner`, as typed on the command line. */
export type EmulateHetznerFlags = EmulateFlags

export const { optionsFromFlags: hetznerEmulatorOptionsFromFlags, emulate: emulateHetzner } = emulateServices<
  EmulateHetznerFlags,
  HetznerFixture,
  RunningHetznerEmulator
>(parseHetznerFixture, startHetznerEmulator, defaultHetznerFixture)
