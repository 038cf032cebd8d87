/**
 * Hetzner Cloud floating IPs: found by address in the project's list, assigned
 * to a server with `POST /floating_ips/{id}/actions/assign`, then followed
 * through the action until it succeeds. "This host" comes from the server
 * metadata service. The API's facts, with sources: emulator/hetzner/server.ts.
 *
 * Least privilege: a project token with Read & Write (a Read token cannot
 * assign, and the API has no finer scopes). The project scopes what it reaches.
 */
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
import { type IpBlock, parseIp, shown } from '../../src/validate.js'
import { BearerApiProvider, parseJson, type TokenApiSpec } from '../bearer-api.js'
import type { HttpResponse, Method } from '../http.js'
import { network64 } from '../ipv6.js'

/** The most the list endpoints give per page. */
const PER_PAGE = 50

interface FloatingIp {
  id: number
  ip: string
  type: 'ipv4' | 'ipv6'
  server: number | null
  name?: string
}

interface Action {
  id: number
  status: 'running' | 'success' | 'error'
  progress?: number
  error?: { code?: string; message?: string } | null
}

interface Server {
  id: number
  name: string
}

interface Paged {
  meta?: { pagination?: { next_page?: number | null } }
}

interface HetznerErrorBody {
  error?: { code?: string; message?: string }
}

const NO_PROJECTS = '--project does not apply to Hetzner Cloud: a token belongs to one project'

/** The API's error codes that mean "another operation holds the resource: wait and decide again". */
const BUSY_CODES = new Set(['locked', 'conflict'])

const SPEC: TokenApiSpec = {
  title: 'Hetzner Cloud API',
  tag: 'hetzner',
  token: { variable: 'HCLOUD_TOKEN', setting: 'token' },
  missingToken:
    'no Hetzner Cloud API token: set HCLOUD_TOKEN or token= in the [hetzner] section of the config file',
  authHeaders: (token) => ({ Authorization: `Bearer ${token}` }),
  endpoint: { variable: 'HCLOUD_ENDPOINT', default: 'https://api.hetzner.cloud/v1' },
  metadataVariable: 'IPMOVE_HETZNER_METADATA_URL',
  metadataUrl: (fromEnv) => fromEnv ?? 'http://169.254.169.254/hetzner/v1/metadata',
  toError: apiError,
  rateLimitWaitMs: rateLimitWait,
}

export class HetznerProvider extends BearerApiProvider implements Provider {
  readonly name = 'hetzner'
  /** Server names by id, for reports: from the metadata service, lookups and the cache. */
  private readonly serverNames = new Map<string, string>()

  static async create(context: ProviderContext): Promise<HetznerProvider> {
    return new HetznerProvider(context)
  }

  private constructor(context: ProviderContext) {
    super(context, SPEC)
  }

  async locate(request: LocateRequest, signal: AbortSignal): Promise<LocatedIp> {
    if (request.project) throw usageError(NO_PROJECTS)
    // The target and the IP are independent: look both up side by side (one round trip).
    const target = !request.needTarget
      ? Promise.resolve(undefined)
      : request.instance
        ? this.serverByNameOrId(request.instance, signal)
        : this.thisServer(signal)
    target.catch(() => {}) // awaited below
    const [floating, holder] = await Promise.all([this.findFloatingIp(request, signal), target])
    const ip = request.ip ?? parseIp(floating.ip, 'the floating IP')
    /** Our assign action, once written: reads follow it. */
    let action: number | undefined
    return {
      ip,
      kind: floating.type,
      target: holder,
      state: this.state(floating),
      read: async (readSignal) => {
        const [current, running] = await Promise.all([
          this.api.call<{ floating_ip: FloatingIp }>('GET', `/floating_ips/${floating.id}`, readSignal),
          action === undefined
            ? undefined
            : this.api.call<{ action: Action }>('GET', `/actions/${action}`, readSignal),
        ])
        const state = this.state(current.floating_ip)
        if (!running) return state
        const { status, progress, error } = running.action
        if (status === 'error') {
          throw new IpmoveError(
            'provider-failed',
            `Hetzner action ${running.action.id} (assign ${ip.address}) failed: ${error?.message ?? error?.code ?? 'no reason given'}`,
          )
        }
        if (status === 'success') return state
        return { ...state, pending: true, progress, note: `action ${running.action.id} running` }
      },
      write: async (to, writeSignal) => {
        const server = Number(to.id)
        try {
          const answer = await this.api.call<{ action: Action }>(
            'POST',
            `/floating_ips/${floating.id}/actions/assign`,
            writeSignal,
            { server },
          )
          action = answer.action.id
          const done = answer.action.status === 'success'
          return {
            holder: done ? to : this.holder(floating.server),
            pending: !done,
            progress: answer.action.progress,
            note: `action ${action} ${answer.action.status}`,
          }
        } catch (error) {
          // Already assigned to that server (someone else's move, or ours whose answer was lost).
          if (error instanceof IpmoveError && error.details?.errorCode === 'floating_ip_assigned') {
            return { holder: to, pending: false, note: 'already assigned' }
          }
          throw error
        }
      },
    }
  }

