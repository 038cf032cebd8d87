/**
 * OVHcloud: Public Cloud failover IPs (`/cloud/project/{id}/ip/failover`,
 * attach to an instance) and classic failover IPs of dedicated servers
 * (`/ip/{block}/move`, then a task). Requests are signed as OVH's SDKs sign
 * them, or carry an OAuth2 service-account token.
 */
import { createHash } from 'node:crypto'
import { homedir } from 'node:os'
import type { IdCache } from '../../src/cache.js'
import type {
  Holder,
  IpState,
  Located,
  LocatedIp,
  LocateRequest,
  Provider,
  ProviderContext,
} from '../../src/core/provider.js'
import { IpmoveError, notFound, usageError } from '../../src/errors.js'
import { type Logger, registerSecret } from '../../src/output.js'
import { type IpBlock, parseIp } from '../../src/validate.js'
import { HttpClient, type HttpResponse, type Method, TransportError, unreachable } from '../http.js'
import { type OvhCredentials, resolveOvhCredentials } from './credentials.js'

/** OpenStack's link-local metadata service, which OVH Public Cloud instances have. */
const METADATA_URL = 'http://169.254.169.254/openstack/latest/meta_data.json'
/** The clock delta changes slowly; an hour keeps a skewed host signing right. */
const TIME_DELTA_TTL_MS = 3600_000

/**
 * Seconds to add to the local clock when signing. `verified` means it came
 * from /auth/time in this run; otherwise it is the cached value, or 0 on an
 * NTP-synced host, which saves the /auth/time round trip on every cold hook.
 */
interface ClockDelta {
  seconds: number
  verified: boolean
}
/** What the API answers a timestamp off its clock (QUERY_TIME_OUT) or a signature made with one. */
const CLOCK_REFUSALS = new Set(['QUERY_TIME_OUT', 'INVALID_SIGNATURE'])
/** Public Cloud project ids are 32 hex digits. */
const PROJECT_ID = /^[0-9a-f]{32}$/
const PENDING_TASK = ['init', 'todo', 'doing'] as const
const FAILED_TASK = new Set(['cancelled', 'customerError', 'ovhError'])
/** How many project descriptions to fetch at once when matching a project by name. */
const PROJECT_LOOKUP_CONCURRENCY = 8

interface FailoverIp {
  id: string
  ip: string
  block?: string
  routedTo: string | null
  status: string
  progress?: number
}

interface Instance {
  id: string
  name: string
  region?: string
}

interface IpTask {
  taskId: number
  status: string
  comment?: string | null
}

interface OvhErrorBody {
  message?: string
  errorCode?: string
}

/** Where the located IP lives: the two OVH APIs behave differently. */
type Location =
  | { kind: 'cloud'; projectId: string; failoverId: string }
  | { kind: 'classic'; block: string; taskId?: number }

export class OvhProvider implements Provider {
  readonly name = 'ovh'
  readonly hasCloudApi = true
  private readonly http: HttpClient
  private delta: ClockDelta | undefined
  private deltaRefresh: Promise<ClockDelta> | undefined
  private token: { value: string; expires: number } | undefined
  /** Instance names by id, for reports; filled from listings and the cache. */
  private readonly instanceNames = new Map<string, string>()

  private constructor(
    private readonly credentials: OvhCredentials,
    private readonly cache: IdCache,
    private readonly log: Logger,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    this.http = new HttpClient({ log })
  }

  static async create(context: ProviderContext): Promise<OvhProvider> {
    const credentials = await resolveOvhCredentials({
      env: context.env,
      cwd: process.cwd(),
      home: homedir(),
      config: { values: context.settings },
    })
    context.log.debug(
      `ovh: ${credentials.kind} credentials from ${credentials.source}, endpoint ${credentials.baseUrl}`,
    )
    return new OvhProvider(credentials, context.cache, context.log, context.env)
  }

  get requests(): number {
    return this.http.attempts
  }

