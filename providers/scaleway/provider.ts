/**
 * Scaleway Instance flexible IPs: read by address in their zone
 * (`GET /instance/v1/zones/{zone}/ips/{address}`), moved with
 * `PATCH …/ips/{address} {"server": ID}`; a routed IP is `pending` until it is
 * attached. "This host" comes from the Instance metadata service. (The
 * `flexible-ip` API is for Elastic Metal servers, not Instances.) The API's
 * facts, with sources: emulator/scaleway/server.ts.
 *
 * Least privilege: an API key whose IAM policy grants `InstancesFullAccess` in
 * the project (IP updates have no narrower permission set); reads need
 * `InstancesReadOnly`.
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
import { shown } from '../../src/validate.js'
import { BearerApiProvider, parseJson, type TokenApiSpec } from '../bearer-api.js'
import type { HttpResponse, Method } from '../http.js'
import { SCALEWAY_ZONE } from './zone.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

interface ScalewayIp {
  id: string
  address: string
  server: { id: string; name: string } | null
  state: 'attached' | 'detached' | 'pending'
}

interface Server {
  id: string
  name: string
}

interface ScalewayErrorBody {
  type?: string
  message?: string
}

/** Error types that mean "the resource is busy: wait and decide again". */
const BUSY_TYPES = new Set(['transient_state', 'conflict', 'locked'])

const SPEC: TokenApiSpec = {
  title: 'Scaleway API',
  tag: 'scaleway',
  token: { variable: 'SCW_SECRET_KEY', setting: 'secret-key' },
  missingToken: 'no Scaleway secret key: set SCW_SECRET_KEY or secret-key= in the [scaleway] section',
  authHeaders: (secretKey) => ({ 'X-Auth-Token': secretKey }),
  endpoint: { variable: 'SCW_API_URL', default: 'https://api.scaleway.com' },
  metadataVariable: 'IPMOVE_SCALEWAY_METADATA_URL',
  metadataUrl: (fromEnv) => `${(fromEnv ?? 'http://169.254.42.42').replace(/\/+$/, '')}/conf?format=json`,
  toError: apiError,
}

const NO_PROJECTS = '--project does not apply to Scaleway: the key and the zone scope the IP'
/** The most a list page holds. */
const PER_PAGE = 100

export class ScalewayProvider extends BearerApiProvider implements Provider {
  readonly name = 'scaleway'
  /** The zone of the IP, when set; else this host's zone, from the metadata service. */
  private readonly zone: string | undefined

  static async create(context: ProviderContext): Promise<ScalewayProvider> {
    return new ScalewayProvider(context)
  }

  private constructor(context: ProviderContext) {
    super(context, SPEC)
    const zone = context.settings.zone || context.env.SCW_DEFAULT_ZONE || undefined
    if (zone !== undefined && !SCALEWAY_ZONE.test(zone))
      throw usageError(`zone ${shown(zone)} is not a Scaleway zone (fr-par-1…)`)
    this.zone = zone
  }

  async locate(request: LocateRequest, signal: AbortSignal): Promise<LocatedIp> {
    if (request.project) throw usageError(NO_PROJECTS)
    if (request.ipId !== undefined)
      throw usageError('use --ip: ipmove finds a Scaleway flexible IP by its address')
    const ip = request.ip!
    if (ip.version !== 4 || ip.prefix !== 32)
      throw usageError(`--ip ${ip.block}: ipmove moves Scaleway IPv4 flexible IPs, one address`)
    // Without a configured zone, this host's zone (from the metadata service) is the IP's.
    let self: Promise<Holder & { zone: string }> | undefined
    let zone = this.zone
    if (zone === undefined) {
      if (request.instance || !request.needTarget)
        throw usageError('no Scaleway zone: set SCW_DEFAULT_ZONE or zone= in [scaleway] (the zone of the IP)')
      self = this.thisServer(signal)
      zone = (await self).zone
    }
    const base = `/instance/v1/zones/${zone}`
    const target = !request.needTarget
      ? Promise.resolve(undefined)
      : request.instance
        ? this.serverByNameOrId(base, request.instance, signal)
        : (self ?? this.thisServer(signal))
    target.catch(() => {}) // awaited below
    const path = `${base}/ips/${ip.address}`
    const [found, holder] = await Promise.all([this.readIp(path, ip.address, zone, signal), target])
    if (holder && 'zone' in holder && holder.zone !== zone)
      throw usageError(`this server is in ${holder.zone}, the IP in ${zone}: flexible IPs stay in their zone`)
    return {
      ip,
      kind: 'flexible',
      target: holder && { id: holder.id, name: holder.name },
      state: state(found),
      read: async (readSignal) => state(await this.readIp(path, ip.address, zone, readSignal)),
      write: async (to, writeSignal) =>
        state((await this.api.call<{ ip: ScalewayIp }>('PATCH', path, writeSignal, { server: to.id })).ip),
    }
  }

