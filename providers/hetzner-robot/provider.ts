/**
 * Hetzner Robot failover IPs (dedicated servers): `GET /failover/{ip}` shows
 * where the IP is routed; `POST /failover/{ip}` with `active_server_ip` routes it
 * to another server's main IP (its IPv6 net for an IPv6 failover net) and answers
 * only once the switch is done, 40–60 s later: the write is bounded by --timeout
 * alone, not by the usual per-request limit. The API's facts, with sources:
 * emulator/hetzner-robot/server.ts.
 *
 * Least privilege: a Robot web-service user (Settings → Web service and app
 * settings); Robot has no finer permissions. The hourly request limit (50
 * switches) is reported as such, never retried into.
 */
import { networkInterfaces } from 'node:os'
import type { IdCache } from '../../src/cache.js'
import type {
  Holder,
  IpState,
  ListedIp,
  ListRequest,
  LocatedIp,
  LocateRequest,
  Provider,
  ProviderContext,
} from '../../src/core/provider.js'
import { IpmoveError, notFound, usageError } from '../../src/errors.js'
import { type Logger, registerSecret } from '../../src/output.js'
import { type IpBlock, parseIp } from '../../src/validate.js'
import { parseJson } from '../bearer-api.js'
import { HttpClient, type HttpResponse, type Method, TransportError, unreachable } from '../http.js'
import { network64 } from '../ipv6.js'
import { apiBaseUrl } from '../token-settings.js'

const DEFAULT_ENDPOINT = 'https://robot-ws.your-server.de'
/** A switch takes 40–60 s; --timeout bounds it, this only stops a connection that never answers. */
const SWITCH_ATTEMPT_MS = 180_000

interface Failover {
  ip: string
  netmask: string
  active_server_ip: string | null
}

interface Server {
  server_ip: string
  server_ipv6_net?: string | null
  server_number: number
  server_name: string
}

interface RobotErrorBody {
  error?: { status?: number; code?: string; message?: string; max_request?: number; interval?: number }
}

const NO_PROJECTS = '--project does not apply to Hetzner Robot'

export class HetznerRobotProvider implements Provider {
  readonly name = 'hetzner-robot'
  readonly hasCloudApi = true
  /** Reads: the usual per-request limit and retries. */
  private readonly reads: HttpClient
  /** The switch: one attempt, as long as --timeout allows. */
  private readonly switches: HttpClient
  private readonly authorization: string

