/**
 * An HTTPS emulator of the part of the OVHcloud API that ipmove uses, for our
 * end-to-end tests, the README demo and users' CI (`ipmove emulate ovh`).
 *
 * Where the behaviour comes from:
 * - routes, models and enums: the API's own schemas (eu.api.ovh.com/1.0/cloud.json
 *   and ip.json: cloud.ip.FailoverIp, ip.Ip, ip.IpTask, ip.Destinations);
 * - request signing, the /auth/time delta and the auth error codes (INVALID_KEY,
 *   INVALID_CREDENTIAL, INVALID_SIGNATURE, NOT_GRANTED_CALL): python-ovh and go-ovh,
 *   which sign `$1$` + sha1(AS+CK+METHOD+URL+BODY+TS) and map these codes to exceptions;
 * - a timestamp off the API's clock is refused with HTTP 400 "Query out of time" before
 *   the signature is looked at: public reports of the real API, and other projects'
 *   fakes of it, give that status and message;
 * - access rules with `*` wildcards: OVH's createToken / POST /auth/credential docs;
 * - POST /auth/credential (unsigned, X-Ovh-Application only): the auth.json schema
 *   (body accessRules [{method, path}] and redirection; answer auth.Credential
 *   {consumerKey, state, validationUrl}; auth.CredentialStateEnum); the validation URL
 *   `https://HOST/auth/?credentialToken=…` and a call with a key not yet allowed being
 *   refused 403 INVALID_CREDENTIAL "This credential is not valid": public reports;
 * - GET /auth/currentCredential (signed; answer api.Credential {credentialId,
 *   applicationId, status, rules, creation, expiration, lastUse, ovhSupport,
 *   allowedIPs}): the auth.json schema; that a validated key reads it whatever its
 *   access rules, and a key not allowed yet is refused there too with 403
 *   "This credential is not valid": ovh/node-ovh#20 and public client code that
 *   polls this call for validation;
 * - OAuth2 client credentials: the `/auth/oauth2/token` flow of python-ovh/go-ovh;
 * - "Got an invalid (or empty) URL" for unknown routes and for unencoded blocks
 *   (`/ip/1.2.3.4/32`): quoted from real answers in php-ovh issues.
 *
 * Simplified or invented here:
 * - the URL signed is `https://` + the Host header + the raw path, so clients must
 *   sign the port they connect to (node-ovh would sign without it);
 * - for that refusal, the errorCode QUERY_TIME_OUT and the httpCode field are taken from
 *   reports, not from OVH's documentation, and the tolerance (30 s here) is unpublished:
 *   a fake elsewhere uses 180 s; whether the key and credential are checked before the
 *   time is unconfirmed too;
 * - errorCode values other than the four auth ones (NOT_FOUND, BAD_REQUEST, CONFLICT…)
 *   and the message texts of 400/404/409 answers are modelled on the API's style,
 *   not verified: clients should branch on the HTTP status, as python-ovh does;
 * - moves take `pendingMs` and never fail; a Public Cloud attach refuses other
 *   regions (the real API also refuses other zones and sometimes fresh instances);
 * - OAuth2 tokens carry access rules like consumer keys instead of IAM policies;
 * - whether a refused or expired key gets that same 403 or a 200 with its `status`
 *   is unconfirmed: here every key not validated gets the 403; currentCredential's
 *   `creation` is the time of the answer, and its ids are list positions;
 * - the validation page asks for no login and no validity: GET shows the rules, a
 *   POST of its form (credentialToken, action=validate|refuse) allows or refuses the
 *   key, as the person clicking the URL would; allowedIPs is refused as not emulated;
 * - the metadata service (real: http://169.254.169.254) is served on the same
 *   HTTPS port; its availability_zone is OpenStack's default "nova", not the region.
 */
import { createHash, randomBytes } from 'node:crypto'
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http'
import { usageError } from '../../src/errors.js'
import { shown } from '../../src/validate.js'
import { type EmulateFlags, emulateServices } from '../emulate.js'
import type { TaskEnd } from '../faults.js'
import {
  type EmulatorOptions,
  EmulatorServer,
  type RecordedRequestBase,
  type RunningEmulator,
  sameText,
} from '../server.js'
import {
  defaultOvhFixture,
  type OvhAccessRule,
  type OvhFixture,
  type OvhFixtureClassicIp,
  type OvhFixtureConsumer,
  type OvhFixtureFailoverIp,
  type OvhFixtureInstance,
  type OvhFixtureProject,
  parseOvhFixture,
} from './fixture.js'

export { envLines } from '../server.js'

export interface OvhEmulatorOptions extends EmulatorOptions<OvhFixture> {
  /** How long a move takes, ms. Default 3000. */
  pendingMs?: number
  /** Offset of the server clock from the real one, to exercise /auth/time delta handling. */
  clockSkewSeconds?: number
  /** Where to write ca.pem and env.sh; default a fresh temporary directory, removed on close. */
  dir?: string
}

