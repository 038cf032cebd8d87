/**
 * `ipmove ovh credential`: ask OVH for a consumer key limited to the calls ipmove
 * makes for some IPs (POST /auth/credential, which needs only the application key),
 * store it with the application key and secret where ipmove reads credentials,
 * and hand back the URL where a person allows it. The key is never printed.
 */
import { closeSync, constants, openSync, rmSync, writeSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname } from 'node:path'
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
import { apiError, describeAnswer, errorBody } from './provider.js'

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
  return {
    endpoint: app.endpointName,
    state: answer.state,
    validationUrl: answer.validationUrl,
    rules,
    storedIn,
  }
}
