/**
 * What the token-authenticated JSON APIs (Hetzner Cloud, DigitalOcean, Scaleway)
 * share: one HttpClient, the token header, transport failures turned into ipmove's
 * error kinds, the API's own error answers mapped by the provider, and the
 * link-local metadata service that tells "this host".
 */
import { IpmoveError, usageError } from '../src/errors.js'
import type { Logger } from '../src/output.js'
import {
  HttpClient,
  type HttpClientOptions,
  type HttpResponse,
  type Method,
  TransportError,
  unreachable,
} from './http.js'

export interface BearerApiOptions {
  /** How messages name the API, e.g. "Hetzner Cloud API". */
  title: string
  /** Debug lines start with it, e.g. "hetzner". */
  tag: string
  baseUrl: string
  /** The credential, as the API wants it: `{ Authorization: 'Bearer …' }`, `{ 'X-Auth-Token': … }`. */
  authHeaders: Record<string, string>
  log: Logger
  /** The API's error answer as an IpmoveError of the right kind. */
  toError(method: Method, path: string, response: HttpResponse): IpmoveError
  rateLimitWaitMs?: HttpClientOptions['rateLimitWaitMs']
}

export class BearerApi {
  private readonly http: HttpClient

  constructor(private readonly options: BearerApiOptions) {
    this.http = new HttpClient({ log: options.log, rateLimitWaitMs: options.rateLimitWaitMs })
  }

  get requests(): number {
    return this.http.attempts
  }

  get roundTrips(): number {
    return this.http.rounds
  }

  close(): void {
    this.http.close()
  }

  /** A JSON call; error answers become the provider's IpmoveErrors. */
  async call<T>(method: Method, path: string, signal: AbortSignal, body?: object): Promise<T> {
    const { baseUrl, authHeaders, log, tag, title } = this.options
    const url = new URL(baseUrl + path)
    log.debug(`${tag}: ${method} ${url.pathname}${url.search}`)
    let response: HttpResponse
    try {
      response = await this.http.send(
        {
          method,
          url,
          headers: authHeaders,
          body: body === undefined ? undefined : JSON.stringify(body),
        },
        signal,
      )
    } catch (error) {
      if (!(error instanceof TransportError)) throw error
      if (signal.aborted) {
        throw new IpmoveError('timeout', `timed out during ${method} ${url.pathname}: ${error.message}`)
      }
      throw unreachable(title, error)
    }
    const remaining = response.headers['ratelimit-remaining']
    if (remaining !== undefined && Number(remaining) < 10) {
      log.debug(`${tag}: ${remaining} of ${response.headers['ratelimit-limit']} requests left`)
    }
    if (response.status >= 300) throw this.options.toError(method, url.pathname, response)
    return parseJson<T>(response.text) as T
  }

  /** The metadata service's answer to a GET (no token), for "this host" when --instance is omitted. */
  async metadata(url: URL, signal: AbortSignal): Promise<HttpResponse> {
    try {
      return await this.http.send({ method: 'GET', url }, signal)
    } catch (error) {
      if (error instanceof TransportError) {
        throw usageError(
          `--instance was omitted and this host's metadata service (${url.host}) did not answer: ${error.message}`,
        )
      }
      throw error
    }
  }
}

export function parseJson<T>(text: string): T | undefined {
  try {
    return JSON.parse(text) as T
  } catch {
    return undefined
  }
}

/** A URL from the environment, or a one-line usage error naming the variable. */
export function urlFrom(value: string, variable: string): URL {
  try {
    return new URL(value)
  } catch {
    throw usageError(`${variable} is not a URL`)
  }
}
