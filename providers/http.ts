import http, { type IncomingHttpHeaders } from 'node:http'
import https from 'node:https'
import { setTimeout as sleep } from 'node:timers/promises'
import pRetry from 'p-retry'
import { IpmoveError } from '../src/errors.js'
import type { Logger } from '../src/output.js'
import { EnvProxyAgent } from './proxy.js'

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

export interface HttpRequest {
  method: Method
  url: URL
  headers?: Record<string, string>
  body?: string
  /**
   * Send one attempt only, even on 429/503: for writes to the API, whose second
   * try the engine decides after a re-read (at most two per run).
   */
  once?: boolean
  /** A POST that changes nothing (an OAuth2 token request): its failures are retried like a read's. */
  idempotent?: boolean
}

/** Whether a request may change something, so that a failure leaves it unknown whether it did. */
const writes = (request: HttpRequest) => request.method !== 'GET' && !request.idempotent

export interface HttpResponse {
  status: number
  headers: IncomingHttpHeaders
  text: string
}

/**
 * A request that failed without an HTTP answer we can act on. `ambiguous`
 * means a write may or may not have reached the server (reset, timeout, 5xx on
 * a POST): the caller must re-read state before writing again.
 */
export class TransportError extends Error {
  constructor(
    message: string,
    readonly ambiguous: boolean,
    readonly response?: HttpResponse,
  ) {
    super(message)
  }
}

/** No answer ipmove needs comes near this; a bigger one is a fault, not data to hold in memory. */
export const MAX_BODY_BYTES = 4 * 1024 * 1024

export interface HttpClientOptions {
  /** One attempt's limit; the caller's signal bounds the whole call. */
  requestTimeoutMs?: number
  /** Answers larger than this are abandoned (exit 9). */
  maxBodyBytes?: number
  /** Retries after the first attempt, for transient failures only. */
  retries?: number
  minBackoffMs?: number
  maxBackoffMs?: number
  /**
   * How long to wait before retrying a 429 or 503 that carries no Retry-After,
   * from the API's own headers (e.g. Hetzner's RateLimit-Reset); undefined: back off as usual.
   */
  rateLimitWaitMs?: (headers: IncomingHttpHeaders) => number | undefined
  log: Logger
}

/** Errors where the request certainly never reached the server. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'])
/** Answers that mean "not processed, try later", for any method. */
const RETRY_ANY = new Set([429, 503])
/** Answers worth retrying for reads; for writes they are ambiguous. */
const RETRY_READS = new Set([500, 502, 504])

function retryAfterMs(headers: IncomingHttpHeaders): number | undefined {
  const value = headers['retry-after']
  if (!value) return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000)
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now())
}

function retryAfterOf(error: unknown): number | undefined {
  return error instanceof RetryableError ? error.retryAfterMs : undefined
}

class RetryableError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message)
  }
}

/**
 * JSON-over-HTTPS with keep-alive (one TLS handshake per run, not per poll),
 * a per-attempt timeout and jittered exponential retries of transient
 * failures, all bounded by the caller's AbortSignal (the command's --timeout).
 */
export class HttpClient {
  private readonly agents = {
    'https:': new EnvProxyAgent({ keepAlive: true, maxSockets: 8 }),
    'http:': new http.Agent({ keepAlive: true, maxSockets: 8 }),
  }
  /** Every attempt, retries included. */
  attempts = 0
  /**
   * Sequential round trips: attempts that started while none was in flight.
   * Requests sent side by side cost one round trip of latency, not several.
   */
  rounds = 0
  private inFlight = 0
  private readonly options: Required<Omit<HttpClientOptions, 'log' | 'rateLimitWaitMs'>> &
    Pick<HttpClientOptions, 'log' | 'rateLimitWaitMs'>

  constructor(options: HttpClientOptions) {
    this.options = {
      requestTimeoutMs: 10_000,
      maxBodyBytes: MAX_BODY_BYTES,
      retries: 4,
      minBackoffMs: 250,
      maxBackoffMs: 4_000,
      ...options,
    }
  }

  close(): void {
    this.agents['https:'].destroy()
    this.agents['http:'].destroy()
  }

