/**
 * An emulator of the failover part of the Hetzner Robot web service (dedicated
 * servers' failover IPs), for our tests, demos and users' CI
 * (`ipmove emulate hetzner-robot`). Plain HTTP on loopback.
 *
 * Confirmed from the Robot web-service documentation (robot.hetzner.com/doc/
 * webservice/en.html, the older wiki.hetzner.de copy, and the Failover article)
 * and clients that encode it (community.hrobot for Ansible and its tests, the
 * hrobot Rust crate's error table):
 * - HTTP Basic auth with a web-service user; 401 on a wrong user or password, and
 *   the client's address is blocked for 10 minutes after 3 failed logins;
 * - POST bodies are application/x-www-form-urlencoded; answers are JSON;
 * - errors `{"error":{"status","code","message"}}`; 400 `INVALID_INPUT` adds
 *   `missing` and `invalid` (arrays or null); the request limit answers 403
 *   `RATE_LIMIT_EXCEEDED` with `max_request` and `interval`; 503 in maintenance;
 * - `GET /failover` → `[{failover}]`, `GET /failover/{ip}` → `{failover: {ip,
 *   netmask, server_ip, server_ipv6_net, server_number, active_server_ip}}`;
 * - `POST /failover/{ip}` with `active_server_ip` (a server's main IP, or its IPv6
 *   net for an IPv6 failover) routes the IP and answers only once it is routed
 *   (40–60 s in reality); `DELETE /failover/{ip}` unroutes it, likewise;
 * - 404 `NOT_FOUND`, 404 `FAILOVER_NEW_SERVER_NOT_FOUND`, 409
 *   `FAILOVER_ALREADY_ROUTED` (community.hrobot's tests show the `failover` object
 *   beside the error), 409 `FAILOVER_LOCKED` (a switch is in progress), 500
 *   `FAILOVER_FAILED`, 500 `FAILOVER_NOT_COMPLETE`;
 * - switching is limited to 50 requests per hour (WWW::Hetzner::Robot's docs).
 *
 * Unconfirmed, chosen here:
 * - the limit on GET requests (200 per hour here), how limits refill (each
 *   request counts for one hour here), and that they count per client rather than
 *   per user;
 * - the 401 body (`UNAUTHORIZED` in the usual envelope), and that a blocked address
 *   gets 401 even with the right password;
 * - a GET during a switch shows the old route; a switch to the current target
 *   while another switch runs is FAILOVER_LOCKED, not FAILOVER_ALREADY_ROUTED;
 * - `--pending-ms` (default 5000) stands for the 40–60 s switch; the `.yaml`
 *   suffix is not served; dedicated servers have no metadata service, so
 *   --this-host is refused.
 */
import type { IncomingMessage } from 'node:http'
import { usageError } from '../../src/errors.js'
import { parseIp } from '../../src/validate.js'
import { type EmulateFlags, emulateServices } from '../emulate.js'
import {
  type RestAnswer,
  RestEmulator,
  RestError,
  type RestRecordedRequest,
  type RestRequest,
  type RestRoute,
  type RunningRestEmulator,
  SlidingWindowLimit,
} from '../rest.js'
import { type EmulatorOptions, sameText } from '../server.js'
import {
  defaultRobotFixture,
  parseRobotFixture,
  type RobotFixture,
  type RobotFixtureFailover,
  type RobotFixtureServer,
} from './fixture.js'

/** `pendingMs`: how long a switch takes before the POST answers (the real one: 40–60 s), ms; default 5000. */
export type RobotEmulatorOptions = EmulatorOptions<RobotFixture>

export interface RobotFailoverState extends RobotFixtureFailover {
  /** The target of the switch in progress, if any. */
  switchingTo?: string | null
}

export interface RobotEmulatorState {
  users: RobotFixture['users']
  servers: RobotFixtureServer[]
  failovers: RobotFailoverState[]
  /** Failed logins by client address, and until when (ms) an address is blocked. */
  failedLogins: Record<string, { count: number; blockedUntil?: number }>
}

/** `url`: e.g. http://127.0.0.1:PORT; `env`: HROBOT_URL, HROBOT_USER, HROBOT_PASSWORD. */
export type RunningRobotEmulator = RunningRestEmulator<RobotEmulatorState>

const BLOCK_AFTER_FAILURES = 3
const BLOCK_MS = 10 * 60_000

const CODE_OF_STATUS: Record<number, string> = {
  400: 'INVALID_INPUT',
  401: 'UNAUTHORIZED',
  403: 'RATE_LIMIT_EXCEEDED',
  404: 'NOT_FOUND',
  409: 'CONFLICT',
  413: 'INVALID_INPUT',
  500: 'INTERNAL_ERROR',
  503: 'MAINTENANCE',
}

