/**
 * DigitalOcean reserved IPs: read by address (`GET /v2/reserved_ips/{ip}`),
 * assigned with a `POST …/actions {"type":"assign","droplet_id"}` action, then
 * followed until the action completes. "This host" comes from the droplet
 * metadata service. The address is NATed onto the droplet's anchor IP, so the
 * OS does not carry it. The API's facts, with sources: emulator/digitalocean/server.ts.
 *
 * Least privilege: a custom-scoped token with `reserved_ip:read`,
 * `reserved_ip:update`, `droplet:read` and `actions:read`.
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
import { BearerApiProvider, parseJson, type TokenApiSpec } from '../bearer-api.js'
import type { HttpResponse, Method } from '../http.js'

interface Droplet {
  id: number
  name: string
  region?: { slug?: string }
}

interface ReservedIp {
  ip: string
  droplet: Droplet | null
  region?: { slug?: string }
  /** Pending actions prevent new ones. */
  locked?: boolean
}

interface Action {
  id: number
  status: 'in-progress' | 'completed' | 'errored'
}

interface DigitalOceanErrorBody {
  id?: string
  message?: string
  request_id?: string
}

const SPEC: TokenApiSpec = {
  title: 'DigitalOcean API',
  tag: 'digitalocean',
  token: { variable: 'DIGITALOCEAN_ACCESS_TOKEN', setting: 'token' },
  missingToken:
    'no DigitalOcean API token: set DIGITALOCEAN_ACCESS_TOKEN or token= in the [digitalocean] section of the config file',
  authHeaders: (token) => ({ Authorization: `Bearer ${token}` }),
  endpoint: { variable: 'DIGITALOCEAN_API_URL', default: 'https://api.digitalocean.com' },
  metadataVariable: 'IPMOVE_DIGITALOCEAN_METADATA_URL',
  // The variable names the metadata root, as the emulator prints it; the JSON document sits beside it.
  metadataUrl: (fromEnv) =>
    fromEnv === undefined ? 'http://169.254.169.254/metadata/v1.json' : `${fromEnv}.json`,
  toError: apiError,
  rateLimitWaitMs: rateLimitWait,
}

/** A droplet found for --instance or this host, with its region slug when known. */
type Located = Holder & { region?: string }

const NO_PROJECTS = '--project does not apply to DigitalOcean'
/** The most a list page holds. */
const PER_PAGE = 200

export class DigitalOceanProvider extends BearerApiProvider implements Provider {
  readonly name = 'digitalocean'

  static async create(context: ProviderContext): Promise<DigitalOceanProvider> {
    return new DigitalOceanProvider(context)
  }

  private constructor(context: ProviderContext) {
    super(context, SPEC)
  }

  async locate(request: LocateRequest, signal: AbortSignal): Promise<LocatedIp> {
    if (request.project) throw usageError(NO_PROJECTS)
    if (request.ipId !== undefined)
      throw usageError('DigitalOcean knows a reserved IP by its address: use --ip')
    const ip = request.ip!
    if (ip.version !== 4 || ip.prefix !== 32)
      throw usageError(`--ip ${ip.block}: DigitalOcean reserved IPs are single IPv4 addresses`)
    // The reserved IP is addressed by itself: read it and find the target side by side.
    const target = !request.needTarget
      ? Promise.resolve(undefined)
      : request.instance
        ? this.dropletByNameOrId(request.instance, signal)
        : this.thisDroplet(signal)
    target.catch(() => {}) // awaited below
    const [reserved, found] = await Promise.all([this.reservedIp(ip.address, signal), target])
    // Reserved IPs are regional: the API would refuse the assign; refuse it before writing.
    const ipRegion = reserved.region?.slug
    if (found && ipRegion && found.region && found.region !== ipRegion) {
      throw usageError(
        `droplet ${found.name ?? found.id} is in ${found.region}, reserved IP ${ip.address} in ${ipRegion}: a reserved IP moves only within its region`,
      )
    }
    const holder = found && { id: found.id, name: found.name }
    /** Our assign action, once written: reads follow it. */
    let action: number | undefined
    return {
      ip,
      kind: 'reserved',
      target: holder,
      state: state(reserved),
      hostCarries: false,
      read: async (readSignal) => {
        const [current, running] = await Promise.all([
          this.reservedIp(ip.address, readSignal),
          action === undefined
            ? undefined
            : this.api.call<{ action: Action }>('GET', `/v2/actions/${action}`, readSignal),
        ])
        const now = state(current)
        if (running?.action.status === 'errored') {
          throw new IpmoveError(
            'provider-failed',
            `DigitalOcean action ${running.action.id} (assign ${ip.address}) errored`,
          )
        }
        if (running?.action.status === 'in-progress')
          return { ...now, pending: true, note: `action ${running.action.id} in progress` }
        return now
      },
      write: async (to, writeSignal) => {
        let answer: { action: Action }
        try {
          answer = await this.api.call<{ action: Action }>(
            'POST',
            `/v2/reserved_ips/${ip.address}/actions`,
            writeSignal,
            { type: 'assign', droplet_id: Number(to.id) },
          )
        } catch (error) {
          // A 422 may mean another action started meanwhile: the IP says so with `locked`.
          if (error instanceof IpmoveError && error.details?.httpStatus === 422) {
            if ((await this.reservedIp(ip.address, writeSignal)).locked)
              throw new IpmoveError('busy', error.message, error.details)
          }
          throw error
        }
        action = answer.action.id
        const done = answer.action.status === 'completed'
        return {
          holder: done ? to : state(reserved).holder,
          pending: !done,
          note: `action ${action} ${answer.action.status}`,
        }
      },
    }
  }

