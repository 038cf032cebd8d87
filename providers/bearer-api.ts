/**
 * What the token-authenticated JSON APIs (Hetzner Cloud, DigitalOcean, Scaleway)
 * share: one HttpClient, the token header, transport failures turned into ipmove's
 * error kinds, the API's own error answers mapped by the provider, and the
 * link-local metadata service that tells "this host". BearerApiProvider is the
 * base their providers extend: credential, endpoint and metadata URL from the
 * environment or the config section, and the request counters.
 */
import type { IdCache } from '../src/cache.js'
import type { ProviderContext } from '../src/core/provider.js'
import { IpmoveError, usageError } from '../src/errors.js'
import { type Logger, registerSecret } from '../src/output.js'
import {
  HttpClient,
  type HttpClientOptions,
  type HttpResponse,
  type Method,
  TransportError,
  unreachable,
} from './http.js'
import { apiBaseUrl } from './token-settings.js'

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

/** Where a token API's provider finds its credential, endpoint and metadata service, and how it names them. */
export interface TokenApiSpec
  extends Pick<BearerApiOptions, 'title' | 'tag' | 'toError' | 'rateLimitWaitMs'> {
  /** The environment variable and the config key holding the credential (the cloud's own CLI's name first). */
  token: { variable: string; setting: string }
  /** The one-line error when neither holds a credential. */
  missingToken: string
  /** The credential as the API wants it sent. */
  authHeaders(token: string): Record<string, string>
  /** The environment variable that overrides `endpoint=`, and the API's own base URL. */
  endpoint: { variable: string; default: string }
  /** The environment variable that points at another metadata service (an emulator's). */
  metadataVariable: string
  /** The metadata URL asked for "this host", from that variable's value (undefined when unset). */
  metadataUrl(fromEnv: string | undefined): string
}

/** The shared half of the Hetzner Cloud, DigitalOcean and Scaleway providers. */
export abstract class BearerApiProvider {
  readonly hasCloudApi = true
  protected readonly api: BearerApi
  protected readonly metadataUrl: URL
  protected readonly cache: IdCache

  protected constructor(context: ProviderContext, spec: TokenApiSpec) {
    const { env, settings } = context
    const token = env[spec.token.variable] || settings[spec.token.setting]
    if (!token) throw usageError(spec.missingToken)
    registerSecret(token)
    const where = env[spec.endpoint.variable] ? spec.endpoint.variable : 'endpoint='
    const base = apiBaseUrl(env[spec.endpoint.variable] || settings.endpoint || spec.endpoint.default, where)
    this.metadataUrl = urlFrom(
      spec.metadataUrl(env[spec.metadataVariable] || undefined),
      spec.metadataVariable,
    )
    this.cache = context.cache
    this.api = new BearerApi({
      title: spec.title,
      tag: spec.tag,
      toError: spec.toError,
      rateLimitWaitMs: spec.rateLimitWaitMs,
      baseUrl: base.href.replace(/\/+$/, ''),
      authHeaders: spec.authHeaders(token),
      log: context.log,
    })
  }

  get requests(): number {
    return this.api.requests
  }

  get roundTrips(): number {
    return this.api.roundTrips
  }

  close(): void {
    this.cache.save()
    this.api.close()
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
