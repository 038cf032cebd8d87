/**
 * What the JSON REST emulators (Hetzner Cloud, Hetzner Robot, DigitalOcean,
 * Scaleway) share on top of EmulatorServer: one request pipeline (record, body,
 * the metadata service, faults, rate limit, authentication,
 * routing), a route table, and an hourly request budget that refills gradually.
 * Each API keeps its own paths, authentication, error envelope and headers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { usageError } from '../src/errors.js'
import { shown } from '../src/validate.js'
import { DroppedByReset, EmulatorServer, type RecordedRequestBase, type RunningEmulator } from './server.js'

/** An answer other than success, in the API's own format; thrown by handlers. */
export class RestError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(`HTTP ${status}`)
  }
}

export interface RestRequest {
  method: string
  /** Path parameters named in the route pattern (`{id}`), URL-decoded. */
  params: Record<string, string>
  query: URLSearchParams
  /** The body as parsed by the API's `parseBody` (JSON object, form fields…). */
  body: Record<string, unknown>
  headers: IncomingMessage['headers']
}

/** A handler's success: a status (default 200) and a JSON body (none for 204). */
export interface RestAnswer {
  status?: number
  body?: unknown
  headers?: Record<string, string>
}

export interface RestRoute {
  method: string
  /** Path below the API prefix, e.g. `floating_ips/{id}/actions/assign`. */
  path: string
  /** A promise for answers that take time (a synchronous API's slow write). */
  handle(request: RestRequest): RestAnswer | Promise<RestAnswer>
}

export interface RestRecordedRequest extends RecordedRequestBase {
  /** The request target exactly as sent: raw path and query. */
  path: string
  body: string
  responseBody: string
  /** The Authorization (or API key) header as sent, for tests of what the client sends. */
  authorization?: string
}

/** A REST emulator once it listens on loopback; `env` points a client (ipmove) at it. */
export type RunningRestEmulator<State> = RunningEmulator<State, RestRecordedRequest>

/**
 * A budget of `limit` requests per `windowSeconds` that refills one request at a
 * time (Hetzner Cloud documents this: "the number of remaining requests increases
 * gradually"). Bursts up to the whole budget are allowed.
 */
export class RequestBudget {
  private remainingExact: number
  private updatedAt: number

  constructor(
    readonly limit: number,
    readonly windowSeconds: number,
    private readonly now: () => number = Date.now,
  ) {
    this.remainingExact = limit
    this.updatedAt = now()
  }

  private refill(): void {
    const now = this.now()
    const perMs = this.limit / (this.windowSeconds * 1000)
    this.remainingExact = Math.min(this.limit, this.remainingExact + (now - this.updatedAt) * perMs)
    this.updatedAt = now
  }

  /** Spend one request; false when the budget is empty (the request is refused, not counted). */
  take(): boolean {
    this.refill()
    if (this.remainingExact < 1) return false
    this.remainingExact -= 1
    return true
  }

  get remaining(): number {
    this.refill()
    return Math.floor(this.remainingExact)
  }

  /** Seconds until one more request is allowed (0 when one is). */
  secondsUntilNext(): number {
    this.refill()
    if (this.remainingExact >= 1) return 0
    return Math.ceil(((1 - this.remainingExact) * this.windowSeconds) / this.limit)
  }

  /** UNIX time (s) at which the whole budget is back. */
  resetAt(): number {
    this.refill()
    const missing = this.limit - this.remainingExact
    return Math.ceil((this.now() + (missing * this.windowSeconds * 1000) / this.limit) / 1000)
  }
}

export abstract class RestEmulator<
  State extends object,
  Recorded extends RestRecordedRequest,
