/**
 * EC2 as ipmove calls it, shared by the three modes: the SDK client (built
 * from settings and the environment we were given), a retry strategy bounded
 * by the engine's signal, answers capped in size, the SDK's failures mapped to
 * error kinds, and this host's instance id from IMDSv2.
 *
 * With provider.ts and the modes, the only modules that load the AWS SDK.
 */
import { pipeline, Readable, Transform } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { EC2Client, type EC2ClientConfig } from '@aws-sdk/client-ec2'
import { IpmoveError, usageError } from '../../src/errors.js'
import { type Logger, registerSecret } from '../../src/output.js'
import { HttpClient, type HttpResponse, MAX_BODY_BYTES, TransportError } from '../http.js'
import { EnvProxyAgent } from '../proxy.js'
import { type AwsSettings, checkAwsSetting, INSTANCE_ID } from './settings.js'

const IMDS_IPV4 = 'http://169.254.169.254'
const IMDS_IPV6 = 'http://[fd00:ec2::254]'
/** Attempts per EC2 call, the first included; every wait stays inside the engine's signal. */
const MAX_ATTEMPTS = 5
/** Errors that mean the request never reached EC2, so a failed write did not happen. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'])
/** Client errors that say "not now" rather than "never": the engine waits and decides again. */
const BUSY_CODES = new Set(['IncorrectState', 'IncorrectInstanceState', 'Resource.AlreadyAssociated'])
const AUTH_CODES = new Set([
  'AuthFailure',
  'UnauthorizedOperation',
  'OptInRequired',
  'Blocked',
  'SignatureDoesNotMatch',
])
const INPUT_CODES = new Set([
  'InvalidParameterValue',
  'InvalidParameterCombination',
  'InvalidParameter',
  'MissingParameter',
])

type RetryStrategyV2 = Extract<
  NonNullable<EC2ClientConfig['retryStrategy']>,
  { acquireInitialRetryToken: unknown }
>
type RetryToken = Awaited<ReturnType<RetryStrategyV2['acquireInitialRetryToken']>>
type RetryErrorInfo = Parameters<RetryStrategyV2['refreshRetryTokenForRetry']>[1]

/** What an EC2 call threw, as far as we read it. */
interface SdkError extends Error {
  code?: string
  $metadata?: { httpStatusCode?: number; attempts?: number }
  /** Set on EC2's own error answers ('client' or 'server'), absent when the answer could not be read. */
  $fault?: string
  /** The raw answer, set by the SDK when it failed to deserialize one. */
  $response?: unknown
}

/**
 * A Describe call's list. EC2 always sends its `…Set` element, which the SDK
 * makes a list, empty or not: a missing one means the answer was not EC2's
 * (an HTML page the XML parser swallowed), not "nothing found".
 */
export function listOf<T>(action: string, value: T[] | undefined): T[] {
  if (Array.isArray(value)) return value
  throw new IpmoveError(
    'unexpected',
    `EC2 ${action}: the API answered something unexpected (no list where EC2 always sends one)`,
  )
}

/**
 * A write's answer must hold what EC2 always sends back for it: an HTML page the
 * XML parser swallowed has nothing, and taking it for an accepted write would
 * leave the run waiting for a move that never started.
 */
export function confirmed<T>(action: string, output: T, has: (output: T) => boolean, what: string): T {
  if (has(output)) return output
  throw new IpmoveError(
    'unexpected',
    `EC2 ${action}: the API answered something unexpected (no ${what} where EC2 always sends one); whether the write landed is unknown`,
  )
}

/** An answer cut short at MAX_BODY_BYTES: EC2's answers to our calls are a few KiB. */
class AnswerTooLarge extends Error {}

/** The answer's stream, failing once more than MAX_BODY_BYTES came (the SDK holds whole answers in memory). */
function capped(body: Readable): Readable {
  let size = 0
  const limit = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.length
      if (size > MAX_BODY_BYTES) done(new AnswerTooLarge('answer too large'))
      else done(null, chunk)
    },
  })
  return pipeline(body, limit, () => {})
}

interface CallOptions {
  /** A write: when it fails without an answer, it may still have landed. */
  write?: boolean
  dryRun?: boolean
}

/**
 * The SDK's standard strategy, tuned for a hook: throttling, 5xx and network
 * failures are retried with jittered exponential backoff, at most MAX_ATTEMPTS
 * in all. The backoff ends with the engine's signal (the SDK's middleware only
 * races its own sleep against it, leaving the timer to hold the process up).
 */