  get roundTrips(): number {
    return this.http.rounds
  }

  close(): void {
    this.cache.save()
    this.http.close()
  }

  async locate(request: LocateRequest, signal: AbortSignal): Promise<LocatedIp> {
    if (request.ipId !== undefined && !request.project) {
      throw usageError('--ip-id needs --project: only Public Cloud failover IPs are known by id')
    }
    // This host's identity comes from the metadata service, not the OVH API: ask
    // for it while the API calls run. Only Public Cloud instances have one.
    const self =
      request.needTarget && !request.instance && request.project ? this.thisInstance(signal) : undefined
    self?.catch(() => {}) // awaited below; avoid an unhandled rejection meanwhile
    let scope: Holder | undefined
    if (request.project) {
      const projectId = await this.projectId(request.project, signal)
      scope = { id: projectId, name: request.project === projectId ? undefined : request.project }
      const listing = this.needsListing(projectId, request)
        ? this.listInstances(projectId, signal)
        : undefined
      listing?.catch(() => {}) // awaited below, or moot if the IP is not a cloud one
      const target = !request.needTarget
        ? Promise.resolve(undefined)
        : request.instance
          ? this.instanceByName(projectId, request.instance, listing)
          : (self as Promise<Holder>)
      const [failover, targetHolder] = await Promise.all([
        this.findFailover(projectId, request, signal),
        target,
      ])
      await listing // names for the report, fetched side by side with the rest
      if (failover) {
        const ip = request.ip ?? parseIp(failover.block ?? failover.ip, 'the failover IP')
        return this.handle(
          { kind: 'cloud', projectId, failoverId: failover.id },
          { ip, kind: 'cloud', scope, target: targetHolder, state: this.cloudState(failover, projectId) },
        )
      }
      this.log.debug(`ovh: ${request.ip?.block} is not a failover IP of project ${projectId}; trying /ip`)
    }
    const ip = request.ip as IpBlock // without a project there is no --ip-id (checked above)
    if (request.needTarget && !request.instance) {
      throw usageError(
        'classic failover IPs need --instance: the service name of the dedicated server (no metadata service there)',
      )
    }
    const location: Location = { kind: 'classic', block: ip.block }
    const state = await this.locateClassic(location, request.project, signal)
    const target = request.instance ? { id: request.instance } : undefined
    return this.handle(location, { ip, kind: 'classic', scope, target, state })
  }

  /** The located IP, with reads and writes bound to where it lives. */
  private handle(location: Location, located: Located): LocatedIp {
    return {
      ...located,
      read: (signal) => this.read(location, signal),
      write: (target, signal) => this.write(location, target, signal),
    }
  }

  private async read(location: Location, signal: AbortSignal): Promise<IpState> {
    if (location.kind === 'cloud') {
      const path = `/cloud/project/${location.projectId}/ip/failover/${enc(location.failoverId)}`
      return this.cloudState(await this.call<FailoverIp>('GET', path, signal), location.projectId)
    }
    return this.classicState(location, signal)
  }

  private async write(location: Location, target: Holder, signal: AbortSignal): Promise<IpState | undefined> {
    if (location.kind === 'cloud') {
      const path = `/cloud/project/${location.projectId}/ip/failover/${enc(location.failoverId)}/attach`
      const answer = await this.call<FailoverIp>('POST', path, signal, { instanceId: target.id })
      return this.cloudState(answer, location.projectId)
    }
    const task = await this.call<IpTask>('POST', `/ip/${enc(location.block)}/move`, signal, { to: target.id })
    location.taskId = task.taskId
    return undefined // the task is followed by read()
  }

  // ---- locating -----------------------------------------------------------