export interface OvhFailoverIpState extends OvhFixtureFailoverIp {
  status: 'ok' | 'operationPending'
  progress: number
  /** The attach in progress, if any. */
  pending?: { target: string; startedAt: number; doneAt: number }
}

export interface OvhProjectState extends Omit<OvhFixtureProject, 'failoverIps'> {
  failoverIps: OvhFailoverIpState[]
}

export type OvhTaskStatus = 'init' | 'todo' | 'doing' | 'done' | 'cancelled' | 'customerError' | 'ovhError'
const TASK_STATUSES: readonly OvhTaskStatus[] = [
  'init',
  'todo',
  'doing',
  'done',
  'cancelled',
  'customerError',
  'ovhError',
]
const TASK_FUNCTIONS = ['arinBlockReassign', 'changeRipeOrg', 'checkAndReleaseIp', 'genericMoveFloatingIp']

export interface OvhIpTaskState {
  taskId: number
  function: 'genericMoveFloatingIp'
  status: OvhTaskStatus
  comment: string
  destination: { serviceName: string }
  startDate: string
  lastUpdate: string
  doneDate: string | null
}

export interface OvhClassicIpState extends OvhFixtureClassicIp {
  tasks: OvhIpTaskState[]
}

export interface OvhEmulatorState {
  applications: OvhFixture['applications']
  consumers: OvhFixture['consumers']
  oauthClients: OvhFixture['oauthClients']
  projects: OvhProjectState[]
  dedicatedServers: OvhFixture['dedicatedServers']
  classicIps: OvhClassicIpState[]
  /** Issued OAuth2 tokens: token → client id and expiry (ms since epoch). */
  tokens: Record<string, { clientId: string; expiresAt: number }>
  /** Consumer keys made by POST /auth/credential, by the token of their validation URL. */
  credentialRequests: Record<string, { consumerKey: string; redirection?: string }>
  clockSkewSeconds: number
  thisHost: string | undefined
}

export interface RecordedRequest extends RecordedRequestBase {
  /** The request target exactly as sent: raw path and query. */
  path: string
  /** The request body text. */
  body: string
  responseBody: string
}

export interface RunningOvhEmulator extends RunningEmulator<OvhEmulatorState, RecordedRequest> {
  /** e.g. https://127.0.0.1:PORT/1.0 */
  url: string
  caFile: string
  /** OVH_ENDPOINT, OVH_APPLICATION_KEY, OVH_APPLICATION_SECRET, OVH_CONSUMER_KEY, NODE_EXTRA_CA_CERTS, IPMOVE_OPENSTACK_METADATA_URL. */
  env: Record<string, string>
}

/** Clock tolerance of the signature check, seconds. */
export const OVH_TIMESTAMP_TOLERANCE_S = 30
const API_PREFIX = '1.0'
const METADATA_PATH = ['openstack', 'latest', 'meta_data.json']
const TOKEN_LIFETIME_S = 3600
const INVALID_URL = 'Got an invalid (or empty) URL'

/** An answer in OVH's error format, thrown by handlers. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errorCode?: string,
    /** A body other than OVH's error object (OAuth2 errors, unknown URLs). */
    readonly body?: unknown,
  ) {
    super(message)
  }
}

const invalidUrl = () => new ApiError(404, INVALID_URL, undefined, { message: INVALID_URL })
const oauthError = (status: number, error: string, description: string) =>
  new ApiError(status, description, error, { error, error_description: description })

const notFoundObject = (what: string, value: string) =>
  new ApiError(404, `The requested object (${what} = ${value}) does not exist`)

function errorBody(status: number, message: string, errorCode?: string): Record<string, string> {
  const reason = STATUS_CODES[status] ?? 'Error'
  return {
    class: `${status < 500 ? 'Client' : 'Server'}::${reason.replace(/[^A-Za-z]/g, '')}`,
    message,
    httpCode: `${status} ${reason}`,
    errorCode: errorCode ?? reason.toUpperCase().replace(/[^A-Z]+/g, '_'),
  }
}

/** OVH access-rule wildcard: `*` matches any run of characters, `/` included. */
/** ip.IpTypeEnum of the OVH API schema; the emulator's classic IPs are all `failover`. */
const IP_TYPES = [
  'cdn',
  'cloud',
  'dedicated',
  'failover',
  'hosted_ssl',
  'housing',
  'loadBalancing',
  'mail',
  'overthebox',
  'pcc',
  'pci',
  'private',
  'vpn',
  'vps',
  'vrack',
  'xdsl',
]

function ruleMatches(rule: OvhAccessRule, method: string, path: string): boolean {
  if (rule.method.toUpperCase() !== method) return false
  const re = new RegExp(
    `^${rule.path
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
    's',
  )
  return re.test(path)
}

/** http.MethodEnum of the OVH API: the methods an access rule may name. */
const HTTP_METHODS = ['DELETE', 'GET', 'POST', 'PUT']

/** Letters and digits, as OVH's consumer keys and credential tokens are. */
function randomToken(length: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
  return [...randomBytes(length)].map((byte) => alphabet[byte % alphabet.length]).join('')
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`)
}