class HookRetryStrategy implements RetryStrategyV2 {
  readonly mode = 'standard'
  /** The engine's signal: one per run, bounding every call. */
  signal: AbortSignal | undefined
  /**
   * Writes in flight. The engine never reads while it writes, so a failure seen
   * meanwhile is a write's: it is not retried here, the engine re-reads first.
   */
  writing = 0

  constructor(private readonly log: Logger) {}

  async acquireInitialRetryToken(): Promise<RetryToken> {
    return retryToken(0)
  }

  async refreshRetryTokenForRetry(token: RetryToken, info: RetryErrorInfo): Promise<RetryToken> {
    const retryable = ['THROTTLING', 'TRANSIENT', 'SERVER_ERROR'].includes(info.errorType)
    const next = token.getRetryCount() + 1
    if (!retryable || next >= MAX_ATTEMPTS || this.writing > 0) throw info.error ?? new Error(info.errorType)
    const throttled = info.errorType === 'THROTTLING'
    const ceiling = Math.min(throttled ? 8_000 : 4_000, (throttled ? 500 : 250) * 2 ** (next - 1))
    let delay = ceiling / 2 + (Math.random() * ceiling) / 2
    if (info.retryAfterHint)
      delay = Math.max(delay, Math.min(info.retryAfterHint.getTime() - Date.now(), 8_000))
    this.log.debug(
      `aws: ${info.error?.name ?? info.errorType}; attempt ${next + 1} of ${MAX_ATTEMPTS} in ${Math.round(delay)} ms`,
    )
    await sleep(delay, undefined, { signal: this.signal }).catch(() => {})
    return retryToken(next)
  }

  recordSuccess(): void {}
}

function retryToken(count: number): RetryToken {
  return { getRetryCount: () => count, getRetryDelay: () => 0 }
}

/** The EC2 client of one provider, with its request counts. */
export class Ec2 {
  readonly client: EC2Client
  private readonly retry: HookRetryStrategy
  /** The metadata service, asked only when --instance is omitted. */
  private readonly imds: HttpClient
  attempts = 0
  rounds = 0
  private inFlight = 0

  private constructor(
    config: EC2ClientConfig,
    private readonly log: Logger,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    this.retry = config.retryStrategy as HookRetryStrategy
    this.client = new EC2Client(config)
    // Per attempt (the deserialize step runs inside the retry loop): requests and round trips.
    this.client.middlewareStack.add(
      (next) => async (args) => {
        this.attempts++
        if (this.inFlight++ === 0) this.rounds++
        try {
          return await next(args)
        } finally {
          this.inFlight--
        }
      },
      { step: 'deserialize', name: 'ipmoveRequestCounter', priority: 'low' },
    )
    this.client.middlewareStack.add(
      (next) => async (args) => {
        const out = await next(args)
        const response = out.response as { body?: unknown }
        if (response.body instanceof Readable) response.body = capped(response.body)
        return out
      },
      { step: 'deserialize', name: 'ipmoveAnswerCap', priority: 'low' },
    )
    this.imds = new HttpClient({
      log,
      requestTimeoutMs: 2_000,
      retries: 2,
      minBackoffMs: 100,
      maxBackoffMs: 400,
    })
  }

  /** Check the settings and environment (exit 2 before any call) and build the client. */
  static create(settings: AwsSettings, env: NodeJS.ProcessEnv, log: Logger): Ec2 {
    // The SDK warns on stderr about its future Node support: noise in a hook's log.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
    const endpoint = settings.endpoint ?? endpointFromEnv(env)
    const profile = settings.profile ?? (env.AWS_PROFILE || undefined)
    if (settings.profile === undefined && profile) checkAwsSetting('profile', profile, 'AWS_PROFILE')
    let region = settings.region
    if (!region) {
      const [name, value] = env.AWS_REGION
        ? ['AWS_REGION', env.AWS_REGION]
        : ['AWS_DEFAULT_REGION', env.AWS_DEFAULT_REGION]
      if (value) {
        checkAwsSetting('region', value, name)
        region = value
      }
    }
    // Static keys from the environment we were given (tests pass their own); otherwise the
    // SDK's default chain: a profile, SSO, a credential process, web identity, the instance role.
    const useEnvKeys = !profile && Boolean(env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY)
    const credentials = useEnvKeys
      ? {
          accessKeyId: env.AWS_ACCESS_KEY_ID!,
          secretAccessKey: env.AWS_SECRET_ACCESS_KEY!,
          sessionToken: env.AWS_SESSION_TOKEN || undefined,
        }
      : undefined
    registerSecret(credentials?.secretAccessKey)
    registerSecret(credentials?.sessionToken)
    const config: EC2ClientConfig = {
      region,
      profile,
      endpoint,
      credentials,
      retryStrategy: new HookRetryStrategy(log),
      maxAttempts: MAX_ATTEMPTS,
      requestHandler: {
        connectionTimeout: 3_000,
        requestTimeout: 10_000,
        // HTTPS_PROXY / NO_PROXY, as for every provider (the SDK itself ignores them).
        httpsAgent: new EnvProxyAgent({ keepAlive: true, maxSockets: 50 }),
      },
    }
    log.debug(
      `aws: ${settings.mode} mode, region ${region ?? '(from the profile or IMDS)'}, endpoint ${endpoint ?? '(default)'}, credentials ${useEnvKeys ? 'from AWS_ACCESS_KEY_ID' : profile ? `of profile ${profile}` : 'from the SDK default chain'}`,
    )
    return new Ec2(config, log, env)
  }

