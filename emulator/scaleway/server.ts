/**
 * An emulator of the part of the Scaleway Instance API ipmove uses (flexible
 * IPs and servers, by zone) and of the Instance metadata service, for our
 * tests, demos and users' CI (`ipmove emulate scaleway`). Plain HTTP on loopback.
 *
 * Which API: Scaleway has two "flexible IP" APIs. `flexible-ip/v1alpha1`
 * (`POST …/fips/attach`) is for Elastic Metal (bare-metal) servers only; an
 * Instance's flexible IP is an Instance API IP, moved with
 * `PATCH /instance/v1/zones/{zone}/ips/{ip} {"server": ID}`. "Attach to a server
 * in a zone" is the Instance case, so that is what this emulates.
 *
 * Confirmed from scaleway-sdk-go (github.com/scaleway/scaleway-sdk-go:
 * api/instance/v1/instance_sdk.go, api/instance/v1/instance_metadata_sdk.go,
 * api/flexibleip/v1alpha1, scw/errors.go and errors_test.go, scw/env.go):
 * - the secret key in `X-Auth-Token`; env SCW_SECRET_KEY, SCW_ACCESS_KEY,
 *   SCW_DEFAULT_ZONE, SCW_DEFAULT_PROJECT_ID, SCW_API_URL;
 * - `{ip}` in the path is the IP's id or its address; `PATCH` takes `server`
 *   (an id, or null to detach), `reverse`, `tags` and answers `{ip}`; the IP is
 *   `id, address, reverse, server {id, name} | null, organization, project, tags,
 *   type (routed_ipv4…), state (detached|attached|pending), prefix, ipam_id, zone`;
 * - `GET …/servers?name=` filters by name *containing* the text ("server1" also
 *   returns "server100"): clients must match exactly themselves; lists carry
 *   `total_count`, `per_page` (here default 50, at most 100) and `page`;
 * - Instance API errors are `{"type","message",…}`: 404 `unknown_resource`
 *   with the id quoted in the message, 400 `invalid_request_error` with `fields`,
 *   409 `conflict`; authentication failures are `denied_authentication` with a
 *   `method` and a `reason` (`invalid_argument`: missing or malformed, `not_found`);
 *   IAM refusals are `permissions_denied` with `details [{resource, action}]`;
 * - metadata at `http://169.254.42.42/conf?format=json`: `id, name, hostname,
 *   project, commercial_type, public_ip, public_ips_v4, location.zone_id, tags`.
 *
 * Unconfirmed, chosen here:
 * - HTTP 401 for denied_authentication and 403 for permissions_denied, and all
 *   message texts; a server of another zone is `unknown_resource` (404);
 * - a routed IP moving to another server is `pending` for --pending-ms, then
 *   `attached` (the PATCH answers at once with the new server and state pending);
 *   a PATCH while pending answers 409 `transient_state`;
 * - Scaleway publishes neither rate-limit headers nor limits for the Instance
 *   API: none are sent, and 429 comes only from an injected fault;
 * - the metadata service answers the JSON form for /conf whatever the query,
 *   404 when no --this-host is set, and is served on the API's port.
 */
import type { IncomingMessage } from 'node:http'
import { usageError } from '../../src/errors.js'
import { parseIp, shown } from '../../src/validate.js'
import { type EmulateFlags, emulateServices } from '../emulate.js'
import {
  pageOf,
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
  defaultScalewayFixture,
  parseScalewayFixture,
  type ScalewayFixture,
  type ScalewayFixtureIp,
  type ScalewayFixtureServer,
} from './fixture.js'

/** `pendingMs`: how long a moved IP stays `pending`, ms; default 500. */
export type ScalewayEmulatorOptions = EmulatorOptions<ScalewayFixture>

export interface ScalewayIpState extends ScalewayFixtureIp {
  state: 'attached' | 'detached' | 'pending'
}

export interface ScalewayEmulatorState {
  project: string
  keys: ScalewayFixture['keys']
  servers: ScalewayFixtureServer[]
  ips: ScalewayIpState[]
  /** Server id the metadata service reports. */
  thisHost: string | undefined
}

/** `url`: e.g. http://127.0.0.1:PORT (paths start with /instance/v1); `env`: SCW_API_URL, SCW_ACCESS_KEY, SCW_SECRET_KEY, SCW_DEFAULT_ZONE, SCW_DEFAULT_PROJECT_ID, IPMOVE_SCALEWAY_METADATA_URL. */
export type RunningScalewayEmulator = RunningRestEmulator<ScalewayEmulatorState>

const ORGANIZATION = '0a0b0c0d-0e0f-4a1b-8c2d-3e4f5a6b7c8d'

const TYPE_OF_STATUS: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'denied_authentication',
  403: 'permissions_denied',
  404: 'unknown_resource',
  409: 'conflict',
  413: 'invalid_request_error',
  429: 'too_many_requests',
  500: 'internal_error',
  503: 'service_unavailable',
}