> extends EmulatorServer<State, Recorded> {
  /** The API's path prefix segments (`['v1']`), absent for APIs without one. */
  protected abstract readonly prefix: readonly string[]
  protected abstract readonly routes: readonly RestRoute[]

  /** The error answer for `status`, in the API's envelope (faults, unknown paths, bad bodies). */
  protected abstract errorAnswer(status: number, reason: 'fault' | 'not_found' | 'bad_body'): RestError

  /** Refuse a request the API would not authenticate: throw a RestError (401 and so on). */
  protected abstract authenticate(request: IncomingMessage): void

  /** Count this request: the rate-limit headers to add to its answer, and a RestError when over the limit. */
  protected abstract rateLimit(request: IncomingMessage): {
    headers: Record<string, string>
    refused?: RestError
  }

  /** The instance metadata service: a text answer for a path under it, else undefined. */
  protected abstract metadata(segments: readonly string[]): RestAnswer | undefined

  /** Parse a write's body (default: a JSON object); throw a RestError when it is not one. */
  protected parseBody(text: string, _request: IncomingMessage): Record<string, unknown> {
    if (text.trim() === '') return {}
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      throw this.errorAnswer(400, 'bad_body')
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value))
      throw this.errorAnswer(400, 'bad_body')
    return value as Record<string, unknown>
  }

  /** The state's key holding credentials: /_emulator/state shows everything else. */
  protected abstract readonly credentialsKey: keyof State

  /** Name prefix of the temporary directory env.sh goes to when no `dir` is given. */
  protected abstract readonly dirPrefix: string

  /** The environment that points a client at the emulator listening on `origin`. */
  protected abstract clientEnv(origin: string): Record<string, string>

  /** The API's URL as tests and env.sh name it (the origin, or below the API's prefix). */
  protected apiUrl(origin: string): string {
    return origin
  }

  /** Listen on plain HTTP and write env.sh. */
  start(): Promise<RunningEmulator<State, Recorded>> {
    return this.listen({
      tls: false,
      dirPrefix: this.dirPrefix,
      url: (origin) => this.apiUrl(origin),
      env: (origin) => this.clientEnv(origin),
    })
  }

  protected stateView(): unknown {
    const { [this.credentialsKey]: _credentials, ...rest } = this.state
    return rest
  }

  /**
   * Resolves after `ms`; rejects with DroppedByReset at a reset (the request's connection is then
   * dropped); never settles if the emulator closes first (its sockets are destroyed then).
   */
  protected delay(ms: number): Promise<void> {
    return new Promise((resolve, reject) => this.schedule(ms, resolve, () => reject(new DroppedByReset())))
  }

  /** Headers every answer carries (e.g. a request id). */
  protected commonHeaders(): Record<string, string> {
    return {}
  }

  protected internalError(res: ServerResponse, error: Error): void {
    const answer = this.errorAnswer(500, 'fault')
    res.writeHead(500, { 'Content-Type': 'application/json', ...this.commonHeaders() })
    res.end(JSON.stringify({ ...(answer.body as object), emulator: error.message }))
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase()
    const rawTarget = req.url ?? '/'
    const record = {
      method,
      path: rawTarget,
      status: 0,
      body: '',
      responseBody: '',
      ...(req.headers.authorization === undefined ? {} : { authorization: req.headers.authorization }),
    } as Recorded
    const send = (status: number, body: unknown, headers: Record<string, string> = {}, text = false) => {
      const payload = body === undefined ? '' : text ? String(body) : JSON.stringify(body)
      record.status = status
      record.responseBody = payload
      this.log?.debug(
        `emulator: ${method} ${rawTarget} -> ${status}${record.fault ? ` (fault ${record.fault})` : ''}`,
      )
      if (res.headersSent || res.destroyed) return
      res.writeHead(status, {
        ...(body === undefined ? {} : { 'Content-Type': text ? 'text/plain' : 'application/json' }),
        ...this.commonHeaders(),
        ...headers,
      })
      res.end(payload)
    }

    const bodyBuffer = await this.readBody(req)
    record.body = bodyBuffer?.toString('utf8') ?? ''
    this.record(record)
    if (bodyBuffer === undefined) {
      const tooLarge = this.errorAnswer(413, 'bad_body')
      send(413, tooLarge.body)
      req.socket.destroy()
      return
    }

    const queryAt = rawTarget.indexOf('?')
    const query = new URLSearchParams(queryAt < 0 ? '' : rawTarget.slice(queryAt + 1))
    let segments: string[]
    try {
      segments = (queryAt < 0 ? rawTarget : rawTarget.slice(0, queryAt))
        .split('/')
        .slice(1)
        .map(decodeURIComponent)
    } catch {
      const notFound = this.errorAnswer(404, 'not_found')
      send(notFound.status, notFound.body)
      return
    }
    if (segments.at(-1) === '') segments.pop()

    const underPrefix = this.prefix.every((p, i) => segments[i] === p)
    const apiSegments = underPrefix ? segments.slice(this.prefix.length) : segments
    const { answered } = await this.injectFault(method, apiSegments, record, res, (status, headers) => {
      const answer = this.errorAnswer(status, 'fault')
      send(status, answer.body, { ...answer.headers, ...headers })
    })
    if (answered) {
      if (record.status === 0)
        this.log?.debug(`emulator: ${method} ${rawTarget} -> no answer (fault ${record.fault})`)
      return
    }

    // The metadata service is another host in reality: no token, no API rate limit.
    if (method === 'GET' && !underPrefix) {
      const answer = this.metadata(segments)
      if (answer) {
        send(answer.status ?? 200, answer.body, answer.headers, typeof answer.body === 'string')
        return
      }
    }

    const limit = this.rateLimit(req)
    try {
      if (limit.refused) throw limit.refused
      if (!underPrefix) throw this.errorAnswer(404, 'not_found')
      this.authenticate(req)
      const answer = await this.dispatch(method, apiSegments, query, record.body, req)
      send(answer.status ?? 200, answer.body, { ...limit.headers, ...answer.headers })
    } catch (error) {
      if (!(error instanceof RestError)) throw error
      send(error.status, error.body, { ...limit.headers, ...error.headers })
    }
  }

  private dispatch(
    method: string,
    segments: readonly string[],
    query: URLSearchParams,
    bodyText: string,
    req: IncomingMessage,
  ): RestAnswer | Promise<RestAnswer> {
    for (const route of this.routes) {
      if (route.method !== method) continue
      const params = matchPath(route.path, segments)
      if (!params) continue
      const body = method === 'GET' || method === 'DELETE' ? {} : this.parseBody(bodyText, req)
      return route.handle({ method, params, query, body, headers: req.headers })
    }
    throw this.errorAnswer(404, 'not_found')
  }
}