  /** A project id as given, or the one whose description (the console name) matches. */
  private async projectId(project: string, signal: AbortSignal): Promise<string> {
    if (PROJECT_ID.test(project)) return project
    const key = `project:${project}`
    const cached = this.cache.get(key)
    if (cached) return cached
    const ids = await this.call<string[]>('GET', '/cloud/project', signal)
    const matches: string[] = []
    for (let i = 0; i < ids.length; i += PROJECT_LOOKUP_CONCURRENCY) {
      const batch = ids.slice(i, i + PROJECT_LOOKUP_CONCURRENCY)
      const details = await Promise.all(
        batch.map((id) => this.call<{ description?: string }>('GET', `/cloud/project/${enc(id)}`, signal)),
      )
      batch.forEach((id, n) => {
        if (details[n]?.description === project) matches.push(id)
      })
    }
    if (matches.length > 1)
      throw notFound(`project name ${JSON.stringify(project)} is ambiguous: ${matches.join(', ')}`)
    const [id] = matches
    if (!id)
      throw notFound(
        `no Public Cloud project named ${JSON.stringify(project)} (found ${ids.length} projects)`,
      )
    this.cache.set(key, id)
    return id
  }

  /** The failover IP by its id (--ip-id), or by address through the cache or the project's list. */
  private async findFailover(
    projectId: string,
    request: LocateRequest,
    signal: AbortSignal,
  ): Promise<FailoverIp | undefined> {
    const { ip, ipId } = request
    if (ipId !== undefined) {
      const found = await this.call<FailoverIp>(
        'GET',
        `/cloud/project/${projectId}/ip/failover/${enc(ipId)}`,
        signal,
      )
      if (ip && !sameIp(ip, found.ip) && !sameIp(ip, found.block)) {
        throw usageError(`--ip ${ip.block} and --ip-id ${ipId} (${found.ip}) name different IPs`)
      }
      return found
    }
    if (!ip) return undefined
    const key = `failover:${projectId}:${ip.block}`
    const cached = this.cache.get(key)
    if (cached) {
      try {
        return await this.call<FailoverIp>(
          'GET',
          `/cloud/project/${projectId}/ip/failover/${enc(cached)}`,
          signal,
        )
      } catch (error) {
        if (!(error instanceof IpmoveError && error.kind === 'not-found')) throw error
        this.cache.delete(key)
      }
    }
    const all = await this.call<FailoverIp[]>('GET', `/cloud/project/${projectId}/ip/failover`, signal)
    const found = all.find((f) => sameIp(ip, f.ip) || sameIp(ip, f.block))
    if (found) this.cache.set(key, found.id)
    return found
  }

  /**
   * List the project's instances unless the cache already knows the target
   * and the names: a cold run lists once, side by side with the failover IP.
   */
  private needsListing(projectId: string, request: LocateRequest): boolean {
    if (
      request.needTarget &&
      request.instance &&
      !this.cache.get(`instance:${projectId}:${request.instance}`)
    )
      return true
    return !this.cache.get(`listed:${projectId}`)
  }

  private async listInstances(projectId: string, signal: AbortSignal): Promise<Instance[]> {
    const list = await this.call<Instance[]>('GET', `/cloud/project/${projectId}/instance`, signal)
    for (const i of list) {
      this.instanceNames.set(i.id, i.name)
      this.cache.set(`instance-name:${projectId}:${i.id}`, i.name)
    }
    this.cache.set(`listed:${projectId}`, '1')
    return list
  }

  /** Resolve --instance: an id passes through; a name must match exactly one instance. */
  private async instanceByName(
    projectId: string,
    instance: string,
    listing: Promise<Instance[]> | undefined,
  ): Promise<Holder> {
    const key = `instance:${projectId}:${instance}`
    const cached = this.cache.get(key)
    if (cached || !listing) {
      // needsListing() guarantees a listing whenever the cache lacks the instance.
      const id = cached ?? instance
      const name = this.cache.get(`instance-name:${projectId}:${id}`) ?? instance
      this.instanceNames.set(id, name)
      return { id, name }
    }
    const list = await listing
    const byId = list.find((i) => i.id === instance)
    if (byId) {
      this.cache.set(key, byId.id)
      return { id: byId.id, name: byId.name }
    }
    const named = list.filter((i) => i.name === instance)
    if (named.length > 1) {
      throw notFound(
        `instance name ${JSON.stringify(instance)} is ambiguous in project ${projectId}: ${named.map((i) => `${i.id} (${i.region ?? '?'})`).join(', ')}; pass the id`,
      )
    }
    const [match] = named
    if (!match) throw notFound(`no instance ${JSON.stringify(instance)} in project ${projectId}`)
    this.cache.set(key, match.id)
    return { id: match.id, name: match.name }
  }