  close(): void {
    this.client.destroy()
    this.imds.close()
  }

  /** The region the client uses: settings, environment or profile; exit 2 when there is none. */
  async region(): Promise<string> {
    try {
      return await this.client.config.region()
    } catch {
      throw usageError('no AWS region: pass --region, set AWS_REGION, or give the profile a region')
    }
  }

  /** This host's instance id, from IMDSv2: a session token first, then the id. */
  async thisInstance(signal: AbortSignal): Promise<string> {
    if (/^true$/i.test(this.env.AWS_EC2_METADATA_DISABLED ?? '')) {
      throw usageError(
        '--instance was omitted and AWS_EC2_METADATA_DISABLED forbids asking the metadata service',
      )
    }
    const base =
      this.env.AWS_EC2_METADATA_SERVICE_ENDPOINT ||
      (/^ipv6$/i.test(this.env.AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE ?? '') ? IMDS_IPV6 : IMDS_IPV4)
    let origin: URL
    try {
      origin = new URL(base)
    } catch {
      throw usageError(`AWS_EC2_METADATA_SERVICE_ENDPOINT ${JSON.stringify(base)} is not a URL`)
    }
    const ask = async (method: 'PUT' | 'GET', path: string, headers: Record<string, string>) => {
      let response: HttpResponse
      try {
        response = await this.imds.send({ method, url: new URL(path, origin), headers }, signal)
      } catch (error) {
        if (error instanceof TransportError) {
          throw usageError(
            `--instance was omitted and the metadata service (${origin.host}) did not answer: ${error.message}`,
          )
        }
        throw error
      }
      if (response.status !== 200) {
        throw usageError(
          `--instance was omitted and the metadata service answered ${path} with HTTP ${response.status}`,
        )
      }
      return response.text.trim()
    }
    // A short-lived token: it is used once, right away.
    const token = await ask('PUT', '/latest/api/token', { 'X-aws-ec2-metadata-token-ttl-seconds': '60' })
    const id = await ask('GET', '/latest/meta-data/instance-id', { 'X-aws-ec2-metadata-token': token })
    if (!INSTANCE_ID.test(id)) {
      throw usageError(`the metadata service gave ${JSON.stringify(id.slice(0, 40))}, not an instance id`)
    }
    this.log.debug(`aws: this host is ${id} (IMDSv2)`)
    return id
  }

  /** Send one EC2 call, bounded by `signal`; failures come back as typed errors naming the action. */
  async call<Output>(
    action: string,
    send: (options: { abortSignal: AbortSignal }) => Promise<Output>,
    signal: AbortSignal,
    options: CallOptions = {},
  ): Promise<Output> {
    this.retry.signal = signal
    if (options.write) this.retry.writing++
    try {
      return await send({ abortSignal: signal })
    } catch (error) {
      throw this.apiError(action, error as SdkError, signal, options)
    } finally {
      if (options.write) this.retry.writing--
    }
  }

  /** A write, or with `dryRun` its permission check: EC2 answers DryRunOperation when it would be allowed. */
  async sendWrite(
    action: string,
    send: (options: { abortSignal: AbortSignal }) => Promise<unknown>,
    signal: AbortSignal,
    dryRun: boolean,
  ): Promise<void> {
    try {
      await this.call(action, send, signal, { write: !dryRun, dryRun })
    } catch (error) {
      if (dryRun && error instanceof IpmoveError && error.details?.awsCode === 'DryRunOperation') return
      throw error
    }
  }