  /**
   * The project's floating IPs: one request a page (50 IPs). The list names
   * holders by id only; names come from the cache, else from one list of the
   * project's servers. An assign in progress does not show in the list.
   */
  async list(request: ListRequest, signal: AbortSignal): Promise<ListedIp[]> {
    if (request.project) throw usageError(NO_PROJECTS)
    const floating: FloatingIp[] = []
    for await (const page of this.pages<FloatingIp>('floating_ips', signal)) floating.push(...page)
    if (floating.some((f) => f.server !== null && !this.holder(f.server)?.name)) {
      for await (const page of this.pages<Server>('servers', signal)) {
        for (const server of page) this.cache.set(`server-name:${server.id}`, server.name)
      }
    }
    return floating.map((f) => ({
      ip: f.ip.includes('/') ? f.ip : `${f.ip}/32`,
      kind: f.type,
      id: String(f.id),
      ...this.state(f),
    }))
  }

  /** A list endpoint's items, one page (the most it gives) at a time. */
  private async *pages<T>(collection: string, signal: AbortSignal): AsyncGenerator<T[]> {
    for (let page = 1; ; page++) {
      const list = await this.api.call<Paged & Record<string, unknown>>(
        'GET',
        `/${collection}?page=${page}&per_page=${PER_PAGE}`,
        signal,
      )
      yield (list[collection] as T[] | undefined) ?? []
      if (!list.meta?.pagination?.next_page) return
    }
  }

  private state(floating: FloatingIp): IpState {
    return { holder: this.holder(floating.server), pending: false }
  }

  private holder(server: number | null): Holder | null {
    if (server === null) return null
    const id = String(server)
    return { id, name: this.serverNames.get(id) ?? this.cache.get(`server-name:${id}`) }
  }

  // ---- locating -----------------------------------------------------------

  /** The floating IP by --ip-id, or by address: the cached id first, else the project's list. */
  private async findFloatingIp(request: LocateRequest, signal: AbortSignal): Promise<FloatingIp> {
    const { ip, ipId } = request
    if (ipId !== undefined) {
      if (!/^\d{1,19}$/.test(ipId)) throw usageError(`--ip-id ${shown(ipId)} is not a Hetzner floating IP id`)
      const found = (await this.api.call<{ floating_ip: FloatingIp }>('GET', `/floating_ips/${ipId}`, signal))
        .floating_ip
      if (ip && !holdsAddress(found, ip))
        throw usageError(`--ip ${ip.block} and --ip-id ${ipId} (${found.ip}) name different IPs`)
      return found
    }
    const address = ip as IpBlock
    const key = `floating-ip:${address.address}`
    const cached = this.cache.get(key)
    if (cached) {
      try {
        const found = (
          await this.api.call<{ floating_ip: FloatingIp }>('GET', `/floating_ips/${cached}`, signal)
        ).floating_ip
        if (holdsAddress(found, address)) return found
      } catch (error) {
        if (!(error instanceof IpmoveError && error.kind === 'not-found')) throw error
      }
      this.cache.delete(key)
    }
    // The API cannot filter floating IPs by address: list them, page by page.
    for await (const page of this.pages<FloatingIp>('floating_ips', signal)) {
      const found = page.find((f) => holdsAddress(f, address))
      if (found) {
        this.cache.set(key, String(found.id))
        return found
      }
    }
    throw notFound(`${address.address} is not a floating IP of this Hetzner Cloud project`)
  }