const apiError = (status: number, type: string, message: string, extra: object = {}) =>
  new RestError(status, { type, message, ...extra })
const unknown = (what: string, id: string) => apiError(404, 'unknown_resource', `${what} "${id}" not found`)

export async function startScalewayEmulator(
  options: ScalewayEmulatorOptions = {},
): Promise<RunningScalewayEmulator> {
  return new ScalewayEmulator(options).start()
}

class ScalewayEmulator extends RestEmulator<ScalewayEmulatorState, RestRecordedRequest> {
  readonly state: ScalewayEmulatorState
  protected readonly prefix = ['instance', 'v1']
  protected readonly routes: readonly RestRoute[]
  protected readonly credentialsKey = 'keys'
  protected readonly dirPrefix = 'ipmove-scaleway-emulator-'
  /** Whether the current request's key may only read, set by authenticate(). */
  private readOnly = false

  constructor(options: ScalewayEmulatorOptions) {
    super(options, 500)
    this.state = this.freshState()
    this.routes = this.buildRoutes()
  }

  protected freshState(): ScalewayEmulatorState {
    const options = this.options as ScalewayEmulatorOptions
    const fixture = structuredClone(options.fixture ?? defaultScalewayFixture())
    for (const ip of fixture.ips) {
      if (parseIp(ip.address, 'flexible IP').version !== 4)
        throw usageError(`flexible IP ${shown(ip.address)}: only IPv4 flexible IPs are emulated`)
    }
    return {
      project: fixture.project,
      keys: fixture.keys,
      servers: fixture.servers,
      ips: fixture.ips.map((ip) => ({ ...ip, state: ip.server === null ? 'detached' : 'attached' })),
      thisHost: resolveThisHost(fixture.servers, options.thisHost, 'server'),
    }
  }

  protected clientEnv(origin: string): Record<string, string> {
    const key = this.state.keys.find((k) => !k.readOnly)
    return {
      SCW_API_URL: origin,
      SCW_ACCESS_KEY: key?.accessKey ?? '',
      SCW_SECRET_KEY: key?.secretKey ?? '',
      SCW_DEFAULT_ZONE: this.state.servers[0]?.zone ?? 'fr-par-1',
      SCW_DEFAULT_PROJECT_ID: this.state.project,
      IPMOVE_SCALEWAY_METADATA_URL: origin,
    }
  }

  protected errorAnswer(status: number, reason: 'fault' | 'not_found' | 'bad_body'): RestError {
    if (reason === 'not_found') return apiError(404, 'not_found', 'resource is not found')
    if (reason === 'bad_body') return apiError(status, 'invalid_request_error', 'Invalid JSON body')
    return apiError(status, TYPE_OF_STATUS[status] ?? 'internal_error', `injected fault (HTTP ${status})`)
  }

  protected authenticate(request: IncomingMessage): void {
    const header = request.headers['x-auth-token']
    const secret = Array.isArray(header) ? header[0] : header
    const denied = (reason: string) =>
      apiError(401, 'denied_authentication', 'authentication is denied', { method: 'api_key', reason })
    if (secret === undefined || !/^[0-9a-f-]{36}$/.test(secret)) throw denied('invalid_argument')
    const key = this.state.keys.find((k) => k.secretKey === secret)
    if (!key) throw denied('not_found')
    this.readOnly = key.readOnly
  }

  protected rateLimit(): { headers: Record<string, string> } {
    return { headers: {} }
  }

  protected metadata(segments: readonly string[]): RestAnswer | undefined {
    if (segments.length !== 1 || segments[0] !== 'conf') return undefined
    const server = this.state.servers.find((s) => s.id === this.state.thisHost)
    if (!server) return { status: 404, body: 'not found\n' }
    const ips = this.state.ips.filter((ip) => ip.server === server.id && ip.state !== 'detached')
    const ipJson = (ip: ScalewayIpState) => ({
      id: ip.id,
      address: ip.address,
      dynamic: false,
      gateway: '62.210.0.1',
      netmask: '32',
      family: 'inet',
      provisioning_mode: 'dhcp',
      tags: [],
    })
    return {
      body: {
        id: server.id,
        name: server.name,
        hostname: server.name,
        organization: ORGANIZATION,
        project: this.state.project,
        commercial_type: 'DEV1-S',
        ...(ips[0] ? { public_ip: ipJson(ips[0]) } : {}),
        public_ips_v4: ips.map(ipJson),
        location: { zone_id: server.zone },
        tags: [],
      },
    }
  }

  private ipJson(ip: ScalewayIpState): unknown {
    const server = this.state.servers.find((s) => s.id === ip.server)
    return {
      id: ip.id,
      address: ip.address,
      reverse: null,
      server: server ? { id: server.id, name: server.name } : null,
      organization: ORGANIZATION,
      project: this.state.project,
      tags: [],
      type: 'routed_ipv4',
      state: ip.state,
      prefix: `${ip.address}/32`,
      ipam_id: ip.id.replace(/^2/, '3'),
      zone: ip.zone,
    }
  }