  /** This host, from the OpenStack metadata service (no credentials involved). */
  private async thisInstance(signal: AbortSignal): Promise<Holder> {
    const url = new URL(this.env.IPMOVE_OPENSTACK_METADATA_URL || METADATA_URL)
    let response: HttpResponse
    try {
      response = await this.http.send({ method: 'GET', url }, signal)
    } catch (error) {
      if (error instanceof TransportError) {
        throw usageError(
          `--instance was omitted and this host's metadata service (${url.host}) did not answer: ${error.message}`,
        )
      }
      throw error
    }
    const body = parseJson<{ uuid?: string; name?: string }>(response.text)
    if (response.status !== 200 || !body?.uuid) {
      throw usageError(`--instance was omitted and the metadata service at ${url.host} gave no instance id`)
    }
    if (body.name) this.instanceNames.set(body.uuid, body.name)
    return { id: body.uuid, name: body.name }
  }

  private async locateClassic(
    location: Extract<Location, { kind: 'classic' }>,
    project: string | undefined,
    signal: AbortSignal,
  ): Promise<IpState> {
    try {
      return await this.classicState(location, signal)
    } catch (error) {
      if (error instanceof IpmoveError && error.kind === 'not-found') {
        const where = project ? `a failover IP of project ${project} nor` : ''
        throw notFound(
          `${location.block} is neither ${where} a failover IP of this account (/ip)`.replace(
            'neither  a',
            'not a',
          ),
        )
      }
      throw error
    }
  }

  // ---- state ----------------------------------------------------------------

  private cloudState(failover: FailoverIp, projectId: string): IpState {
    const pending = failover.status !== 'ok'
    const holder = failover.routedTo
      ? { id: failover.routedTo, name: this.instanceName(failover.routedTo, projectId) }
      : null
    return {
      holder,
      pending,
      progress: pending ? failover.progress : undefined,
      note: pending ? `status ${failover.status}` : undefined,
    }
  }

  private instanceName(id: string, projectId: string): string | undefined {
    return this.instanceNames.get(id) ?? this.cache.get(`instance-name:${projectId}:${id}`)
  }

  /**
   * A classic IP is pending while a move task is init/todo/doing. After our own
   * write we follow our task; otherwise we ask for pending tasks by status.
   */
  private async classicState(
    location: Extract<Location, { kind: 'classic' }>,
    signal: AbortSignal,
  ): Promise<IpState> {
    const base = `/ip/${enc(location.block)}`
    const info = this.call<{ routedTo?: { serviceName?: string } | null }>('GET', base, signal)
    let pendingTask: IpTask | undefined
    if (location.taskId !== undefined) {
      const [task] = await Promise.all([
        this.call<IpTask>('GET', `${base}/task/${location.taskId}`, signal),
        info,
      ])
      if (FAILED_TASK.has(task.status)) {
        throw new IpmoveError(
          'provider-failed',
          `OVH move task ${task.taskId} for ${location.block} ended in ${task.status}${task.comment ? `: ${task.comment}` : ''}`,
        )
      }
      if (task.status !== 'done') pendingTask = task
    } else {
      const lists = await Promise.all([
        info,
        ...PENDING_TASK.map((status) =>
          this.call<number[]>('GET', `${base}/task?function=genericMoveFloatingIp&status=${status}`, signal),
        ),
      ])
      const id = lists.slice(1).flat()[0] as number | undefined
      if (id !== undefined) pendingTask = { taskId: id, status: 'pending' }
    }
    const serviceName = (await info).routedTo?.serviceName
    return {
      holder: serviceName ? { id: serviceName } : null,
      pending: pendingTask !== undefined,
      note: pendingTask ? `task ${pendingTask.taskId} ${pendingTask.status}` : undefined,
    }
  }