  /** --instance: a server name (names are exact; ambiguity refused) or a numeric id. */
  private async serverByNameOrId(instance: string, signal: AbortSignal): Promise<Holder> {
    const key = `server:${instance}`
    const cached = this.cache.get(key)
    if (cached) return this.named(cached, this.cache.get(`server-name:${cached}`) ?? instance)
    const { servers } = await this.api.call<{ servers: Server[] }>(
      'GET',
      `/servers?name=${encodeURIComponent(instance)}`,
      signal,
    )
    const exact = servers.filter((s) => s.name === instance)
    if (exact.length > 1) {
      throw notFound(
        `server name ${JSON.stringify(instance)} is ambiguous: ${exact.map((s) => s.id).join(', ')}; pass the id`,
      )
    }
    let found = exact[0]
    if (!found && /^\d{1,19}$/.test(instance)) {
      found = (await this.api.call<{ server: Server }>('GET', `/servers/${instance}`, signal)).server
    }
    if (!found) throw notFound(`no server ${JSON.stringify(instance)} in this Hetzner Cloud project`)
    this.cache.set(key, String(found.id))
    this.cache.set(`server-name:${found.id}`, found.name)
    return this.named(String(found.id), found.name)
  }

  private named(id: string, name: string): Holder {
    this.serverNames.set(id, name)
    return { id, name }
  }

  /** This host: the metadata service's summary gives the id and the name in one request. */
  private async thisServer(signal: AbortSignal): Promise<Holder> {
    const response = await this.api.metadata(this.metadataUrl, signal)
    const values = new Map<string, string>()
    for (const line of response.text.split('\n')) {
      const match = /^([a-z0-9-]+):\s*(.*?)\s*$/.exec(line)
      if (match) values.set(match[1]!, match[2]!)
    }
    const id = values.get('instance-id')
    if (response.status !== 200 || !id || !/^\d{1,19}$/.test(id)) {
      throw usageError(
        `--instance was omitted and the metadata service at ${this.metadataUrl.host} gave no server id`,
      )
    }
    const name = values.get('hostname')
    if (name) this.cache.set(`server-name:${id}`, name)
    return name ? this.named(id, name) : { id }
  }
}

// ---- helpers ------------------------------------------------------------------

/** An ipv4 floating IP is one address; an ipv6 one is a /64 network, any address of which is ours. */
function holdsAddress(floating: FloatingIp, ip: IpBlock): boolean {
  try {
    const own = parseIp(floating.ip)
    if (own.version !== ip.version) return false
    if (own.version === 4) return own.address === ip.address
    return sameNetwork64(own.address, ip.address)
  } catch {
    return false
  }
}

/** Whether two IPv6 addresses share their first 64 bits. */
function sameNetwork64(a: string, b: string): boolean {
  return network64(a) === network64(b)
}

/**
 * Hetzner sends no Retry-After: it gives the hourly budget (RateLimit-Limit),
 * what is left, and when it is whole again (RateLimit-Reset). The budget
 * refills evenly, so one more request is allowed every hour/limit.
 */
function rateLimitWait(headers: HttpResponse['headers']): number | undefined {
  const limit = Number(headers['ratelimit-limit'])
  const reset = Number(headers['ratelimit-reset'])
  if (!Number.isFinite(limit) || limit <= 0) return undefined
  const oneRequest = Math.ceil(3_600_000 / limit)
  const untilReset = Number.isFinite(reset) ? Math.max(0, reset * 1000 - Date.now()) : oneRequest
  return Math.min(oneRequest, untilReset)
}

/** Map a Hetzner error answer to ipmove's error kinds, keeping the API's code and words. */
function apiError(method: Method, path: string, response: HttpResponse): IpmoveError {
  const body = parseJson<HetznerErrorBody>(response.text)?.error
  const code = body?.code
  const message = `Hetzner Cloud API ${method} ${path}: ${body?.message ?? `HTTP ${response.status}`}${code ? ` (${code})` : ''}`
  const details = { httpStatus: response.status, errorCode: code }
  if (response.status === 401 || response.status === 403) return new IpmoveError('auth', message, details)
  if (response.status === 404) return new IpmoveError('not-found', message, details)
  if (BUSY_CODES.has(code ?? '')) return new IpmoveError('busy', message, details)
  return new IpmoveError('provider-failed', message, details)
}