/** Match `a/{x}/b` against path segments; the named parts, or undefined. */
function matchPath(pattern: string, segments: readonly string[]): Record<string, string> | undefined {
  const parts = pattern.split('/')
  if (parts.length !== segments.length) return undefined
  const params: Record<string, string> = {}
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!
    const segment = segments[i]!
    if (part.startsWith('{')) {
      if (segment === '') return undefined
      params[part.slice(1, -1)] = segment
    } else if (part !== segment) return undefined
  }
  return params
}

/** The bearer token of a request, or undefined when there is no `Authorization: Bearer …`. */
export function bearerToken(request: IncomingMessage): string | undefined {
  const header = request.headers.authorization
  const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header)
  return match?.[1]
}

/** The fixture entry whose token a request carries as `Authorization: Bearer …`; else `unauthorized()`. */
export function bearerHolder<T extends { token: string }>(
  request: IncomingMessage,
  entries: readonly T[],
  unauthorized: () => RestError,
): T {
  const token = bearerToken(request)
  const found = token === undefined ? undefined : entries.find((entry) => entry.token === token)
  if (!found) throw unauthorized()
  return found
}

/** One page of a list. */
export interface Page<T> {
  items: T[]
  page: number
  perPage: number
  /** At least 1, also for an empty list. */
  lastPage: number
}

