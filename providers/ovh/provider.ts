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
  ListedIp,
  ListRequest,
  Located,
  LocatedIp,
  LocateRequest,
  Provider,
  ProviderContext,
} from '../../src/core/provider.js'
import { describeHolder } from '../../src/core/provider.js'
import { IpmoveError, listed, notFound, usageError } from '../../src/errors.js'
import { type Logger, registerSecret } from '../../src/output.js'
import { type IpBlock, parseIp } from '../../src/validate.js'
import { HttpClient, type HttpResponse, type Method, TransportError, unreachable } from '../http.js'
import { OVH_PROJECT_ID } from './access-rules.js'
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

// ---- the shapes of OVH's answers ------------------------------------------------
// Every answer is checked before use: an HTML error page, an empty 200, `null` or a
// string where a list belongs then ends in exit 9 saying so, never in a TypeError or in
// a misleading "not found". Hand-written: eight small shapes, no dependency to load.

/** What an answer must look like, and how to name it in an error. */
interface Shape<T> {
  what: string
  test: (value: unknown) => value is T
}

type Fields = Record<string, unknown>
const isObject = (v: unknown): v is Fields => typeof v === 'object' && v !== null && !Array.isArray(v)
const isString = (v: unknown): v is string => typeof v === 'string'
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v)
/** Absent or null, or passing `test`. */
const maybe = (v: unknown, test: (v: unknown) => boolean) => v === undefined || v === null || test(v)

function shape<T>(what: string, test: (v: Fields) => boolean): Shape<T> {
  return { what, test: (v): v is T => isObject(v) && test(v) }
}

function listOf<T>(what: string, item: (v: unknown) => boolean): Shape<T[]> {
  return { what, test: (v): v is T[] => Array.isArray(v) && v.every(item) }
}

const FAILOVER_IP = shape<FailoverIp>(
  'a failover IP',
  (v) =>
    isString(v.id) &&
    isString(v.ip) &&
    isString(v.status) &&
    maybe(v.routedTo, isString) &&
    maybe(v.block, isString) &&
    maybe(v.progress, isNumber),
)
const FAILOVER_IPS = listOf<FailoverIp>('a list of failover IPs', FAILOVER_IP.test)
const INSTANCES = listOf<Instance>(
  'a list of instances',
  (v) => isObject(v) && isString(v.id) && isString(v.name) && maybe(v.region, isString),
)
const PROJECT_IDS = listOf<string>('a list of project ids', isString)
const BLOCKS = listOf<string>('a list of IP blocks', isString)
const PROJECT = shape<{ description?: string | null }>('a project', (v) => maybe(v.description, isString))
const IP_TASK = shape<IpTask>(
  'an IP task',
  (v) => isNumber(v.taskId) && isString(v.status) && maybe(v.comment, isString),
)
const TASK_IDS = listOf<number>('a list of task ids', isNumber)
const CLASSIC_IP = shape<{ routedTo?: { serviceName?: string | null } | null }>('an IP', (v) =>
  maybe(v.routedTo, (r) => isObject(r) && maybe(r.serviceName, isString)),
)

/** What came instead of the expected shape, in a few words (never the answer itself: it may echo secrets). */
export function describeAnswer(text: string): string {
  const trimmed = text.trim()
  if (trimmed === '') return 'an empty answer'
  const value = parseJson<unknown>(trimmed)
  if (value === undefined) return trimmed.startsWith('<') ? 'an HTML page' : 'text that is not JSON'
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a list of something else'
  return typeof value === 'object' ? 'an object without the expected fields' : `a JSON ${typeof value}`
}

/** Where the located IP lives: the two OVH APIs behave differently. */
type Location =
  | {
      kind: 'cloud'
      projectId: string
      failoverId: string
      /** The target's id when it came from the cache unchecked: a 404 on the write then means it is stale. */
      cachedTarget?: CachedTarget
    }
  | { kind: 'classic'; block: string; taskId?: number }

interface CachedTarget {
  key: string
  name: string
  id: string
}