  private serverJson(server: ScalewayFixtureServer): unknown {
    const ips = this.state.ips.filter((ip) => ip.server === server.id)
    return {
      id: server.id,
      name: server.name,
      hostname: server.name,
      state: 'running',
      zone: server.zone,
      commercial_type: 'DEV1-S',
      organization: ORGANIZATION,
      project: this.state.project,
      tags: [],
      public_ip: ips[0] ? { id: ips[0].id, address: ips[0].address, dynamic: false } : null,
      public_ips: ips.map((ip) => ({ id: ip.id, address: ip.address, dynamic: false, state: ip.state })),
    }
  }

  private zone(zone: string | undefined): string {
    if (!zone || !/^[a-z]{2}-[a-z]{3}-\d$/.test(zone))
      throw apiError(400, 'invalid_request_error', 'Validation Error', { fields: { zone: ['invalid zone'] } })
    return zone
  }

  private ip(zone: string, idOrAddress: string | undefined): ScalewayIpState {
    const found = this.state.ips.find(
      (ip) => ip.zone === zone && (ip.id === idOrAddress || ip.address === idOrAddress),
    )
    if (!found) throw unknown('IP', idOrAddress ?? '')
    return found
  }

  private patchIp({ params, body }: RestRequest): RestAnswer {
    const zone = this.zone(params.zone)
    const ip = this.ip(zone, params.ip)
    if (this.readOnly)
      throw apiError(403, 'permissions_denied', 'insufficient permissions', {
        details: [{ resource: 'instance_ip', action: 'update' }],
      })
    if (!('server' in body)) return { body: { ip: this.ipJson(ip) } }
    const target = body.server
    if (target !== null && typeof target !== 'string')
      throw apiError(400, 'invalid_request_error', 'Validation Error', {
        fields: { server: ['expected a string'] },
      })
    if (target !== null && !this.state.servers.some((s) => s.id === target && s.zone === zone))
      throw unknown('Server', target)
    if (ip.state === 'pending')
      throw apiError(409, 'transient_state', 'resource is in a transient state', {
        resource: 'instance_ip',
        resource_id: ip.id,
        current_state: 'pending',
      })
    if (ip.server === target) return { body: { ip: this.ipJson(ip) } }
    ip.server = target
    if (target === null) {
      ip.state = 'detached'
    } else {
      ip.state = 'pending'
      this.schedule(this.pendingMs, () => {
        ip.state = 'attached'
      })
    }
    return { body: { ip: this.ipJson(ip) } }
  }

  private buildRoutes(): RestRoute[] {
    const page = <T>(
      key: string,
      items: T[],
      query: URLSearchParams,
      json: (item: T) => unknown,
    ): RestAnswer => {
      const { items: slice } = pageOf(items, query, 50, 100, (name) =>
        apiError(400, 'invalid_request_error', 'Validation Error', { fields: { [name]: ['invalid'] } }),
      )
      return {
        body: { total_count: items.length, [key]: slice.map(json) },
        headers: { 'X-Total-Count': String(items.length) },
      }
    }
    return [
      {
        method: 'GET',
        path: 'zones/{zone}/ips',
        handle: ({ params, query }) => {
          const zone = this.zone(params.zone)
          return page(
            'ips',
            this.state.ips.filter((ip) => ip.zone === zone),
            query,
            (ip) => this.ipJson(ip),
          )
        },
      },
      {
        method: 'GET',
        path: 'zones/{zone}/ips/{ip}',
        handle: ({ params }) => ({ body: { ip: this.ipJson(this.ip(this.zone(params.zone), params.ip)) } }),
      },
      { method: 'PATCH', path: 'zones/{zone}/ips/{ip}', handle: (r) => this.patchIp(r) },
      {
        method: 'GET',
        path: 'zones/{zone}/servers',
        handle: ({ params, query }) => {
          const zone = this.zone(params.zone)
          const name = query.get('name')
          const servers = this.state.servers.filter(
            (s) => s.zone === zone && (name === null || s.name.includes(name)),
          )
          return page('servers', servers, query, (s) => this.serverJson(s))
        },
      },
      {
        method: 'GET',
        path: 'zones/{zone}/servers/{id}',
        handle: ({ params }) => {
          const zone = this.zone(params.zone)
          const server = this.state.servers.find((s) => s.id === params.id && s.zone === zone)
          if (!server) throw unknown('Instance', params.id ?? '')
          return { body: { server: this.serverJson(server) } }
        },
      },
    ]
  }
}

/** The flags of `ipmove emulate scaleway`, as typed on the command line. */
export type EmulateScalewayFlags = EmulateFlags

export const { optionsFromFlags: scalewayEmulatorOptionsFromFlags, emulate: emulateScaleway } =
  emulateServices<EmulateScalewayFlags, ScalewayFixture, RunningScalewayEmulator>(
    parseScalewayFixture,
    startScalewayEmulator,
    defaultScalewayFixture,
  )