function sha1(text: string): string {
  return createHash('sha1').update(text).digest('hex')
}

interface RouteContext {
  params: Record<string, string>
  query: URLSearchParams
  body: Record<string, unknown>
  /** A `task=STATUS` fault took this request: how the move task it starts ends. */
  taskEnd?: TaskEnd
}

interface Route {
  method: string
  pattern: string[]
  /** Body fields that must be present strings (POST only). */
  required?: string[]
  handle(context: RouteContext): unknown
}

function matchRoute(pattern: string[], segments: string[]): Record<string, string> | undefined {
  if (pattern.length !== segments.length) return undefined
  const params: Record<string, string> = {}
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!
    const s = segments[i]!
    if (p.startsWith('{')) {
      if (s === '') return undefined
      params[p.slice(1, -1)] = s
    } else if (p !== s) return undefined
  }
  return params
}

function initialState(
  fixture: OvhFixture,
  clockSkewSeconds: number,
  thisHost: string | undefined,
): OvhEmulatorState {
  const copy = structuredClone(fixture)
  return {
    applications: copy.applications,
    consumers: copy.consumers,
    oauthClients: copy.oauthClients,
    projects: copy.projects.map((project) => ({
      ...project,
      failoverIps: project.failoverIps.map((ip) => ({ ...ip, status: 'ok' as const, progress: 100 })),
    })),
    dedicatedServers: copy.dedicatedServers,
    classicIps: copy.classicIps.map((ip) => ({ ...ip, tasks: [] })),
    tokens: {},
    credentialRequests: {},
    clockSkewSeconds,
    thisHost,
  }
}

/** The instance `thisHost` names (id first, then a unique name). */
function findThisHost(
  state: OvhEmulatorState,
): { instance: OvhFixtureInstance; project: OvhProjectState } | undefined | 'ambiguous' {
  const name = state.thisHost
  if (!name) return undefined
  const all = state.projects.flatMap((project) =>
    project.instances.map((instance) => ({ instance, project })),
  )
  const byId = all.find((entry) => entry.instance.id === name)
  if (byId) return byId
  const byName = all.filter((entry) => entry.instance.name === name)
  if (byName.length > 1) return 'ambiguous'
  return byName[0]
}

export async function startOvhEmulator(options: OvhEmulatorOptions = {}): Promise<RunningOvhEmulator> {
  return new OvhEmulator(options).start()
}

class OvhEmulator extends EmulatorServer<OvhEmulatorState, RecordedRequest> {
  readonly state: OvhEmulatorState
  private readonly routes: Route[]
  private queryCounter = 0
  private nextTaskId = 4_200_001

  constructor(options: OvhEmulatorOptions) {
    super(options, 3000)
    this.state = this.freshState()
    if (findThisHost(this.state) === 'ambiguous') {
      throw usageError(
        `--this-host ${shown(options.thisHost ?? '')} names several instances; give the instance id`,
      )
    }
    if (options.thisHost && !findThisHost(this.state)) {
      throw usageError(`--this-host ${shown(options.thisHost)} is no instance of the fixture`)
    }
    this.routes = this.buildRoutes()
  }

  protected freshState(): OvhEmulatorState {
    const options = this.options as OvhEmulatorOptions
    return initialState(
      options.fixture ?? defaultOvhFixture(),
      options.clockSkewSeconds ?? 0,
      options.thisHost,
    )
  }

  async start(): Promise<RunningOvhEmulator> {
    const running = await this.listen({
      tls: true,
      dirPrefix: 'ipmove-ovh-emulator-',
      url: (origin) => `${origin}/${API_PREFIX}`,
      env: (origin, caFile) => {
        const application = this.state.applications[0]
        const consumer = this.state.consumers.find((c) => c.applicationKey === application?.key)
        return {
          OVH_ENDPOINT: `${origin}/${API_PREFIX}`,
          OVH_APPLICATION_KEY: application?.key ?? '',
          OVH_APPLICATION_SECRET: application?.secret ?? '',
          OVH_CONSUMER_KEY: consumer?.key ?? '',
          NODE_EXTRA_CA_CERTS: caFile!,
          IPMOVE_OPENSTACK_METADATA_URL: `${origin}/${METADATA_PATH.join('/')}`,
        }
      },
    })
    return { ...running, caFile: running.caFile! }
  }

  protected internalError(res: ServerResponse, error: Error): void {
    res.writeHead(500, {
      'Content-Type': 'application/json; charset=utf-8',
      'X-Ovh-QueryID': this.queryId(),
    })
    res.end(JSON.stringify(errorBody(500, `emulator error: ${error.message}`)))
  }

  private queryId(): string {
    this.queryCounter += 1
    const seconds = Math.floor(Date.now() / 1000).toString(16)
    return `EMU.ext-1.${seconds}.${process.pid}.${this.queryCounter}.${randomBytes(8).toString('hex')}`
  }