export class OvhProvider implements Provider {
  readonly name = 'ovh'
  readonly hasCloudApi = true
  private readonly http: HttpClient
  /** The OpenStack metadata service, asked only when --instance is omitted. */
  private readonly metadata: HttpClient
  private delta: ClockDelta | undefined
  private deltaRefresh: Promise<ClockDelta> | undefined
  private token: { value: string; expires: number } | undefined
  /** Instance names by id, for reports; filled from listings and the cache. */
  private readonly instanceNames = new Map<string, string>()
  /** The failover IPs listed per project (as given), to name them when the IP is not among them. */
  private readonly projectFailovers = new Map<string, string[]>()

  private constructor(
    private readonly credentials: OvhCredentials,
    private readonly cache: IdCache,
    private readonly log: Logger,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    this.http = new HttpClient({ log })
    // Link-local: an answer takes a millisecond, so a short limit tells a host without one fast.
    this.metadata = new HttpClient({
      log,
      requestTimeoutMs: 2_000,
      retries: 2,
      minBackoffMs: 100,
      maxBackoffMs: 400,
    })
  }

  static async create(context: ProviderContext): Promise<OvhProvider> {
    const credentials = await resolveOvhCredentials({
      env: context.env,
      cwd: process.cwd(),
      home: homedir(),
      config: { values: context.settings },
      log: context.log,
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
    this.metadata.close()
  }

  async locate(request: LocateRequest, signal: AbortSignal): Promise<LocatedIp> {
    if (request.ipId !== undefined && !request.project) {
      throw usageError('--ip-id needs --project: only Public Cloud failover IPs are known by id')
    }
    // This host's identity comes from the metadata service (only Public Cloud instances
    // have one). It answers in a millisecond where it exists; asking it first means a host
    // without one exits 2 before any API request, not after five.
    const self =
      request.needTarget && !request.instance && request.project ? await this.thisInstance(signal) : undefined
    let scope: Holder | undefined
    if (request.project) {
      const projectKey = `project:${request.project}`
      const cachedProject = OVH_PROJECT_ID.test(request.project) ? undefined : this.cache.get(projectKey)
      let projectId = await this.projectId(request.project, signal)
      let found: LocatedIp | undefined
      try {
        found = await this.locateInProject(projectId, request, self, signal)
      } catch (error) {
        // A cached project id the API no longer knows (404): drop it, look the name up again.
        if (!isApi404(error) || cachedProject !== projectId) throw error
        this.log.debug(
          `ovh: the cached id ${projectId} of project ${request.project} is gone; looking it up again`,
        )
        this.cache.delete(projectKey)
        projectId = await this.projectId(request.project, signal)
        found = await this.locateInProject(projectId, request, self, signal)
      }
      if (found) return found
      scope = { id: projectId, name: request.project === projectId ? undefined : request.project }
      this.log.debug(`ovh: ${request.ip?.block} is not a failover IP of project ${projectId}; trying /ip`)
    }
    const ip = request.ip as IpBlock // without a project there is no --ip-id (checked above)
    if (request.needTarget && !request.instance) {
      throw usageError(
        request.project
          ? 'classic failover IPs need --instance: the service name of the dedicated server (no metadata service there)'
          : "without --project ipmove looks for a classic failover IP, which needs --instance (the dedicated server's service name); for a Public Cloud failover IP, add --project (its id or name)",
      )
    }
    const location: Location = { kind: 'classic', block: ip.block }
    const state = await this.locateClassic(location, ip, request.project, signal)
    const target = request.instance ? { id: request.instance } : undefined
    return this.handle(location, { ip, kind: 'classic', scope, target, state })
  }

  /**
   * `ipmove list`: the failover IPs of each Public Cloud project (or of --project), with
   * their instances' names, then, without --project, the account's classic failover IPs.
   */
  async list(request: ListRequest, signal: AbortSignal): Promise<ListedIp[]> {
    const projects = request.project
      ? [await this.projectHolder(request.project, signal)]
      : await this.projects(signal)
    const listed: ListedIp[] = []
    for (let i = 0; i < projects.length; i += PROJECT_LOOKUP_CONCURRENCY) {
      const batch = projects.slice(i, i + PROJECT_LOOKUP_CONCURRENCY)
      const found = await Promise.all(
        batch.map(async (project) => {
          const [failovers] = await Promise.all([
            this.call('GET', `/cloud/project/${project.id}/ip/failover`, signal, FAILOVER_IPS),
            this.listInstances(project.id, signal), // names the holders
          ])
          return failovers.map((f): ListedIp => {
            const state = this.cloudState(f, project.id)
            const ip = f.block ?? f.ip
            return { ip, kind: 'cloud', id: f.id, scope: project, ...stateFields(state) }
          })
        }),
      )
      listed.push(...found.flat())
    }
    if (request.project) return listed
    // Public Cloud failover IPs may show in /ip too: each IP once, as the API that moves it sees it.
    const seen = new Set(listed.map((l) => l.ip))
    let blocks: string[]
    try {
      blocks = (await this.call('GET', '/ip?type=failover', signal, BLOCKS)).filter((b) => !seen.has(b))
    } catch (error) {
      // A key restricted to the calls a move makes may list projects but not /ip.
      if (!(error instanceof IpmoveError && error.kind === 'auth')) throw error
      this.log.warn(`classic failover IPs not listed: ${error.message} (the key needs GET /ip)`)
      blocks = []
    }
    for (let i = 0; i < blocks.length; i += PROJECT_LOOKUP_CONCURRENCY) {
      const batch = blocks.slice(i, i + PROJECT_LOOKUP_CONCURRENCY)
      const states = await Promise.all(
        batch.map((block) => this.classicState({ kind: 'classic', block }, signal)),
      )
      batch.forEach((block, n) => {
        listed.push({ ip: block, kind: 'classic', ...stateFields(states[n]!) })
      })
    }
    return listed
  }

  /** --project as a holder: its id, and its name when it was given by name. */
  private async projectHolder(project: string, signal: AbortSignal): Promise<Holder> {
    const id = await this.projectId(project, signal)
    return { id, name: id === project ? undefined : project }
  }

  /** The located IP, with reads and writes bound to where it lives. */
  private handle(location: Location, located: Located): LocatedIp {
    return {
      ...located,
      read: (signal) => this.read(location, signal),
      write: (target, signal) => this.write(location, target, signal),
    }
  }

  /** The IP among the project's failover IPs, with the target resolved side by side; undefined if not there. */
  private async locateInProject(
    projectId: string,
    request: LocateRequest,
    self: Holder | undefined,
    signal: AbortSignal,
  ): Promise<LocatedIp | undefined> {
    const scope = { id: projectId, name: request.project === projectId ? undefined : request.project }
    // Read before instanceByName() does: the id it returns then came from the cache.
    const cachedTarget =
      request.needTarget && request.instance ? this.cachedTarget(projectId, request.instance) : undefined
    const listing = this.needsListing(projectId, request) ? this.listInstances(projectId, signal) : undefined
    listing?.catch(() => {}) // awaited below, or moot if the IP is not a cloud one
    const target = !request.needTarget
      ? Promise.resolve(undefined)
      : request.instance
        ? this.instanceByName(projectId, request.instance, listing)
        : Promise.resolve(self as Holder)
    const [failover, targetHolder] = await Promise.all([
      this.findFailover(projectId, request, signal),
      target,
    ])
    await listing // names for the report, fetched side by side with the rest
    if (failover) {
      const ip = request.ip ?? parseIp(failover.block ?? failover.ip, 'the failover IP')
      return this.handle(
        { kind: 'cloud', projectId, failoverId: failover.id, cachedTarget },
        { ip, kind: 'cloud', scope, target: targetHolder, state: this.cloudState(failover, projectId) },
      )
    }
    return undefined
  }

  private async read(location: Location, signal: AbortSignal): Promise<IpState> {
    if (location.kind === 'cloud') {
      const path = `/cloud/project/${location.projectId}/ip/failover/${enc(location.failoverId)}`
      return this.cloudState(await this.call('GET', path, signal, FAILOVER_IP), location.projectId)
    }
    return this.classicState(location, signal)
  }

  private async write(location: Location, target: Holder, signal: AbortSignal): Promise<IpState | undefined> {
    if (location.kind === 'cloud') {
      try {
        return await this.attach(location, target, signal)
      } catch (error) {
        const cached = location.cachedTarget
        if (!isApi404(error) || cached?.id !== target.id) throw error
        // An instance rebuilt under the same name has a new id: the API refused the cached
        // one and did nothing. Drop it, look the name up again, and ask once more.
        this.cache.delete(cached.key)
        location.cachedTarget = undefined
        const listing = this.listInstances(location.projectId, signal)
        const fresh = await this.instanceByName(location.projectId, cached.name, listing)
        if (fresh.id === target.id) throw error
        this.log.info(`instance ${cached.name} has a new id ${fresh.id} (was ${target.id}); asking again`)
        // The engine holds this object as the target: it must see the new id.
        Object.assign(target, fresh)
        return await this.attach(location, target, signal)
      }
    }
    const task = await this.call('POST', `/ip/${enc(location.block)}/move`, signal, IP_TASK, {
      to: target.id,
    })
    location.taskId = task.taskId
    return undefined // the task is followed by read()
  }

  private async attach(
    location: Extract<Location, { kind: 'cloud' }>,
    target: Holder,
    signal: AbortSignal,
  ): Promise<IpState> {
    const path = `/cloud/project/${location.projectId}/ip/failover/${enc(location.failoverId)}/attach`
    const answer = await this.call('POST', path, signal, FAILOVER_IP, { instanceId: target.id })
    return this.cloudState(answer, location.projectId)
  }

  // ---- locating -----------------------------------------------------------

  /** A project id as given, or the one whose description (the console name) matches. */
  private async projectId(project: string, signal: AbortSignal): Promise<string> {
    if (OVH_PROJECT_ID.test(project)) return project
    const key = `project:${project}`
    const cached = this.cache.get(key)
    if (cached) return cached
    const projects = await this.projects(signal)
    const matches = projects.filter((p) => p.name === project).map((p) => p.id)
    if (matches.length > 1)
      throw notFound(`project name ${JSON.stringify(project)} is ambiguous: ${matches.join(', ')}`)
    const [id] = matches
    if (!id) {
      throw notFound(
        `no Public Cloud project named ${JSON.stringify(project)} among the ${projects.length} these credentials see${listed(projects.map(describeHolder), ': ')}`,
      )
    }
    this.cache.set(key, id)
    return id
  }

  /** The Public Cloud projects the credentials see, named by their description (the console's name). */
  private async projects(signal: AbortSignal): Promise<Holder[]> {
    const ids = await this.call('GET', '/cloud/project', signal, PROJECT_IDS)
    const projects: Holder[] = []
    for (let i = 0; i < ids.length; i += PROJECT_LOOKUP_CONCURRENCY) {
      const batch = ids.slice(i, i + PROJECT_LOOKUP_CONCURRENCY)
      const details = await Promise.all(
        batch.map((id) => this.call('GET', `/cloud/project/${enc(id)}`, signal, PROJECT)),
      )
      batch.forEach((id, n) => {
        projects.push({ id, name: details[n]?.description || undefined })
      })
    }
    return projects
  }

  /** The failover IP by its id (--ip-id), or by address through the cache or the project's list. */
  private async findFailover(
    projectId: string,
    request: LocateRequest,
    signal: AbortSignal,
  ): Promise<FailoverIp | undefined> {
    const { ip, ipId } = request
    if (ipId !== undefined) {
      const found = await this.call(
        'GET',
        `/cloud/project/${projectId}/ip/failover/${enc(ipId)}`,
        signal,
        FAILOVER_IP,
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
        return await this.call(
          'GET',
          `/cloud/project/${projectId}/ip/failover/${enc(cached)}`,
          signal,
          FAILOVER_IP,
        )
      } catch (error) {
        if (!(error instanceof IpmoveError && error.kind === 'not-found')) throw error
        this.cache.delete(key)
      }
    }
    const all = await this.call('GET', `/cloud/project/${projectId}/ip/failover`, signal, FAILOVER_IPS)
    // For the not-found message, by the project as it was given.
    if (request.project)
      this.projectFailovers.set(
        request.project,
        all.map((f) => f.block ?? f.ip),
      )
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
    const list = await this.call('GET', `/cloud/project/${projectId}/instance`, signal, INSTANCES)
    for (const i of list) {
      this.instanceNames.set(i.id, i.name)
      this.cache.set(`instance-name:${projectId}:${i.id}`, i.name)
    }
    this.cache.set(`listed:${projectId}`, '1')
    return list
  }

  /** The target as the cache knows it, unchecked. */
  private cachedTarget(projectId: string, instance: string): CachedTarget | undefined {
    const key = `instance:${projectId}:${instance}`
    const id = this.cache.get(key)
    return id ? { key, name: instance, id } : undefined
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
    if (!match) {
      throw notFound(
        `no instance ${JSON.stringify(instance)} in project ${projectId}, by id or name${listed(
          list.map((i) => i.name),
          ' (its instances: ',
          ')',
        )}`,
      )
    }
    this.cache.set(key, match.id)
    return { id: match.id, name: match.name }
  }

  /** This host, from the OpenStack metadata service (no credentials involved). */
  private async thisInstance(signal: AbortSignal): Promise<Holder> {
    const url = new URL(this.env.IPMOVE_OPENSTACK_METADATA_URL || METADATA_URL)
    let response: HttpResponse
    try {
      response = await this.metadata.send({ method: 'GET', url }, signal)
    } catch (error) {
      if (error instanceof TransportError) {
        throw usageError(
          `--instance was omitted and this host's metadata service (${url.host}) did not answer: ${error.message}`,
        )
      }
      throw error
    }
    const body = parseJson<unknown>(response.text)
    if (response.status !== 200 || !isObject(body) || !isString(body.uuid) || !body.uuid) {
      throw usageError(`--instance was omitted and the metadata service at ${url.host} gave no instance id`)
    }
    const name = isString(body.name) && body.name ? body.name : undefined
    if (name) this.instanceNames.set(body.uuid, name)
    return { id: body.uuid, name }
  }

  private async locateClassic(
    location: Extract<Location, { kind: 'classic' }>,
    ip: IpBlock,
    project: string | undefined,
    signal: AbortSignal,
  ): Promise<IpState> {
    try {
      return await this.classicState(location, signal)
    } catch (error) {
      if (!(error instanceof IpmoveError && error.kind === 'not-found')) throw error
      if (project) {
        const failovers = this.projectFailovers.get(project) ?? []
        throw notFound(
          `${location.block} is neither a failover IP of project ${project}${listed(failovers, ' (its failover IPs: ', ')')} nor a classic failover IP of this account (/ip)`,
        )
      }
      throw await this.notClassic(ip, signal)
    }
  }

  /**
   * The error for an IP that /ip does not know, given without --project: most often a
   * Public Cloud failover IP, whose project the message then names.
   */
  private async notClassic(ip: IpBlock, signal: AbortSignal): Promise<IpmoveError> {
    const block = ip.block
    let projects: Holder[]
    let owner: Holder | undefined
    try {
      projects = await this.projects(signal)
      for (let i = 0; i < projects.length && !owner; i += PROJECT_LOOKUP_CONCURRENCY) {
        const batch = projects.slice(i, i + PROJECT_LOOKUP_CONCURRENCY)
        const lists = await Promise.all(
          batch.map((p) => this.call('GET', `/cloud/project/${p.id}/ip/failover`, signal, FAILOVER_IPS)),
        )
        owner = batch.find((_, n) => lists[n]?.some((f) => sameIp(ip, f.ip) || sameIp(ip, f.block)))
      }
    } catch (error) {
      this.log.debug(`ovh: could not search the Public Cloud projects: ${(error as Error).message}`)
      return notFound(
        `${block} is not a classic failover IP of this account (/ip); for a Public Cloud failover IP, add --project (its id or name)`,
      )
    }
    if (owner) {
      return notFound(
        `${block} is a Public Cloud failover IP of project ${describeHolder(owner)}, not a classic one (/ip): add --project ${owner.name ?? owner.id}`,
      )
    }
    return notFound(
      `${block} is not a failover IP of this account: not in /ip, nor in the failover IPs of the ${projects.length} Public Cloud projects${listed(projects.map(describeHolder), ' (', ')')}`,
    )
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
   * The tasks are read before the routing, never side by side: a task that ends
   * between the two reads would otherwise show as "done" beside the old holder,
   * and the engine would send a move the API refuses (the IP is already there).
   */
  private async classicState(
    location: Extract<Location, { kind: 'classic' }>,
    signal: AbortSignal,
  ): Promise<IpState> {
    const base = `/ip/${enc(location.block)}`
    let pendingTask: IpTask | undefined
    if (location.taskId !== undefined) {
      const task = await this.call('GET', `${base}/task/${location.taskId}`, signal, IP_TASK).catch(
        (error: unknown) => {
          if (!isApi404(error)) throw error
          return undefined
        },
      )
      if (!task) {
        // The API no longer shows our task (purged, or not visible yet): follow the IP's pending tasks instead.
        this.log.debug(
          `ovh: task ${location.taskId} of ${location.block} is not found; listing pending tasks`,
        )
        location.taskId = undefined
        return this.classicState(location, signal)
      }
      if (FAILED_TASK.has(task.status)) {
        throw new IpmoveError(
          'provider-failed',
          `OVH move task ${task.taskId} for ${location.block} ended in ${task.status}${task.comment ? `: ${task.comment}` : ''}`,
        )
      }
      if (task.status !== 'done') pendingTask = task
    } else {
      const lists = await Promise.all(
        PENDING_TASK.map((status) =>
          this.call('GET', `${base}/task?function=genericMoveFloatingIp&status=${status}`, signal, TASK_IDS),
        ),
      )
      const id = lists.flat()[0]
      if (id !== undefined) pendingTask = { taskId: id, status: 'pending' }
    }
    const serviceName = (await this.call('GET', base, signal, CLASSIC_IP)).routedTo?.serviceName
    return {
      holder: serviceName ? { id: serviceName } : null,
      pending: pendingTask !== undefined,
      note: pendingTask ? `task ${pendingTask.taskId} ${pendingTask.status}` : undefined,
    }
  }

  // ---- HTTP -----------------------------------------------------------------

  private async call<T>(
    method: Method,
    path: string,
    signal: AbortSignal,
    expected: Shape<T>,
    body?: object,
  ): Promise<T> {
    let { response, delta } = await this.send(method, path, signal, body)
    let error = response.status >= 300 ? errorBody(response.text) : undefined
    // A wrong clock delta is refused as out of time (or, by some deployments, as an
    // invalid signature): ask /auth/time, re-sign and send once more.
    if (error && CLOCK_REFUSALS.has(error.errorCode ?? '') && delta && !delta.verified) {
      this.log.debug(`ovh: ${error.errorCode} with an unverified clock delta; asking /auth/time`)
      await this.refreshDelta(delta, signal)
      ;({ response } = await this.send(method, path, signal, body))
      error = response.status >= 300 ? errorBody(response.text) : undefined
    }
    if (error) throw apiError(method, path, response, error)
    const answer = parseJson<unknown>(response.text)
    if (!expected.test(answer)) {
      throw new IpmoveError(
        'unexpected',
        `OVH API ${method} ${path}: the API answered something unexpected (HTTP ${response.status}, ${describeAnswer(response.text)} instead of ${expected.what})`,
        { httpStatus: response.status, queryId: response.headers['x-ovh-queryid'] },
      )
    }
    return answer
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
      // A write is sent once; the engine re-reads before any second one.
      const once = method !== 'GET'
      return { response: await this.http.send({ method, url, headers, body: text, once }, signal), delta }
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
    const seconds = await serverClockDelta(this.http, this.credentials.baseUrl, signal)
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
          // A token request moves nothing: retried after a reset or a 5xx, like a read.
          idempotent: true,
        },
        signal,
      )
    } catch (error) {
      if (error instanceof TransportError) throw unreachable('OVH OAuth2 token endpoint', error)
      throw error
    }
    const token = parseJson<unknown>(response.text)
    const valid = isObject(token) && isString(token.access_token) && token.access_token !== ''
    if (response.status === 200 && !valid) {
      // An answer, but no token in it: not a refusal of the client id/secret.
      throw new IpmoveError(
        'unexpected',
        `OVH OAuth2 token endpoint (${new URL(c.tokenUrl).host}) answered ${describeAnswer(response.text)} instead of an access token (HTTP 200)`,
        { httpStatus: 200 },
      )
    }
    if (response.status !== 200 || !isObject(token) || !isString(token.access_token)) {
      throw new IpmoveError(
        'auth',
        `OVH refused the service account's client id/secret (HTTP ${response.status} from ${new URL(c.tokenUrl).host})`,
      )
    }
    registerSecret(token.access_token)
    const lifetime = isNumber(token.expires_in) ? token.expires_in : 3600
    this.token = { value: token.access_token, expires: Date.now() + lifetime * 1000 }
    return token.access_token
  }
}