  // ---- HTTP -----------------------------------------------------------------

  private async call<T>(method: Method, path: string, signal: AbortSignal, body?: object): Promise<T> {
    let { response, delta } = await this.send(method, path, signal, body)
    let error = response.status >= 300 ? (parseJson<OvhErrorBody>(response.text) ?? {}) : undefined
    // A wrong clock delta is refused as out of time (or, by some deployments, as an
    // invalid signature): ask /auth/time, re-sign and send once more.
    if (error && CLOCK_REFUSALS.has(error.errorCode ?? '') && delta && !delta.verified) {
      this.log.debug(`ovh: ${error.errorCode} with an unverified clock delta; asking /auth/time`)
      await this.refreshDelta(delta, signal)
      ;({ response } = await this.send(method, path, signal, body))
      error = response.status >= 300 ? (parseJson<OvhErrorBody>(response.text) ?? {}) : undefined
    }
    if (error) throw apiError(method, path, response, error)
    return parseJson<T>(response.text) as T
  }

  private async send(
    method: Method,
    path: string,
    signal: AbortSignal,
    body?: object,
  ): Promise<{ response: HttpResponse; delta?: ClockDelta }> {
    const url = new URL(this.credentials.baseUrl + path)
    const text = body === undefined ? undefined : JSON.stringify(body)
    const c = this.credentials
    let headers: Record<string, string>
    let delta: ClockDelta | undefined
    if (c.kind === 'oauth2') {
      headers = { Authorization: `Bearer ${await this.accessToken(c, signal)}` }
    } else {
      delta = this.clockDelta()
      headers = signedHeaders(c, method, url, text ?? '', delta.seconds)
    }
    this.log.debug(`ovh: ${method} ${url.pathname}${url.search}`)
    try {
      return { response: await this.http.send({ method, url, headers, body: text }, signal), delta }
    } catch (error) {
      if (!(error instanceof TransportError)) throw error
      if (signal.aborted) {
        throw new IpmoveError('timeout', `timed out during ${method} ${url.pathname}: ${error.message}`)
      }
      throw unreachable('OVH API', error)
    }
  }

  private clockDelta(): ClockDelta {
    if (!this.delta) {
      const cached = this.cache.get('time-delta')
      this.delta = { seconds: cached === undefined ? 0 : Number(cached), verified: false }
    }
    return this.delta
  }

  /** Fetch /auth/time once, however many requests were refused with the stale delta. */
  private async refreshDelta(stale: ClockDelta, signal: AbortSignal): Promise<ClockDelta> {
    if (this.delta && this.delta !== stale && this.delta.verified) return this.delta
    this.deltaRefresh ??= this.fetchDelta(signal)
    this.delta = await this.deltaRefresh
    return this.delta
  }

  private async fetchDelta(signal: AbortSignal): Promise<ClockDelta> {
    const url = new URL(`${this.credentials.baseUrl}/auth/time`)
    let response: HttpResponse
    try {
      response = await this.http.send({ method: 'GET', url }, signal)
    } catch (error) {
      if (error instanceof TransportError) throw unreachable('OVH API', error)
      throw error
    }
    const serverTime = Number(response.text)
    if (response.status !== 200 || !Number.isInteger(serverTime)) {
      throw new IpmoveError('unreachable', `OVH API: /auth/time answered HTTP ${response.status}, not a time`)
    }
    const seconds = serverTime - Math.round(Date.now() / 1000)
    this.cache.set('time-delta', String(seconds), TIME_DELTA_TTL_MS)
    return { seconds, verified: true }
  }