/**
 * The page of `items` a list request asks for with `page` and `per_page`:
 * `defaultPerPage` when absent, at most `maxPerPage`, and the API's own error
 * (`invalid(name)`) when either is not a positive integer.
 */
export function pageOf<T>(
  items: readonly T[],
  query: URLSearchParams,
  defaultPerPage: number,
  maxPerPage: number,
  invalid: (name: string) => RestError,
): Page<T> {
  const number = (name: string, fallback: number, max: number) => {
    const text = query.get(name)
    if (text === null) return fallback
    if (!/^\d{1,6}$/.test(text) || Number(text) < 1) throw invalid(name)
    return Math.min(Number(text), max)
  }
  const perPage = number('per_page', defaultPerPage, maxPerPage)
  const page = number('page', 1, 1_000_000)
  return {
    items: items.slice((page - 1) * perPage, page * perPage),
    page,
    perPage,
    lastPage: Math.max(1, Math.ceil(items.length / perPage)),
  }
}

/** A whole number from a JSON body field (numbers only, as the APIs' schemas say). */
export function integerField(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isSafeInteger(value) ? value : undefined
}

/** ISO time without milliseconds, as these APIs print it. */
export function isoSeconds(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', '+00:00')
}

/**
 * DigitalOcean's model: each request counts for one whole window after it is
 * made ("each request has its own timer"), and a shorter burst window caps
 * requests per minute. Both limits refuse with 429.
 */
export class SlidingWindowLimit {
  private readonly times: number[] = []

  constructor(
    readonly limit: number,
    readonly windowSeconds: number,
    readonly burstLimit: number,
    readonly burstSeconds: number,
    private readonly now: () => number = Date.now,
  ) {}

  private expire(): number {
    const now = this.now()
    while (this.times.length > 0 && this.times[0]! <= now - this.windowSeconds * 1000) this.times.shift()
    return now
  }

  /** Spend one request: 'ok', 'hourly' (the window is full) or 'burst' (too many this minute). */
  take(): 'ok' | 'hourly' | 'burst' {
    const now = this.expire()
    if (this.times.length >= this.limit) return 'hourly'
    const recent = this.times.filter((t) => t > now - this.burstSeconds * 1000)
    if (recent.length >= this.burstLimit) return 'burst'
    this.times.push(now)
    return 'ok'
  }

  get remaining(): number {
    this.expire()
    return this.limit - this.times.length
  }

  /** UNIX time (s) at which the oldest counted request expires (now when none is counted). */
  resetAt(): number {
    const now = this.expire()
    const oldest = this.times[0]
    return Math.ceil((oldest === undefined ? now : oldest + this.windowSeconds * 1000) / 1000)
  }

  /** Seconds until the burst window lets one more request through. */
  burstRetryAfter(): number {
    const now = this.expire()
    const recent = this.times.filter((t) => t > now - this.burstSeconds * 1000)
    const oldest = recent[0]
    return oldest === undefined ? 0 : Math.max(1, Math.ceil((oldest + this.burstSeconds * 1000 - now) / 1000))
  }
}

/**
 * The resource `--this-host` names, by id first, then by a name only one
 * resource has: its id. A usage error when it names none or several.
 */
export function resolveThisHost<Id>(
  items: ReadonlyArray<{ id: Id; name: string }>,
  thisHost: string | undefined,
  noun: string,
): Id | undefined {
  if (thisHost === undefined) return undefined
  const byId = items.find((item) => String(item.id) === thisHost)
  if (byId) return byId.id
  const byName = items.filter((item) => item.name === thisHost)
  if (byName.length > 1)
    throw usageError(`--this-host ${shown(thisHost)} names several ${noun}s; give the ${noun} id`)
  if (byName.length === 0) throw usageError(`--this-host ${shown(thisHost)} is no ${noun} of the fixture`)
  return byName[0]!.id
}