function apiError(status: number, code: string, message: string, extra: object = {}, beside: object = {}) {
  return new RestError(status, { error: { status, code, message, ...extra }, ...beside })
}

const invalidInput = (missing: string[] | null, invalid: string[] | null) =>
  apiError(400, 'INVALID_INPUT', 'invalid input', { missing, invalid })

export async function startRobotEmulator(options: RobotEmulatorOptions = {}): Promise<RunningRobotEmulator> {
  return new RobotEmulator(options).start()
}

class RobotEmulator extends RestEmulator<RobotEmulatorState, RestRecordedRequest> {
  readonly state: RobotEmulatorState
  protected readonly prefix = []
  protected readonly routes: readonly RestRoute[]
  protected readonly credentialsKey = 'users'
  protected readonly dirPrefix = 'ipmove-robot-emulator-'
  private reads!: SlidingWindowLimit
  private switches!: SlidingWindowLimit

  constructor(options: RobotEmulatorOptions) {
    super(options, 5000)
    if (options.thisHost !== undefined)
      throw usageError('--this-host: dedicated servers have no metadata service to report one')
    this.state = this.freshState()
    this.afterReset()
    this.routes = this.buildRoutes()
  }

  protected freshState(): RobotEmulatorState {
    const fixture = structuredClone((this.options as RobotEmulatorOptions).fixture ?? defaultRobotFixture())
    for (const failover of fixture.failovers) parseIp(failover.ip, 'failover IP')
    return {
      users: fixture.users,
      servers: fixture.servers,
      failovers: fixture.failovers,
      failedLogins: {},
    }
  }

  /** Fresh hourly limits: at start and at each reset. */
  protected override afterReset(): void {
    const fixture = (this.options as RobotEmulatorOptions).fixture ?? defaultRobotFixture()
    this.reads = new SlidingWindowLimit(fixture.readsPerHour, 3600, fixture.readsPerHour, 3600)
    this.switches = new SlidingWindowLimit(fixture.switchesPerHour, 3600, fixture.switchesPerHour, 3600)
  }

  protected clientEnv(origin: string): Record<string, string> {
    return {
      HROBOT_URL: origin,
      HROBOT_USER: this.state.users[0]?.user ?? '',
      HROBOT_PASSWORD: this.state.users[0]?.password ?? '',
    }
  }

  protected errorAnswer(status: number, reason: 'fault' | 'not_found' | 'bad_body'): RestError {
    if (reason === 'not_found') return apiError(404, 'NOT_FOUND', 'Not found')
    if (reason === 'bad_body') return invalidInput(null, null)
    return apiError(status, CODE_OF_STATUS[status] ?? 'INTERNAL_ERROR', `injected fault (HTTP ${status})`)
  }

  /** Robot takes form fields, not JSON. */
  protected override parseBody(text: string): Record<string, unknown> {
    return Object.fromEntries(new URLSearchParams(text))
  }

  protected authenticate(request: IncomingMessage): void {
    const client = request.socket.remoteAddress ?? ''
    const record = this.state.failedLogins[client]
    const now = Date.now()
    const unauthorized = (message: string) => apiError(401, 'UNAUTHORIZED', message)
    if (record?.blockedUntil !== undefined && record.blockedUntil > now)
      throw unauthorized('Unauthorized: this address is blocked for 10 minutes after 3 failed logins')
    const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(request.headers.authorization ?? '')
    const decoded = match ? Buffer.from(match[1]!, 'base64').toString('utf8') : ''
    const colon = decoded.indexOf(':')
    const user = this.state.users.find(
      (u) =>
        colon > 0 && u.user === decoded.slice(0, colon) && sameText(u.password, decoded.slice(colon + 1)),
    )
    if (user) {
      delete this.state.failedLogins[client]
      return
    }
    const count = (record?.blockedUntil !== undefined ? 0 : (record?.count ?? 0)) + 1
    this.state.failedLogins[client] = {
      count,
      ...(count >= BLOCK_AFTER_FAILURES ? { blockedUntil: now + BLOCK_MS } : {}),
    }
    throw unauthorized('Unauthorized')
  }

  protected rateLimit(request: IncomingMessage): { headers: Record<string, string>; refused?: RestError } {
    const window = request.method === 'GET' ? this.reads : this.switches
    if (window.take() === 'ok') return { headers: {} }
    return {
      headers: {},
      refused: apiError(403, 'RATE_LIMIT_EXCEEDED', 'rate limit exceeded', {
        max_request: window.limit,
        interval: window.windowSeconds,
      }),
    }
  }