  /**
   * The zone's IPv4 flexible IPs (those ipmove moves) with their servers' names:
   * one request per 100 IPs. The zone is the configured one: a listing has no
   * IP whose zone this host's could stand for.
   */
  async list(request: ListRequest, signal: AbortSignal): Promise<ListedIp[]> {
    if (request.project) throw usageError(NO_PROJECTS)
    if (this.zone === undefined)
      throw usageError('no Scaleway zone to list: set SCW_DEFAULT_ZONE or zone= in [scaleway]')
    const found: ScalewayIp[] = []
    for (let page = 1; ; page++) {
      const answer = await this.api.call<{ ips: ScalewayIp[]; total_count: number }>(
        'GET',
        `/instance/v1/zones/${this.zone}/ips?page=${page}&per_page=${PER_PAGE}`,
        signal,
      )
      found.push(...answer.ips)
      if (answer.ips.length === 0 || found.length >= answer.total_count) break
    }
    return found
      .filter((ip) => /^\d{1,3}(?:\.\d{1,3}){3}$/.test(ip.address))
      .map((ip) => ({ ip: `${ip.address}/32`, kind: 'flexible', id: ip.id, ...state(ip) }))
  }

  private async readIp(
    path: string,
    address: string,
    zone: string,
    signal: AbortSignal,
  ): Promise<ScalewayIp> {
    try {
      return (await this.api.call<{ ip: ScalewayIp }>('GET', path, signal)).ip
    } catch (error) {
      if (error instanceof IpmoveError && error.kind === 'not-found')
        throw notFound(`${address} is not a flexible IP of zone ${zone}`)
      throw error
    }
  }

  /** --instance: a server id, or a name matched exactly (the API's filter matches substrings); ambiguity refused. */
  private async serverByNameOrId(base: string, instance: string, signal: AbortSignal): Promise<Holder> {
    const key = `server:${base}:${instance}`
    const cached = this.cache.get(key)
    if (cached) return { id: cached, name: this.cache.get(`server-name:${cached}`) ?? instance }
    let found: Server | undefined
    if (UUID.test(instance)) {
      found = (await this.api.call<{ server: Server }>('GET', `${base}/servers/${instance}`, signal)).server
    } else {
      const { servers } = await this.api.call<{ servers: Server[] }>(
        'GET',
        `${base}/servers?name=${encodeURIComponent(instance)}&per_page=100`,
        signal,
      )
      const exact = servers.filter((s) => s.name === instance)
      if (exact.length > 1)
        throw notFound(
          `server name ${JSON.stringify(instance)} is ambiguous: ${exact.map((s) => s.id).join(', ')}; pass the id`,
        )
      found = exact[0]
    }
    if (!found) throw notFound(`no server ${JSON.stringify(instance)} in ${base.split('/').at(-1)}`)
    this.cache.set(key, found.id)
    this.cache.set(`server-name:${found.id}`, found.name)
    return { id: found.id, name: found.name }
  }

  /** This host: id, name and zone from the Instance metadata service. */
  private async thisServer(signal: AbortSignal): Promise<Holder & { zone: string }> {
    const response = await this.api.metadata(this.metadataUrl, signal)
    const body = parseJson<{ id?: string; name?: string; location?: { zone_id?: string } }>(response.text)
    const zone = body?.location?.zone_id
    if (response.status !== 200 || !body?.id || !zone) {
      throw usageError(
        `--instance was omitted and the metadata service at ${this.metadataUrl.host} gave no server`,
      )
    }
    return { id: body.id, name: body.name, zone }
  }
}

function state(ip: ScalewayIp): IpState {
  return {
    holder: ip.server ? { id: ip.server.id, name: ip.server.name } : null,
    pending: ip.state === 'pending',
    ...(ip.state === 'pending' ? { note: 'IP pending' } : {}),
  }
}

/** Map a Scaleway error answer to ipmove's error kinds, keeping the API's type and words. */
function apiError(method: Method, path: string, response: HttpResponse): IpmoveError {
  const body = parseJson<ScalewayErrorBody>(response.text)
  const type = body?.type
  const message = `Scaleway API ${method} ${path}: ${body?.message ?? `HTTP ${response.status}`}${type ? ` (${type})` : ''}`
  const details = { httpStatus: response.status, errorCode: type }
  if (response.status === 401 || response.status === 403) return new IpmoveError('auth', message, details)
  if (response.status === 404) return new IpmoveError('not-found', message, details)
  if (BUSY_TYPES.has(type ?? '') || response.status === 409) return new IpmoveError('busy', message, details)
  return new IpmoveError('provider-failed', message, details)
}