  /** The server's clock, skewed as configured. */
  private nowMs(): number {
    return Date.now() + this.state.clockSkewSeconds * 1000
  }

  private isoNow(): string {
    return new Date(this.nowMs()).toISOString()
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase()
    const rawTarget = req.url ?? '/'
    const record: RecordedRequest = { method, path: rawTarget, status: 0, body: '', responseBody: '' }
    const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      const text = JSON.stringify(payload)
      record.status = status
      record.responseBody = text
      this.log?.debug(
        `emulator: ${method} ${rawTarget} -> ${status}${record.fault ? ` (fault ${record.fault})` : ''}`,
      )
      if (res.headersSent || res.destroyed) return
      res.writeHead(status, {
        'Content-Type': 'application/json; charset=utf-8',
        'X-Ovh-QueryID': this.queryId(),
        ...headers,
      })
      res.end(text)
    }
    const sendError = (
      status: number,
      message: string,
      errorCode?: string,
      headers?: Record<string, string>,
    ) => send(status, errorBody(status, message, errorCode), headers)

    const body = (await this.readBody(req))?.toString('utf8')
    record.body = body ?? ''
    this.record(record)
    if (body === undefined) {
      sendError(413, 'Request body too large')
      req.socket.destroy()
      return
    }

    const queryAt = rawTarget.indexOf('?')
    const rawPath = queryAt < 0 ? rawTarget : rawTarget.slice(0, queryAt)
    const query = new URLSearchParams(queryAt < 0 ? '' : rawTarget.slice(queryAt + 1))
    let segments: string[]
    try {
      // Split before decoding: `/ip/198.51.100.7%2F32/move` has three segments, the block one.
      segments = rawPath.split('/').slice(1).map(decodeURIComponent)
    } catch {
      send(404, { message: INVALID_URL })
      return
    }

    // The page a person opens from a validation URL: HTML, not the API's JSON.
    if (segments[0] === 'auth' && segments.length <= 2 && !segments[1]) {
      const page = this.validationPage(method, query, body)
      record.status = page.status
      record.responseBody = page.html
      res.writeHead(page.status, { 'Content-Type': 'text/html; charset=utf-8', ...page.headers })
      res.end(page.html)
      return
    }

    const apiSegments = segments[0] === API_PREFIX ? segments.slice(1) : segments
    const { answered, fault } = await this.injectFault(method, apiSegments, record, res, (status, headers) =>
      sendError(status, `Injected fault: ${STATUS_CODES[status] ?? 'error'}`, undefined, headers),
    )
    if (answered) {
      if (record.status === 0)
        this.log?.debug(`emulator: ${method} ${rawTarget} -> no answer (fault ${record.fault})`)
      return
    }