  protected metadata(): RestAnswer | undefined {
    return undefined
  }

  private failoverJson(failover: RobotFailoverState): unknown {
    const owner = this.state.servers.find((s) => s.number === failover.serverNumber)
    return {
      ip: failover.ip,
      netmask: failover.netmask,
      server_ip: owner?.ip ?? null,
      server_ipv6_net: owner?.ipv6Net ?? null,
      server_number: failover.serverNumber,
      active_server_ip: failover.activeServerIp,
    }
  }

  private failover(ip: string | undefined): RobotFailoverState {
    const found = this.state.failovers.find((f) => f.ip === ip)
    if (!found) throw apiError(404, 'NOT_FOUND', 'Failover IP not found')
    return found
  }

  /** Route (or with null, unroute) synchronously: the answer comes once the switch is done. */
  private async switch(failover: RobotFailoverState, target: string | null): Promise<RestAnswer> {
    if (failover.switchingTo !== undefined)
      throw apiError(409, 'FAILOVER_LOCKED', 'The failover IP is locked: another switch is in progress')
    if (failover.activeServerIp === target)
      throw apiError(
        409,
        'FAILOVER_ALREADY_ROUTED',
        target === null ? 'Failover already unrouted' : 'Failover already routed',
        {},
        { failover: this.failoverJson(failover) },
      )
    failover.switchingTo = target
    await this.delay(this.pendingMs)
    failover.activeServerIp = target
    failover.switchingTo = undefined
    return { body: { failover: this.failoverJson(failover) } }
  }

  private routeTo({ params, body }: RestRequest): Promise<RestAnswer> {
    const failover = this.failover(params.ip)
    const target = body.active_server_ip
    if (target === undefined || target === '') throw invalidInput(['active_server_ip'], null)
    if (typeof target !== 'string') throw invalidInput(null, ['active_server_ip'])
    const v6 = parseIpOrUndefined(failover.ip)?.version === 6
    const server = this.state.servers.find((s) => (v6 ? s.ipv6Net === target : s.ip === target))
    if (!server) {
      if (parseIpOrUndefined(target) === undefined) throw invalidInput(null, ['active_server_ip'])
      throw apiError(404, 'FAILOVER_NEW_SERVER_NOT_FOUND', `Server with IP ${target} not found`)
    }
    return this.switch(failover, target)
  }

  private buildRoutes(): RestRoute[] {
    const serverJson = (s: RobotFixtureServer) => ({
      server_ip: s.ip,
      server_ipv6_net: s.ipv6Net,
      server_number: s.number,
      server_name: s.name,
      product: 'AX41-NVMe',
      dc: 'FSN1-DC14',
      traffic: 'unlimited',
      status: 'ready',
      cancelled: false,
      paid_until: '2027-01-01',
      ip: [s.ip],
      subnet: [{ ip: s.ipv6Net, mask: '64' }],
    })
    return [
      {
        method: 'GET',
        path: 'failover',
        handle: () => {
          if (this.state.failovers.length === 0) throw apiError(404, 'NOT_FOUND', 'No failover IPs found')
          return { body: this.state.failovers.map((f) => ({ failover: this.failoverJson(f) })) }
        },
      },
      {
        method: 'GET',
        path: 'failover/{ip}',
        handle: ({ params }) => ({ body: { failover: this.failoverJson(this.failover(params.ip)) } }),
      },
      { method: 'POST', path: 'failover/{ip}', handle: (r) => this.routeTo(r) },
      {
        method: 'DELETE',
        path: 'failover/{ip}',
        handle: ({ params }) => this.switch(this.failover(params.ip), null),
      },
      {
        method: 'GET',
        path: 'server',
        handle: () => ({ body: this.state.servers.map((s) => ({ server: serverJson(s) })) }),
      },
      {
        method: 'GET',
        path: 'server/{number}',
        handle: ({ params }) => {
          const server = this.state.servers.find(
            (s) => String(s.number) === params.number || s.ip === params.number,
          )
          if (!server) throw apiError(404, 'SERVER_NOT_FOUND', 'Server not found')
          return { body: { server: serverJson(server) } }
        },
      },
    ]
  }
}

function parseIpOrUndefined(text: string) {
  try {
    return parseIp(text)
  } catch {
    return undefined
  }
}

/** The flags of `ipmove emulate hetzner-robot`, as typed on the command line. */
export type EmulateRobotFlags = EmulateFlags

export const { optionsFromFlags: robotEmulatorOptionsFromFlags, emulate: emulateRobot } = emulateServices<
  EmulateRobotFlags,
  RobotFixture,
  RunningRobotEmulator
>(parseRobotFixture, startRobotEmulator, defaultRobotFixture)