  private constructor(
    private readonly baseUrl: string,
    user: string,
    password: string,
    private readonly cache: IdCache,
    private readonly log: Logger,
  ) {
    this.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`
    registerSecret(this.authorization.slice(6))
    this.reads = new HttpClient({ log })
    this.switches = new HttpClient({ log, requestTimeoutMs: SWITCH_ATTEMPT_MS, retries: 0 })
  }

  static async create(context: ProviderContext): Promise<HetznerRobotProvider> {
    const { env, settings } = context
    const user = env.HROBOT_USER || settings.user
    const password = env.HROBOT_PASSWORD || settings.password
    if (!user || !password) {
      throw usageError(
        'no Hetzner Robot web-service user: set HROBOT_USER and HROBOT_PASSWORD, or user= and password= in [hetzner-robot]',
      )
    }
    registerSecret(password)
    const where = env.HROBOT_URL ? 'HROBOT_URL' : 'endpoint='
    const base = apiBaseUrl(env.HROBOT_URL || settings.endpoint || DEFAULT_ENDPOINT, where)
    return new HetznerRobotProvider(base.href.replace(/\/+$/, ''), user, password, context.cache, context.log)
  }

  get requests(): number {
    return this.reads.attempts + this.switches.attempts
  }

  get roundTrips(): number {
    return this.reads.rounds + this.switches.rounds
  }

  close(): void {
    this.cache.save()
    this.reads.close()
    this.switches.close()
  }

  async locate(request: LocateRequest, signal: AbortSignal): Promise<LocatedIp> {
    if (request.project) throw usageError(NO_PROJECTS)
    if (request.ipId !== undefined)
      throw usageError('Hetzner Robot knows a failover IP by its address: use --ip')
    const ip = failoverAddress(request.ip!)
    const target = !request.needTarget
      ? Promise.resolve(undefined)
      : this.targetServer(request.instance, ip.version, signal)
    target.catch(() => {}) // awaited below
    const [failover, holder] = await Promise.all([this.failover(ip.address, signal), target])
    const path = `/failover/${ip.address}`
    return {
      ip,
      kind: 'failover',
      target: holder,
      state: this.state(failover),
      read: async (readSignal) => this.state(await this.failover(ip.address, readSignal)),
      write: async (to, writeSignal) => {
        try {
          const answer = await this.call<{ failover: Failover }>(
            this.switches,
            'POST',
            path,
            writeSignal,
            new URLSearchParams({ active_server_ip: to.id }).toString(),
          )
          return this.state(answer.failover)
        } catch (error) {
          // Already routed there: someone else's switch, or ours whose answer was lost.
          if (error instanceof IpmoveError && error.details?.errorCode === 'FAILOVER_ALREADY_ROUTED')
            return { holder: to, pending: false, note: 'already routed' }
          throw error
        }
      },
    }
  }

  /**
   * The account's failover IPs: one request. Robot names the holder by its
   * main IP only; names come from the cache, else from one list of servers.
   * A switch blocks its own request, so nothing shows as pending.
   */
  async list(request: ListRequest, signal: AbortSignal): Promise<ListedIp[]> {
    if (request.project) throw usageError(NO_PROJECTS)
    let failovers: Failover[]
    try {
      failovers = (
        await this.call<Array<{ failover: Failover }>>(this.reads, 'GET', '/failover', signal)
      ).map((f) => f.failover)
    } catch (error) {
      // Robot answers an account without failover IPs with 404 NOT_FOUND.
      if (error instanceof IpmoveError && error.details?.errorCode === 'NOT_FOUND') return []
      throw error
    }
    const unnamed = (f: Failover) =>
      f.active_server_ip && !this.cache.get(`server-name:${f.active_server_ip}`)
    if (failovers.some(unnamed)) {
      const servers = await this.call<Array<{ server: Server }>>(this.reads, 'GET', '/server', signal)
      for (const { server } of servers) {
        this.cache.set(`server-name:${server.server_ip}`, server.server_name)
        if (server.server_ipv6_net)
          this.cache.set(`server-name:${server.server_ipv6_net}`, server.server_name)
      }
    }
    return failovers.map((f) => ({
      // A failover IPv4 is one address; an IPv6 failover net, a /64.
      ip: `${f.ip}/${f.ip.includes(':') ? 64 : 32}`,
      kind: 'failover',
      ...this.state(f),
    }))
  }

  private state(failover: Failover): IpState {
    const active = failover.active_server_ip
    return {
      holder: active ? { id: active, name: this.cache.get(`server-name:${active}`) } : null,
      pending: false,
    }
  }

  private async failover(address: string, signal: AbortSignal): Promise<Failover> {
    try {
      return (await this.call<{ failover: Failover }>(this.reads, 'GET', `/failover/${address}`, signal))
        .failover
    } catch (error) {
      if (error instanceof IpmoveError && error.kind === 'not-found')
        throw notFound(`${address} is not a failover IP of this Robot account (${error.message})`)
      throw error
    }
  }

  /**
   * Where to route: --instance as a server's main IP, name or number; omitted,
   * the server whose main IP this host carries. Robot routes to an address: the
   * main IPv4, or the server's IPv6 net for an IPv6 failover net.
   */
  private async targetServer(
    instance: string | undefined,
    version: 4 | 6,
    signal: AbortSignal,
  ): Promise<Holder> {
    const route = (server: Server): Holder => {
      const address = version === 4 ? server.server_ip : server.server_ipv6_net
      if (!address) throw notFound(`server ${server.server_name} has no IPv${version} address to route to`)
      this.cache.set(`server-name:${address}`, server.server_name)
      return { id: address, name: server.server_name }
    }
    const key = `server:${instance ?? 'this-host'}:${version}`
    const cached = this.cache.get(key)
    if (cached) return { id: cached, name: this.cache.get(`server-name:${cached}`) }
    const servers = (await this.call<Array<{ server: Server }>>(this.reads, 'GET', '/server', signal)).map(
      (s) => s.server,
    )
    let found: Server[]
    if (instance === undefined) {
      const local = new Set(
        Object.values(networkInterfaces())
          .flat()
          .map((a) => a?.address),
      )
      found = servers.filter((s) => local.has(s.server_ip))
      if (found.length === 0)
        throw usageError(
          '--instance was omitted and no Robot server has its main IP on this host; name the server',
        )
    } else {
      found = servers.filter(
        (s) => s.server_ip === instance || s.server_name === instance || String(s.server_number) === instance,
      )
      if (found.length === 0)
        throw notFound(`no Robot server ${JSON.stringify(instance)} (main IP, name or number)`)
    }
    if (found.length > 1) {
      throw notFound(
        `server ${JSON.stringify(instance ?? 'this host')} is ambiguous: ${found.map((s) => `${s.server_name} (${s.server_number})`).join(', ')}; pass the main IP`,
      )
    }
    const holder = route(found[0]!)
    this.cache.set(key, holder.id)
    return holder
  }

  private async call<T>(
    client: HttpClient,
    method: Method,
    path: string,
    signal: AbortSignal,
    form?: string,
  ): Promise<T> {
    const url = new URL(this.baseUrl + path)
    this.log.debug(`hetzner-robot: ${method} ${url.pathname}`)
    const headers: Record<string, string> = { Authorization: this.authorization }
    if (form !== undefined) headers['Content-Type'] = 'application/x-www-form-urlencoded'
    let response: HttpResponse
    try {
      response = await client.send({ method, url, headers, body: form }, signal)
    } catch (error) {
      if (!(error instanceof TransportError)) throw error
      if (signal.aborted)
        throw new IpmoveError('timeout', `timed out during ${method} ${url.pathname}: ${error.message}`)
      throw unreachable('Hetzner Robot', error)
    }
    if (response.status >= 300) throw apiError(method, url.pathname, response)
    return parseJson<T>(response.text) as T
  }
}

/** The address Robot knows the failover IP by: an IPv4 address, or the network of an IPv6 /64. */
function failoverAddress(ip: IpBlock): IpBlock {
  if (ip.version === 4) {
    if (ip.prefix !== 32) throw usageError(`--ip ${ip.block}: a Robot failover IP is a single IPv4 address`)
    return ip
  }
  // Robot names an IPv6 failover net by its network address.
  return parseIp(`${network64(ip.address)}/64`, '--ip')
}

/** Map a Robot error answer to ipmove's error kinds, keeping Robot's code and words. */
function apiError(method: Method, path: string, response: HttpResponse): IpmoveError {
  const error = parseJson<RobotErrorBody>(response.text)?.error
  const code = error?.code
  const details = { httpStatus: response.status, errorCode: code }
  if (code === 'RATE_LIMIT_EXCEEDED') {
    return new IpmoveError(
      'provider-failed',
      `Hetzner Robot ${method} ${path}: request limit reached (${error?.max_request ?? '?'} per ${error?.interval ?? '?'} s, RATE_LIMIT_EXCEEDED); nothing was switched`,
      details,
    )
  }
  const message = `Hetzner Robot ${method} ${path}: ${error?.message ?? `HTTP ${response.status}`}${code ? ` (${code})` : ''}`
  if (response.status === 401 || response.status === 403) return new IpmoveError('auth', message, details)
  if (response.status === 404) return new IpmoveError('not-found', message, details)
  if (code === 'FAILOVER_LOCKED') return new IpmoveError('busy', message, details)
  return new IpmoveError('provider-failed', message, details)
}