  /**
   * Send with retries. Resolves with any HTTP answer that is not transient
   * (including 4xx: the caller maps them); rejects with TransportError or, when
   * the caller's signal fires, with an IpmoveError saying the time ran out.
   */
  async send(request: HttpRequest, signal: AbortSignal): Promise<HttpResponse> {
    const write = writes(request)
    let last: Error | undefined
    try {
      return await pRetry(
        async () => {
          try {
            const response = await this.once(request, signal)
            if (RETRY_ANY.has(response.status) || (!write && RETRY_READS.has(response.status))) {
              throw new RetryableError(
                `HTTP ${response.status}`,
                retryAfterMs(response.headers) ??
                  (RETRY_ANY.has(response.status)
                    ? this.options.rateLimitWaitMs?.(response.headers)
                    : undefined),
              )
            }
            if (write && RETRY_READS.has(response.status)) {
              throw new TransportError(`HTTP ${response.status}`, true, response)
            }
            return response
          } catch (error) {
            last = error as Error
            throw error
          }
        },
        {
          retries: request.once ? 0 : this.options.retries,
          minTimeout: this.options.minBackoffMs,
          maxTimeout: this.options.maxBackoffMs,
          randomize: true,
          signal,
          shouldRetry: (error) => error instanceof RetryableError && !signal.aborted,
          onFailedAttempt: async (error) => {
            this.options.log.debug(
              `${request.method} ${request.url.pathname}: ${error.message}; attempt ${error.attemptNumber}, ${error.retriesLeft} retries left`,
            )
            const wait = retryAfterOf(error)
            if (wait && error.retriesLeft > 0) await sleep(wait, undefined, { signal }).catch(() => {})
          },
        },
      )
    } catch (error) {
      if (error instanceof TransportError || error instanceof IpmoveError) throw error
      // Retryable failures are reads, or writes the server refused to process:
      // either way nothing was written, so the failure is not ambiguous.
      const reason = last?.message ?? (error as Error).message
      throw new TransportError(signal.aborted ? `${reason}; gave up when the time ran out` : reason, false)
    }
  }

  /** One attempt. Network failures of reads, and refusals of writes, are retryable. */
  private once(request: HttpRequest, signal: AbortSignal): Promise<HttpResponse> {
    this.attempts++
    if (this.inFlight++ === 0) this.rounds++
    const write = writes(request)
    const module = request.url.protocol === 'https:' ? https : http
    const agent = this.agents[request.url.protocol as 'https:' | 'http:']
    // Timers held here, not AbortSignal.timeout() inside AbortSignal.any(): on Node 20 a
    // collection can drop that timeout signal, and a hung read then eats all of --timeout.
    const attempt = new AbortController()
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      attempt.abort()
    }, this.options.requestTimeoutMs)
    const onAbort = () => attempt.abort()
    signal.addEventListener('abort', onAbort, { once: true })
    if (signal.aborted) attempt.abort()
    return new Promise<HttpResponse>((resolve, reject) => {
      const headers: Record<string, string> = { Accept: 'application/json', ...request.headers }
      if (request.body !== undefined) {
        headers['Content-Type'] ??= 'application/json'
        headers['Content-Length'] = String(Buffer.byteLength(request.body))
      }
      const req = module.request(request.url, {
        method: request.method,
        headers,
        agent,
        signal: attempt.signal,
      })
      req.on('response', (res) => {
        const chunks: Buffer[] = []
        let size = 0
        const tooLarge = () => {
          req.destroy()
          const limit = `${this.options.maxBodyBytes / 1024 / 1024} MiB`
          reject(
            new IpmoveError(
              'unexpected',
              `${request.method} ${request.url.host}${request.url.pathname}: the API answered more than ${limit}; gave up reading it`,
              { httpStatus: res.statusCode },
            ),
          )
        }
        if (Number(res.headers['content-length']) > this.options.maxBodyBytes) return tooLarge()
        res.on('data', (chunk: Buffer) => {
          size += chunk.length
          if (size > this.options.maxBodyBytes) tooLarge()
          else chunks.push(chunk)
        })
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        )
        res.on('error', (error) => fail(error))
      })
      req.on('error', (error) => fail(error))
      const fail = (error: NodeJS.ErrnoException) => {
        const what =
          timedOut && !signal.aborted
            ? `no answer within ${this.options.requestTimeoutMs / 1000} s`
            : signal.aborted
              ? 'the time ran out'
              : (error.code ?? error.message)
        const message = `${request.method} ${request.url.host}${request.url.pathname}: ${what}`
        if (signal.aborted) reject(new TransportError(message, write))
        else if (!write || NOT_SENT.has(error.code ?? '')) reject(new RetryableError(message))
        else reject(new TransportError(message, true))
      }
      if (request.body !== undefined) req.write(request.body)
      req.end()
    }).finally(() => {
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
      this.inFlight--
    })
  }
}

/** The error for an API that could not be reached; an ambiguous write may have landed all the same. */
export function unreachable(api: string, error: TransportError): IpmoveError {
  const kind = error.ambiguous ? 'ambiguous-write' : 'unreachable'
  return new IpmoveError(kind, `${api} unreachable: ${error.message}`, {
    ambiguous: error.ambiguous,
  })
}