  /** OAuth2 client-credentials token, kept in memory only (it is a secret). */
  private async accessToken(
    c: Extract<OvhCredentials, { kind: 'oauth2' }>,
    signal: AbortSignal,
  ): Promise<string> {
    if (this.token && this.token.expires > Date.now() + 10_000) return this.token.value
    const body = new URLSearchParams({ grant_type: 'client_credentials', scope: 'all' }).toString()
    const basic = Buffer.from(
      `${encodeURIComponent(c.clientId)}:${encodeURIComponent(c.clientSecret)}`,
    ).toString('base64')
    registerSecret(basic)
    let response: HttpResponse
    try {
      response = await this.http.send(
        {
          method: 'POST',
          url: new URL(c.tokenUrl),
          headers: { Authorization: `Basic ${basic}`, 'Content-Type': 'application/x-www-form-urlencoded' },
          body,
        },
        signal,
      )
    } catch (error) {
      if (error instanceof TransportError) throw unreachable('OVH OAuth2 token endpoint', error)
      throw error
    }
    const token = parseJson<{ access_token?: string; expires_in?: number }>(response.text)
    if (response.status !== 200 || !token?.access_token) {
      throw new IpmoveError(
        'auth',
        `OVH refused the service account's client id/secret (HTTP ${response.status} from ${new URL(c.tokenUrl).host})`,
      )
    }
    registerSecret(token.access_token)
    this.token = { value: token.access_token, expires: Date.now() + (token.expires_in ?? 3600) * 1000 }
    return token.access_token
  }
}

// ---- helpers ------------------------------------------------------------------

/** OVH wants path parameters encoded, `/` included (`/ip/1.2.3.4%2F32`). */
function enc(value: string): string {
  return encodeURIComponent(value)
}

function parseJson<T>(text: string): T | undefined {
  try {
    return JSON.parse(text) as T
  } catch {
    return undefined
  }
}

/** Whether the API's `ip` or `block` text names the same address (and prefix, when it has one). */
function sameIp(ip: IpBlock, candidate: string | undefined): boolean {
  if (!candidate) return false
  try {
    const other = parseIp(candidate)
    return other.address === ip.address && (!candidate.includes('/') || other.prefix === ip.prefix)
  } catch {
    return false
  }
}

/** OVH's request signature: SHA-1 over secret, consumer key, method, full URL, body and timestamp. */
function signedHeaders(
  c: Extract<OvhCredentials, { kind: 'application' }>,
  method: Method,
  url: URL,
  body: string,
  deltaSeconds: number,
): Record<string, string> {
  const timestamp = String(Math.round(Date.now() / 1000) + deltaSeconds)
  const signature = createHash('sha1')
    .update([c.applicationSecret, c.consumerKey, method, url.href, body, timestamp].join('+'))
    .digest('hex')
  return {
    'X-Ovh-Application': c.applicationKey,
    'X-Ovh-Consumer': c.consumerKey,
    'X-Ovh-Timestamp': timestamp,
    'X-Ovh-Signature': `$1$${signature}`,
  }
}

/** Map an OVH error answer to ipmove's exit codes, keeping OVH's words and query id. */
function apiError(method: Method, path: string, response: HttpResponse, body: OvhErrorBody): IpmoveError {
  const queryId = response.headers['x-ovh-queryid']
  const reason = body.message ?? `HTTP ${response.status}`
  const message = `OVH API ${method} ${path}: ${reason}${queryId ? ` (query ${queryId})` : ''}`
  const details = { httpStatus: response.status, errorCode: body.errorCode, queryId }
  const status = response.status
  if (status === 401 || status === 403 || CLOCK_REFUSALS.has(body.errorCode ?? '')) {
    return new IpmoveError('auth', message, details)
  }
  if (status === 404) return new IpmoveError('not-found', message, details)
  if (status === 409) return new IpmoveError('busy', message, details)
  return new IpmoveError('provider-failed', message, details)
}