  /** The account's reserved IPs with their droplets (names included): one request per 200 IPs. */
  async list(request: ListRequest, signal: AbortSignal): Promise<ListedIp[]> {
    if (request.project) throw usageError(NO_PROJECTS)
    const found: ReservedIp[] = []
    for (let page = 1; ; page++) {
      const answer = await this.api.call<{
        reserved_ips: ReservedIp[]
        links?: { pages?: { next?: string } }
      }>('GET', `/v2/reserved_ips?page=${page}&per_page=${PER_PAGE}`, signal)
      found.push(...answer.reserved_ips)
      if (!answer.links?.pages?.next) break
    }
    return found.map((reserved) => ({ ip: `${reserved.ip}/32`, kind: 'reserved', ...state(reserved) }))
  }

  private async reservedIp(address: string, signal: AbortSignal): Promise<ReservedIp> {
    try {
      return (await this.api.call<{ reserved_ip: ReservedIp }>('GET', `/v2/reserved_ips/${address}`, signal))
        .reserved_ip
    } catch (error) {
      if (error instanceof IpmoveError && error.kind === 'not-found')
        throw notFound(`${address} is not a reserved IP of this DigitalOcean account`)
      throw error
    }
  }

  /**
   * --instance: a droplet name (exact, case-insensitive as the API matches;
   * ambiguity refused) or a numeric id, with its region. A cached id comes
   * with its cached region; a cache entry from before regions were kept is
   * looked up again.
   */
  private async dropletByNameOrId(instance: string, signal: AbortSignal): Promise<Located> {
    const key = `droplet:${instance}`
    const cached = this.cache.get(key)
    const cachedRegion = cached && this.cache.get(`droplet-region:${cached}`)
    if (cached && cachedRegion) {
      return { id: cached, name: this.cache.get(`droplet-name:${cached}`) ?? instance, region: cachedRegion }
    }
    const { droplets } = await this.api.call<{ droplets: Droplet[] }>(
      'GET',
      `/v2/droplets?name=${encodeURIComponent(instance)}`,
      signal,
    )
    if (droplets.length > 1) {
      throw notFound(
        `droplet name ${JSON.stringify(instance)} is ambiguous: ${droplets.map((d) => `${d.id} (${d.region?.slug ?? '?'})`).join(', ')}; pass the id`,
      )
    }
    let found = droplets[0]
    if (!found && /^\d{1,19}$/.test(instance)) {
      found = (await this.api.call<{ droplet: Droplet }>('GET', `/v2/droplets/${instance}`, signal)).droplet
    }
    if (!found) throw notFound(`no droplet ${JSON.stringify(instance)} in this DigitalOcean account`)
    this.cache.set(key, String(found.id))
    this.cache.set(`droplet-name:${found.id}`, found.name)
    if (found.region?.slug) this.cache.set(`droplet-region:${found.id}`, found.region.slug)
    return { id: String(found.id), name: found.name, region: found.region?.slug }
  }

  /** This host: the droplet metadata's JSON gives the id, the name and the region in one request. */
  private async thisDroplet(signal: AbortSignal): Promise<Located> {
    const response = await this.api.metadata(this.metadataUrl, signal)
    const body = parseJson<{ droplet_id?: number; hostname?: string; region?: unknown }>(response.text)
    if (response.status !== 200 || !Number.isSafeInteger(body?.droplet_id)) {
      throw usageError(
        `--instance was omitted and the metadata service at ${this.metadataUrl.host} gave no droplet id`,
      )
    }
    const region = typeof body!.region === 'string' ? body!.region : undefined
    return { id: String(body!.droplet_id), name: body!.hostname, region }
  }
}

function state(reserved: ReservedIp): IpState {
  const droplet = reserved.droplet
  return {
    holder: droplet ? { id: String(droplet.id), name: droplet.name } : null,
    pending: reserved.locked === true,
    ...(reserved.locked ? { note: 'locked by a pending action' } : {}),
  }
}

/**
 * DigitalOcean's burst 429 carries Retry-After; the hourly one only
 * RateLimit-Reset, the time the oldest counted request expires: wait for it.
 */
function rateLimitWait(headers: HttpResponse['headers']): number | undefined {
  const reset = Number(headers['ratelimit-reset'])
  if (headers['ratelimit-remaining'] !== '0' || !Number.isFinite(reset)) return undefined
  return Math.max(0, reset * 1000 - Date.now())
}

/** Map a DigitalOcean error answer to ipmove's error kinds, keeping the API's id and words. */
function apiError(method: Method, path: string, response: HttpResponse): IpmoveError {
  const body = parseJson<DigitalOceanErrorBody>(response.text)
  const id = body?.id
  const request = body?.request_id ? `, request ${body.request_id}` : ''
  const message = `DigitalOcean API ${method} ${path}: ${body?.message ?? `HTTP ${response.status}`}${id ? ` (${id}${request})` : ''}`
  const details = { httpStatus: response.status, errorCode: id }
  if (response.status === 401 || response.status === 403) return new IpmoveError('auth', message, details)
  if (response.status === 404) return new IpmoveError('not-found', message, details)
  return new IpmoveError('provider-failed', message, details)
}