    try {
      const taskEnd = fault?.action.type === 'task' ? fault.action.status : undefined
      send(200, this.route(req, method, rawTarget, segments, apiSegments, query, body, taskEnd))
    } catch (error) {
      if (!(error instanceof ApiError)) throw error
      if (error.body !== undefined) send(error.status, error.body)
      else sendError(error.status, error.message, error.errorCode)
    }
  }

  private route(
    req: IncomingMessage,
    method: string,
    rawTarget: string,
    segments: string[],
    apiSegments: string[],
    query: URLSearchParams,
    body: string,
    taskEnd: TaskEnd | undefined,
  ): unknown {
    const path = apiSegments.join('/')
    const underApi = segments[0] === API_PREFIX
    if (path === 'auth/oauth2/token' && method === 'POST') return this.oauthToken(req, body)
    if (!underApi) {
      if (segments.join('/') === METADATA_PATH.join('/') && method === 'GET') return this.metadata()
      throw invalidUrl()
    }
    if (path === 'auth/time' && method === 'GET') return Math.floor(this.nowMs() / 1000)
    if (path === 'auth/credential' && method === 'POST') return this.newCredential(req, body)
    if (path === 'auth/currentCredential' && method === 'GET') return this.currentCredential(req, rawTarget)

    let found: { route: Route; params: Record<string, string> } | undefined
    for (const route of this.routes) {
      if (route.method !== method) continue
      const params = matchRoute(route.pattern, apiSegments)
      if (params) {
        found = { route, params }
        break
      }
    }
    if (!found) throw invalidUrl()

    this.authorize(req, method, rawTarget, `/${path}`, body)

    let parsed: Record<string, unknown> = {}
    if (method === 'POST' || method === 'PUT') {
      try {
        const value = JSON.parse(body || 'null') as unknown
        if (value === null || typeof value !== 'object' || Array.isArray(value))
          throw new Error('not an object')
        parsed = value as Record<string, unknown>
      } catch {
        throw new ApiError(400, 'The input provided is not a JSON object')
      }
      for (const field of found.route.required ?? []) {
        if (typeof parsed[field] !== 'string' || parsed[field] === '') {
          throw new ApiError(
            400,
            `The input provided isn't valid: '${field}' is a required property (a string)`,
          )
        }
      }
    }
    return found.route.handle({ params: found.params, query, body: parsed, taskEnd })
  }

  /**
   * The checks of the real API, in its order: key, credential, time and signature,
   * rules (`path` undefined: a call any valid key may make, whatever its rules).
   * Gives the consumer key's entry, none for an OAuth2 token.
   */
  private authorize(
    req: IncomingMessage,
    method: string,
    rawTarget: string,
    path: string | undefined,
    body: string,
  ): OvhFixtureConsumer | undefined {
    const header = (name: string) => {
      const value = req.headers[name]
      return Array.isArray(value) ? value[0] : value
    }
    let rules: OvhAccessRule[]
    let consumer: OvhFixtureConsumer | undefined
    const authorization = header('authorization')
    if (authorization?.startsWith('Bearer ')) {
      const grant = this.state.tokens[authorization.slice(7).trim()]
      const client = grant && this.state.oauthClients.find((c) => c.id === grant.clientId)
      if (!grant || !client || grant.expiresAt <= Date.now()) {
        throw new ApiError(401, 'Invalid or expired access token', 'INVALID_CREDENTIAL')
      }
      rules = client.rules
    } else {
      const application = this.state.applications.find((a) => a.key === header('x-ovh-application'))
      if (!application) throw new ApiError(403, 'Invalid application key', 'INVALID_KEY')
      const consumerKey = header('x-ovh-consumer')
      consumer = this.state.consumers.find(
        (c) => c.key === consumerKey && c.applicationKey === application.key,
      )
      if (!consumer) throw new ApiError(403, 'This credential does not exist', 'INVALID_CREDENTIAL')
      if ((consumer.state ?? 'validated') !== 'validated') {
        throw new ApiError(403, 'This credential is not valid', 'INVALID_CREDENTIAL')
      }
      const timestamp = header('x-ovh-timestamp') ?? ''
      const serverSeconds = this.nowMs() / 1000
      if (
        !/^\d{1,12}$/.test(timestamp) ||
        Math.abs(Number(timestamp) - serverSeconds) > OVH_TIMESTAMP_TOLERANCE_S
      ) {
        throw new ApiError(400, 'Query out of time', 'QUERY_TIME_OUT')
      }
      const url = `https://${header('host') ?? ''}${rawTarget}`
      const expected = `$1$${sha1([application.secret, consumer.key, method, url, body, timestamp].join('+'))}`
      if (!sameText(header('x-ovh-signature') ?? '', expected)) {
        throw new ApiError(400, 'Invalid signature', 'INVALID_SIGNATURE')
      }
      rules = consumer.rules
    }
    if (path !== undefined && !rules.some((rule) => ruleMatches(rule, method, path))) {
      throw new ApiError(403, 'This call has not been granted', 'NOT_GRANTED_CALL')
    }
    return consumer
  }

  /**
   * GET /auth/currentCredential: the calling key's api.Credential, whatever its
   * access rules. A key not allowed yet never gets here: authorize refuses it.
   */
  private currentCredential(req: IncomingMessage, rawTarget: string): unknown {
    const consumer = this.authorize(req, 'GET', rawTarget, undefined, '')
    if (!consumer) throw new ApiError(400, 'GET /auth/currentCredential is not emulated for OAuth2 tokens')
    return {
      credentialId: this.state.consumers.indexOf(consumer) + 1,
      applicationId: this.state.applications.findIndex((a) => a.key === consumer.applicationKey) + 1,
      status: consumer.state ?? 'validated',
      rules: consumer.rules,
      creation: new Date(this.nowMs()).toISOString(),
      expiration: null,
      lastUse: null,
      ovhSupport: false,
      allowedIPs: null,
    }
  }

  /** POST /auth/credential: a consumer key of the calling application, pending until a person allows it. */
  private newCredential(req: IncomingMessage, body: string): unknown {
    const header = req.headers['x-ovh-application']
    const application = this.state.applications.find((a) => a.key === header)
    if (!application) throw new ApiError(403, 'Invalid application key', 'INVALID_KEY')
    let input: unknown
    try {
      input = JSON.parse(body || 'null')
    } catch {
      input = undefined
    }
    if (input === null || typeof input !== 'object' || Array.isArray(input)) {
      throw new ApiError(400, 'The input provided is not a JSON object')
    }
    const fields = input as Record<string, unknown>
    for (const field of Object.keys(fields)) {
      if (field === 'allowedIPs') throw new ApiError(400, 'allowedIPs is not emulated')
      if (field !== 'accessRules' && field !== 'redirection')
        throw new ApiError(400, `Invalid parameter: ${field}`)
    }
    const invalid = (why: string) => new ApiError(400, `The input provided isn't valid: ${why}`)
    const { accessRules, redirection } = fields
    if (!Array.isArray(accessRules) || accessRules.length === 0)
      throw invalid("'accessRules' is a required property (a non-empty list)")
    const rules = accessRules.map((rule, i): OvhAccessRule => {
      const r = (rule ?? {}) as Record<string, unknown>
      if (typeof r.method !== 'string' || !HTTP_METHODS.includes(r.method))
        throw invalid(`accessRules[${i}].method must be one of ${HTTP_METHODS.join(', ')}`)
      if (typeof r.path !== 'string' || !r.path.startsWith('/'))
        throw invalid(`accessRules[${i}].path must be a path starting with /`)
      return { method: r.method, path: r.path }
    })
    if (redirection !== undefined && typeof redirection !== 'string')
      throw invalid("'redirection' must be a string")
    const consumerKey = randomToken(32)
    const token = randomToken(64)
    this.state.consumers.push({
      key: consumerKey,
      applicationKey: application.key,
      rules,
      state: 'pendingValidation',
    })
    this.state.credentialRequests[token] = { consumerKey, redirection }
    return {
      validationUrl: `https://${req.headers.host ?? ''}/auth/?credentialToken=${token}`,
      consumerKey,
      state: 'pendingValidation',
    }
  }

  /**
   * GET /auth/?credentialToken=…: the rules the key asks for, and a form; its POST
   * (credentialToken, action=validate|refuse) allows or refuses the key.
   */
  private validationPage(
    method: string,
    query: URLSearchParams,
    body: string,
  ): { status: number; html: string; headers?: Record<string, string> } {
    const form = method === 'POST' ? new URLSearchParams(body) : query
    const token = form.get('credentialToken') ?? ''
    const request = Object.hasOwn(this.state.credentialRequests, token)
      ? this.state.credentialRequests[token]
      : undefined
    const consumer = request && this.state.consumers.find((c) => c.key === request.consumerKey)
    const page = (status: number, title: string, content = '') => ({
      status,
      html: `<!doctype html><title>${title}</title><h1>${title}</h1>${content}\n`,
    })
    if (!request || consumer?.state !== 'pendingValidation')
      return page(404, 'Unknown or already used credential token')
    if (method === 'GET') {
      const rules = consumer.rules
        .map((rule) => `<li>${escapeHtml(rule.method)} ${escapeHtml(rule.path)}</li>`)
        .join('')
      return page(
        200,
        'Allow this application?',
        `<ul>${rules}</ul><form method="post" action="/auth/">` +
          `<input type="hidden" name="credentialToken" value="${escapeHtml(token)}">` +
          '<button name="action" value="validate">Allow</button>' +
          '<button name="action" value="refuse">Refuse</button></form>',
      )
    }
    if (method !== 'POST') return page(405, 'Method not allowed')
    const action = form.get('action')
    if (action !== 'validate' && action !== 'refuse') return page(400, 'action must be validate or refuse')
    consumer.state = action === 'validate' ? 'validated' : 'refused'
    if (request.redirection && action === 'validate') {
      return { ...page(303, 'Allowed'), headers: { Location: request.redirection } }
    }
    return page(200, action === 'validate' ? 'Allowed' : 'Refused')
  }

  private oauthToken(req: IncomingMessage, body: string): unknown {
    const form = new URLSearchParams(body)
    let clientId = form.get('client_id') ?? undefined
    let clientSecret = form.get('client_secret') ?? undefined
    const authorization = req.headers.authorization
    if (authorization?.startsWith('Basic ')) {
      const decoded = Buffer.from(authorization.slice(6).trim(), 'base64').toString('utf8')
      const colon = decoded.indexOf(':')
      if (colon >= 0) {
        try {
          // RFC 6749 2.3.1: both parts are form-encoded before Basic encoding.
          clientId = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '))
          clientSecret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' '))
        } catch {
          clientId = undefined
        }
      }
    }
    if (form.get('grant_type') !== 'client_credentials') {
      throw oauthError(400, 'unsupported_grant_type', 'only grant_type=client_credentials is supported')
    }
    const client = this.state.oauthClients.find((c) => c.id === clientId)
    if (!client || clientSecret === undefined || !sameText(client.secret, clientSecret)) {
      throw oauthError(401, 'invalid_client', 'client authentication failed')
    }
    const token = `emu_${randomBytes(24).toString('base64url')}`
    this.state.tokens[token] = { clientId: client.id, expiresAt: Date.now() + TOKEN_LIFETIME_S * 1000 }
    return {
      access_token: token,
      token_type: 'Bearer',
      expires_in: TOKEN_LIFETIME_S,
      scope: form.get('scope') ?? 'all',
    }
  }

  private metadata(): unknown {
    const found = findThisHost(this.state)
    if (!found || found === 'ambiguous')
      throw new ApiError(404, 'no instance is "this host" (start with --this-host)')
    const { instance, project } = found
    return {
      uuid: instance.id,
      name: instance.name,
      hostname: instance.name,
      availability_zone: 'nova',
      project_id: project.id,
      launch_index: 0,
      meta: {},
      public_keys: {},
      devices: [],
    }
  }

  protected stateView(): unknown {
    const { applications, consumers, oauthClients, tokens, credentialRequests, ...resources } = this.state
    return {
      ...resources,
      projects: resources.projects.map((project) => ({
        ...project,
        failoverIps: project.failoverIps.map((ip) => ({ ...ip, ...this.failoverView(ip) })),
      })),
    }
  }

  private project(serviceName: string): OvhProjectState {
    const project = this.state.projects.find((p) => p.id === serviceName)
    if (!project) throw new ApiError(404, 'This service does not exist')
    return project
  }

  private failoverIp(project: OvhProjectState, id: string): OvhFailoverIpState {
    const ip = project.failoverIps.find((f) => f.id === id)
    if (!ip) throw notFoundObject('id', id)
    return ip
  }

  private failoverView(ip: OvhFailoverIpState) {
    if (ip.pending) {
      // The attach's own duration: a `pending=MS` fault may have set it.
      const { startedAt, doneAt } = ip.pending
      ip.progress =
        doneAt === startedAt
          ? 99
          : Math.min(99, Math.floor(((Date.now() - startedAt) / (doneAt - startedAt)) * 100))
    }
    return {
      id: ip.id,
      ip: ip.ip,
      block: ip.block,
      routedTo: ip.routedTo,
      status: ip.status,
      progress: ip.progress,
      geoloc: ip.geoloc,
      continentCode: ip.continentCode,
      subType: ip.subType,
    }
  }

  private instanceView(instance: OvhFixtureInstance) {
    return {
      id: instance.id,
      name: instance.name,
      region: instance.region,
      status: 'ACTIVE',
      ipAddresses: instance.ipAddresses,
      flavorId: 'b3-8',
      imageId: '00000000-0000-4000-8000-000000000000',
      sshKeyId: null,
      created: '2024-01-15T10:00:00Z',
      monthlyBilling: null,
      planCode: 'b3-8.consumption',
      operationIds: [],
      currentMonthOutgoingTraffic: null,
    }
  }

  private classicIp(block: string): OvhClassicIpState {
    const ip = this.state.classicIps.find((c) => c.block === block)
    if (!ip) throw notFoundObject('ip', block)
    return ip
  }

  private attach(project: OvhProjectState, ip: OvhFailoverIpState, instanceId: string) {
    if (ip.pending) throw new ApiError(409, `An operation is already in progress on the IP ${ip.ip}`)
    const instance = project.instances.find((i) => i.id === instanceId)
    if (!instance) throw notFoundObject('instanceId', instanceId)
    if (instance.region !== ip.region) {
      throw new ApiError(
        400,
        `Instance ${instanceId} is in region ${instance.region}; the IP ${ip.ip} can only be routed in ${ip.region}`,
      )
    }
    const startedAt = Date.now()
    ip.pending = { target: instance.id, startedAt, doneAt: startedAt + this.pendingMs }
    ip.status = 'operationPending'
    ip.progress = 0
    this.schedule(this.pendingMs, () => {
      ip.routedTo = instance.id
      ip.status = 'ok'
      ip.progress = 100
      ip.pending = undefined
    })
    return this.failoverView(ip)
  }

  /** Start a move task; it ends `done` after pendingMs, or as a `task=` fault says. */
  private move(ip: OvhClassicIpState, to: string, nexthop: unknown, end?: TaskEnd): OvhIpTaskState {
    if (ip.tasks.some((t) => t.status === 'init' || t.status === 'todo' || t.status === 'doing')) {
      throw new ApiError(409, `A move of ${ip.block} is already in progress`)
    }
    const server = this.state.dedicatedServers.find((s) => s.name === to && s.name !== ip.routedTo)
    if (!server) throw new ApiError(400, `${to} is not a valid destination for ${ip.block}`)
    if (
      nexthop !== undefined &&
      nexthop !== null &&
      (typeof nexthop !== 'string' || !server.nexthop.includes(nexthop))
    ) {
      throw new ApiError(
        400,
        `The input provided isn't valid: nexthop ${JSON.stringify(nexthop)} is not a nexthop of ${to}`,
      )
    }
    const now = this.isoNow()
    const task: OvhIpTaskState = {
      taskId: this.nextTaskId++,
      function: 'genericMoveFloatingIp',
      status: 'todo',
      comment: `Move ${ip.block} to ${to}`,
      destination: { serviceName: to },
      startDate: now,
      lastUpdate: now,
      doneDate: null,
    }
    ip.tasks.push(task)
    if (end === 'todo') return { ...task }
    this.schedule(Math.floor(this.pendingMs / 3), () => {
      task.status = 'doing'
      task.lastUpdate = this.isoNow()
    })
    this.schedule(this.pendingMs, () => {
      task.status = end ?? 'done'
      if (end) {
        task.lastUpdate = this.isoNow()
        return
      }
      ip.routedTo = to
      task.lastUpdate = this.isoNow()
      task.doneDate = task.lastUpdate
    })
    return { ...task }
  }

  private buildRoutes(): Route[] {
    const get = (pattern: string, handle: Route['handle']): Route => ({
      method: 'GET',
      pattern: pattern.split('/'),
      handle,
    })
    return [
      get('cloud/project', () => this.state.projects.map((p) => p.id)),
      get('cloud/project/{serviceName}', ({ params }) => {
        const project = this.project(params.serviceName!)
        return {
          project_id: project.id,
          projectName: project.description,
          description: project.description,
          planCode: 'project.2018',
          status: 'ok',
          access: 'full',
          creationDate: '2024-01-01T00:00:00Z',
          expiration: null,
          orderId: null,
          manualQuota: false,
          unleash: false,
        }
      }),
      get('cloud/project/{serviceName}/instance', ({ params, query }) => {
        const region = query.get('region')
        return this.project(params.serviceName!)
          .instances.filter((i) => !region || i.region === region)
          .map((i) => this.instanceView(i))
      }),
      get('cloud/project/{serviceName}/instance/{instanceId}', ({ params }) => {
        const instance = this.project(params.serviceName!).instances.find((i) => i.id === params.instanceId)
        if (!instance) throw notFoundObject('instanceId', params.instanceId!)
        return this.instanceView(instance)
      }),
      get('cloud/project/{serviceName}/ip/failover', ({ params }) =>
        this.project(params.serviceName!).failoverIps.map((ip) => this.failoverView(ip)),
      ),
      get('cloud/project/{serviceName}/ip/failover/{id}', ({ params }) =>
        this.failoverView(this.failoverIp(this.project(params.serviceName!), params.id!)),
      ),
      {
        method: 'POST',
        pattern: 'cloud/project/{serviceName}/ip/failover/{id}/attach'.split('/'),
        required: ['instanceId'],
        handle: ({ params, body }) => {
          const project = this.project(params.serviceName!)
          return this.attach(project, this.failoverIp(project, params.id!), body.instanceId as string)
        },
      },
      // ipBlock[]; the API filters on `type` (ip.IpTypeEnum) and refuses a value outside it.
      get('ip', ({ query }) => {
        const type = query.get('type')
        if (type !== null && !IP_TYPES.includes(type))
          throw new ApiError(400, `Invalid value for parameter type: ${type}`)
        return type === null || type === 'failover' ? this.state.classicIps.map((ip) => ip.block) : []
      }),
      get('ip/{ip}', ({ params }) => {
        const ip = this.classicIp(params.ip!)
        return {
          ip: ip.block,
          type: 'failover',
          routedTo: { serviceName: ip.routedTo },
          description: ip.description,
          canBeTerminated: true,
          country: 'fr',
          organisationId: null,
          isAdditionalIp: true,
          version: ip.block.includes(':') ? 6 : 4,
        }
      }),
      // ip.Destinations: one list per kind of service; the emulator only has dedicated servers.
      get('ip/{ip}/move', ({ params }) => {
        const ip = this.classicIp(params.ip!)
        return {
          cloudProject: [],
          dedicatedCloud: [],
          dedicatedServer: this.state.dedicatedServers
            .filter((s) => s.name !== ip.routedTo)
            .map((s) => ({ service: s.name, nexthop: s.nexthop })),
          hostingReseller: [],
          ipLoadbalancing: [],
          vps: [],
        }
      }),
      {
        method: 'POST',
        pattern: 'ip/{ip}/move'.split('/'),
        required: ['to'],
        handle: ({ params, body, taskEnd }) =>
          this.move(this.classicIp(params.ip!), body.to as string, body.nexthop, taskEnd),
      },
      get('ip/{ip}/task', ({ params, query }) => {
        const ip = this.classicIp(params.ip!)
        const fn = query.get('function')
        const status = query.get('status')
        if (fn !== null && !TASK_FUNCTIONS.includes(fn))
          throw new ApiError(400, `Invalid value for parameter function: ${fn}`)
        if (status !== null && !(TASK_STATUSES as readonly string[]).includes(status)) {
          throw new ApiError(400, `Invalid value for parameter status: ${status}`)
        }
        return ip.tasks
          .filter((t) => (!fn || t.function === fn) && (!status || t.status === status))
          .map((t) => t.taskId)
      }),
      get('ip/{ip}/task/{taskId}', ({ params }) => {
        const task = this.classicIp(params.ip!).tasks.find((t) => String(t.taskId) === params.taskId)
        if (!task) throw notFoundObject('taskId', params.taskId!)
        return { ...task }
      }),
    ]
  }
}

/** The flags of `ipmove emulate ovh`, as typed on the command line. */
export type EmulateOvhFlags = EmulateFlags

/**
 * `ipmove emulate ovh`: its flags as emulator options (every mistake a one-line usage
 * error), and the service that runs the emulator until `signal` aborts.
 */
export const { optionsFromFlags: ovhEmulatorOptionsFromFlags, emulate: emulateOvh } = emulateServices<
  EmulateOvhFlags,
  OvhFixture,
  RunningOvhEmulator
>(parseOvhFixture, startOvhEmulator, defaultOvhFixture)
