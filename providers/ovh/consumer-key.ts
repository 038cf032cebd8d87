/**
 * `ipmove ovh credential`: ask OVH for a consumer key limited to the calls ipmove
 * makes for some IPs (POST /auth/credential, which needs only the application key),
 * store it with the application key and secret where ipmove reads credentials,
 * and hand back the URL where a person allows it. The key is never printed.
 * With `wait`, it then polls the key's own state (GET /auth/currentCredential,
 * signed with it) until the person has allowed it.
 */
import { closeSync, constants, openSync, rmSync, writeSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { LimitedKey, LimitedKeyRequest } from '../../src/core/provider.js'
import { IpmoveError, usageError } from '../../src/errors.js'
import { registerSecret } from '../../src/output.js'
import { shown } from '../../src/validate.js'
import { HttpClient, type HttpResponse, TransportError, unreachable } from '../http.js'
import { consumerKeyRules } from './access-rules.js'
import {
  checkCredentialSet,
  type OvhApplication,
  ovhConfPaths,
  resolveOvhApplication,
} from './credentials.js'
import { apiError, describeAnswer, errorBody, serverClockDelta, signedHeaders } from './provider.js'

/** How often the key's state is asked while waiting for a person to allow it. */
const POLL_INTERVAL_MS = 2_000
/** What the API answers a signed call with a key not allowed yet (errorCode INVALID_CREDENTIAL). */
const NOT_VALID_YET = 'This credential is not valid'

/** auth.CredentialStateEnum of the OVH API. */
const CREDENTIAL_STATES = ['expired', 'pendingValidation', 'refused', 'validated']

/** auth.Credential, the answer of POST /auth/credential. */
interface CredentialAnswer {
  consumerKey: string
  state: string
  validationUrl: string
}

function isCredentialAnswer(value: unknown): value is CredentialAnswer {
  if (typeof value !== 'object' || value === null) return false
  const v = value as Record<string, unknown>
  return (
    typeof v.consumerKey === 'string' &&
    /^[\x21-\x7e]+$/.test(v.consumerKey) &&
    typeof v.state === 'string' &&
    CREDENTIAL_STATES.includes(v.state) &&
    typeof v.validationUrl === 'string' &&
    /^https?:\/\//.test(v.validationUrl)
  )
}

/**
 * Where the key goes, made ready before OVH is asked, so that a place it cannot
 * go fails first and no key is made for nothing: a new file is created empty
 * (mode 600, O_EXCL: never an existing file, never through a symlink) and kept
 * open; the keyring is read once.
 */
async function reserve(store: LimitedKeyRequest['store']): Promise<number | undefined> {
  if ('keyring' in store) {
    await store.keyring.get('ovh').catch((error: unknown) => {
      throw usageError(
        `${store.keyring.description} is unavailable (${(error as Error).message}); use --ovh-conf FILE instead`,
      )
    })
    return undefined
  }
  try {
    return openSync(
      store.file,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    )
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EEXIST')
      throw usageError(`${store.file} exists; give a new file (ipmove never overwrites one)`)
    if (code === 'ENOENT') throw usageError(`${dirname(store.file)} does not exist`)
    throw usageError(`cannot create ${store.file} (${code ?? (error as Error).message})`)
  }
}

/** Store the full set, in the reserved file or the keyring; the message says where, never what. */
async function storeKey(
  store: LimitedKeyRequest['store'],
  fd: number | undefined,
  app: OvhApplication,
  consumerKey: string,
  ips: string,
): Promise<string> {
  const set = {
    endpoint: app.endpointName,
    application_key: app.applicationKey,
    application_secret: app.applicationSecret,
    consumer_key: consumerKey,
  }
  try {
    if ('keyring' in store) {
      await store.keyring.set('ovh', checkCredentialSet(set))
      return store.keyring.description
    }
    const text = [
      `; OVH consumer key limited to what ipmove does for ${ips} (ipmove ovh credential)`,
      '[default]',
      `endpoint=${app.endpointName}`,
      `[${app.endpointName}]`,
      ...Object.entries(set)
        .filter(([key]) => key !== 'endpoint')
        .map(([key, value]) => `${key}=${value}`),
      '',
    ].join('\n')
    writeSync(fd!, text)
    return store.file
  } catch (error) {
    throw new IpmoveError(
      'local',
      `OVH made the consumer key but it could not be stored (${(error as Error).message}); it is unusable until allowed: run the command again`,
    )
  }
}

/** POST /auth/credential: unsigned, the API knows the application by its key alone here. */
async function askOvh(
  app: OvhApplication,
  rules: unknown[],
  request: LimitedKeyRequest,
): Promise<CredentialAnswer> {
  const path = '/auth/credential'
  const url = new URL(app.baseUrl + path)
  const body = JSON.stringify({
    accessRules: rules,
    ...(request.redirection === undefined ? {} : { redirection: request.redirection }),
  })
  const http = new HttpClient({ log: request.log })
  let response: HttpResponse
  try {
    request.log.debug(`ovh: POST ${url.pathname} (${rules.length} access rules)`)
    // Sent once: a retry would make a second key.
    response = await http.send(
      { method: 'POST', url, headers: { 'X-Ovh-Application': app.applicationKey }, body, once: true },
      request.signal,
    )
  } catch (error) {
    if (!(error instanceof TransportError)) throw error
    if (request.signal.aborted) {
      throw new IpmoveError('timeout', `timed out during POST ${path}: ${error.message}`)
    }
    throw unreachable('OVH API', error)
  } finally {
    http.close()
  }
  if (response.status >= 300) throw apiError('POST', path, response, errorBody(response.text))
  let answer: unknown
  try {
    answer = JSON.parse(response.text)
  } catch {
    answer = undefined
  }
  if (!isCredentialAnswer(answer)) {
    throw new IpmoveError(
      'unexpected',
      `OVH API POST ${path}: the API answered something unexpected (HTTP ${response.status}, ${describeAnswer(response.text)} instead of a credential)`,
      { httpStatus: response.status },
    )
  }
  registerSecret(answer.consumerKey)
  return answer
}

/**
 * The key's state, from GET /auth/currentCredential signed with it (api.Credential's
 * `status`). The API refuses a key not allowed yet with 403 INVALID_CREDENTIAL "This
 * credential is not valid", even on this call: that answer means pendingValidation.
 */
async function credentialState(
  http: HttpClient,
  app: OvhApplication,
  consumerKey: string,
  deltaSeconds: number,
  signal: AbortSignal,
): Promise<string> {
  const path = '/auth/currentCredential'
  const url = new URL(app.baseUrl + path)
  const headers = signedHeaders({ ...app, consumerKey }, 'GET', url, '', deltaSeconds)
  const response = await http.send({ method: 'GET', url, headers }, signal)
  const error = response.status >= 300 ? errorBody(response.text) : undefined
  if (error) {
    if (
      response.status === 403 &&
      error.errorCode === 'INVALID_CREDENTIAL' &&
      error.message === NOT_VALID_YET
    )
      return 'pendingValidation'
    throw apiError('GET', path, response, error)
  }
  let answer: unknown
  try {
    answer = JSON.parse(response.text)
  } catch {
    answer = undefined
  }
  const status = (answer as { status?: unknown } | null)?.status
  if (typeof status !== 'string' || !CREDENTIAL_STATES.includes(status)) {
    throw new IpmoveError(
      'unexpected',
      `OVH API GET ${path}: the API answered something unexpected (HTTP ${response.status}, ${describeAnswer(response.text)} instead of a credential)`,
      { httpStatus: response.status },
    )
  }
  return status
}

/**
 * Poll the new key's state until a person allows it on the validation page; a
 * refused or expired key, or the end of `request.signal`, ends the wait.
 */
async function awaitValidation(
  app: OvhApplication,
  consumerKey: string,
  validationUrl: string,
  request: LimitedKeyRequest,
): Promise<void> {
  const http = new HttpClient({ log: request.log })
  const { signal } = request
  try {
    const delta = await serverClockDelta(http, app.baseUrl, signal)
    for (;;) {
      const state = await credentialState(http, app, consumerKey, delta, signal)
      request.log.debug(`ovh: the new consumer key is ${state}`)
      if (state === 'validated') return
      if (state !== 'pendingValidation') {
        throw new IpmoveError(
          'auth',
          `OVH says the new consumer key is ${state}, so it will never work: run the command again for a new one`,
        )
      }
      await sleep(request.wait?.intervalMs ?? POLL_INTERVAL_MS, undefined, { signal })
    }
  } catch (error) {
    if (!signal.aborted) {
      if (error instanceof TransportError) throw unreachable('OVH API', error)
      throw error
    }
    throw new IpmoveError(
      'timeout',
      `the consumer key was not allowed in time; it is stored and works once allowed at ${validationUrl}`,
    )
  } finally {
    http.close()
  }
}

export async function requestConsumerKey(request: LimitedKeyRequest): Promise<LimitedKey> {
  const scope = { projectId: request.project, ips: request.ips, ipIds: request.ipIds }
  if (request.ips.length === 0 && request.ipIds.length === 0)
    throw usageError('give the IPs the key may move: --ip (or --ip-id)')
  const rules = consumerKeyRules(scope)
  if (request.redirection !== undefined && !/^https?:\/\/[^\s]+$/.test(request.redirection)) {
    throw usageError(`--redirection ${shown(request.redirection)} is not an http(s) URL`)
  }
  const app = await resolveOvhApplication({
    env: request.env,
    cwd: process.cwd(),
    home: homedir(),
    config: request.config,
    overrides: request.endpoint === undefined ? undefined : { endpoint: request.endpoint },
    log: request.log,
  })
  const fd = await reserve(request.store)
  let storedIn: string | undefined
  let answer: CredentialAnswer
  try {
    answer = await askOvh(app, rules, request)
    const ips = [...request.ips.map((ip) => ip.block), ...request.ipIds].join(', ')
    storedIn = await storeKey(request.store, fd, app, answer.consumerKey, ips)
  } finally {
    if (fd !== undefined) {
      closeSync(fd)
      // Nothing to keep: the empty file made for a key that never came goes.
      if (storedIn === undefined && 'file' in request.store) rmSync(request.store.file, { force: true })
    }
  }
  const read = ovhConfPaths(process.cwd(), homedir())
  if ('file' in request.store && !read.includes(storedIn)) {
    request.log.warn(`ipmove reads ${read.join(', ')}, not ${storedIn}: move it to one of them (mode 600)`)
  }
  const key = {
    endpoint: app.endpointName,
    state: answer.state,
    validationUrl: answer.validationUrl,
    rules,
    storedIn,
  }
  if (!request.wait) return key
  request.wait.made(key)
  await awaitValidation(app, answer.consumerKey, answer.validationUrl, request)
  return { ...key, state: 'validated' }
}