// ---- helpers ------------------------------------------------------------------

/** OVH wants path parameters encoded, `/` included (`/ip/1.2.3.4%2F32`). */
/** An IpState's fields as `ipmove list` reports them. */
function stateFields(state: IpState): Pick<ListedIp, 'holder' | 'pending' | 'note'> {
  return { holder: state.holder, pending: state.pending, note: state.note }
}

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

/** The API answered 404: an id it does not know (or no longer knows). */
function isApi404(error: unknown): boolean {
  return error instanceof IpmoveError && error.details?.httpStatus === 404
}

/** OVH's error object, keeping only the text fields it should have. */
export function errorBody(text: string): OvhErrorBody {
  const body = parseJson<unknown>(text)
  if (!isObject(body)) return {}
  return {
    message: isString(body.message) ? body.message : undefined,
    errorCode: isString(body.errorCode) ? body.errorCode : undefined,
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

/** Seconds to add to the local clock to sign with the API's (GET /auth/time, unsigned). */
export async function serverClockDelta(
  http: HttpClient,
  baseUrl: string,
  signal: AbortSignal,
): Promise<number> {
  const url = new URL(`${baseUrl}/auth/time`)
  let response: HttpResponse
  try {
    response = await http.send({ method: 'GET', url }, signal)
  } catch (error) {
    if (error instanceof TransportError) throw unreachable('OVH API', error)
    throw error
  }
  if (response.status !== 200) {
    throw new IpmoveError('unreachable', `OVH API: /auth/time answered HTTP ${response.status}, not a time`)
  }
  // Strictly digits: Number('') is 0, which would sign every request 56 years off.
  if (!/^\d{1,12}$/.test(response.text.trim())) {
    throw new IpmoveError(
      'unexpected',
      `OVH API: /auth/time answered ${describeAnswer(response.text)} instead of a time (HTTP 200)`,
      { httpStatus: 200 },
    )
  }
  return Number(response.text) - Math.round(Date.now() / 1000)
}

/** OVH's request signature: SHA-1 over secret, consumer key, method, full URL, body and timestamp. */
export function signedHeaders(
  c: Pick<
    Extract<OvhCredentials, { kind: 'application' }>,
    'applicationKey' | 'applicationSecret' | 'consumerKey'
  >,
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
export function apiError(
  method: Method,
  path: string,
  response: HttpResponse,
  body: OvhErrorBody,
): IpmoveError {
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