  /** Map an SDK failure to ipmove's exit codes, naming the EC2 action (and the IAM action refused). */
  private apiError(action: string, error: SdkError, signal: AbortSignal, options: CallOptions): IpmoveError {
    if (error instanceof IpmoveError) return error
    const name = error.name
    const status = error.$metadata?.httpStatusCode
    const attempts = error.$metadata?.attempts
    const dry = options.dryRun ? 'dry run: ' : ''
    const [message, encoded] = splitEncoded(error.message)
    const details: Record<string, unknown> = { awsCode: name, httpStatus: status, action: `ec2:${action}` }
    if (encoded) details.encodedAuthorizationMessage = encoded
    if (signal.aborted) {
      return new IpmoveError('timeout', `timed out waiting for EC2 ${action}`, {
        ...details,
        ambiguous: options.write,
      })
    }
    if (error instanceof AnswerTooLarge) {
      return new IpmoveError(
        'unexpected',
        `EC2 ${action}: the API answered more than ${MAX_BODY_BYTES / 1024 / 1024} MiB; gave up reading it`,
        details,
      )
    }
    if (error.$response !== undefined && error.$fault === undefined) {
      // The SDK could not read the answer (not EC2's XML: a proxy's HTML page, a cut body…).
      return new IpmoveError(
        'unexpected',
        `EC2 ${action}: the API answered something unexpected (HTTP ${status ?? '?'}): ${message.split('\n')[0]}`,
        details,
      )
    }
    if (name === 'CredentialsProviderError') {
      return new IpmoveError('auth', `no usable AWS credentials: ${message}`, details)
    }
    if (AUTH_CODES.has(name) || name.endsWith('.UnauthorizedOperation')) {
      const what =
        name === 'AuthFailure' || name === 'SignatureDoesNotMatch'
          ? 'EC2 refused the credentials for'
          : 'IAM does not allow'
      return new IpmoveError('auth', `${dry}${what} ec2:${action} (${name}): ${message}`, details)
    }
    if (name.endsWith('.NotFound'))
      return new IpmoveError('not-found', `EC2 ${action}: ${name}: ${message}`, details)
    if (BUSY_CODES.has(name)) return new IpmoveError('busy', `EC2 ${action}: ${name}: ${message}`, details)
    if (INPUT_CODES.has(name) || name.endsWith('.Malformed')) {
      return new IpmoveError(
        'usage',
        `${dry}EC2 ${action} refused the request (${name}): ${message}`,
        details,
      )
    }
    const throttled = /Throttl|LimitExceeded|SlowDown/.test(name) || status === 429
    const network =
      NOT_SENT.has(error.code ?? '') ||
      ['ECONNRESET', 'ETIMEDOUT', 'EPIPE'].includes(error.code ?? '') ||
      name === 'TimeoutError'
    if (throttled || network || (status !== undefined && status >= 500)) {
      // Throttled or never sent: nothing was written. Otherwise a write may have landed.
      const ambiguous = Boolean(options.write) && !throttled && !NOT_SENT.has(error.code ?? '')
      const after = attempts ? ` after ${attempts} attempts` : ''
      return new IpmoveError(
        ambiguous ? 'ambiguous-write' : 'unreachable',
        `EC2 ${action} failed${after}: ${status ? `HTTP ${status} ` : ''}${error.code ?? name}${message && message !== name ? `: ${message}` : ''}`,
        { ...details, ambiguous },
      )
    }
    if (/Region is missing/i.test(message)) {
      return usageError('no AWS region: pass --region, set AWS_REGION, or give the profile a region')
    }
    return new IpmoveError('provider-failed', `EC2 ${action}: ${name}: ${message}`, details)
  }
}

/** The SDK's own endpoint variables, read from the environment we were given. */
function endpointFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  if (/^true$/i.test(env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS ?? '')) return undefined
  for (const name of ['AWS_ENDPOINT_URL_EC2', 'AWS_ENDPOINT_URL']) {
    const value = env[name]
    if (value) {
      checkAwsSetting('endpoint', value, name)
      return value
    }
  }
  return undefined
}

/** IAM's refusals end with a long encoded blob (for `aws sts decode-authorization-message`): keep it out of the one-line error. */
function splitEncoded(message: string): [string, string | undefined] {
  const at = message.indexOf(' Encoded authorization failure message:')
  if (at < 0) return [message, undefined]
  return [
    message.slice(0, at).trim(),
    message.slice(at).replace(/^ Encoded authorization failure message:\s*/, ''),
  ]
}
