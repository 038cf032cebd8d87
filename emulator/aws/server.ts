/**
 * An emulator of the part of Amazon EC2 that ipmove uses, and of the instance
 * metadata service, for our end-to-end tests, the demo and users' CI
 * (`ipmove emulate aws`). Plain HTTP on loopback: the SDK accepts an http://
 * endpoint override, and nothing secret crosses the wire (SigV4 signs, it never
 * sends the secret key).
 *
 * Where the behaviour comes from:
 * - the Query protocol (form-encoded POST of `Action=…&Version=2016-11-15`, lists as
 *   `Name.N`, filters as `Filter.N.Name` / `Filter.N.Value.M`), the XML element names of
 *   the answers and the error envelope `<Response><Errors><Error><Code/><Message/>…<RequestID/>`:
 *   the SDK's own EC2 schemas (@aws-sdk/client-ec2), checked by parsing our answers with it;
 * - SigV4 (credential scope `DATE/REGION/ec2/aws4_request`, canonical request, signing key):
 *   AWS's published algorithm, verified here in full against the fixture's secret keys;
 * - DryRun answering HTTP 412 `DryRunOperation` when allowed and 403 `UnauthorizedOperation`
 *   otherwise, and AssignPrivateIpAddresses having no DryRun: EC2's API reference and
 *   recorded answers; IMDSv2's token PUT and `X-aws-ec2-metadata-token`: EC2's user guide.
 *
 * Simplified or invented here:
 * - EC2 is eventually consistent: a write answers at once, but what it changes shows in
 *   Describe* only after `pendingMs` (writes settle in the order they were accepted);
 * - HTTP statuses of errors: AuthFailure 401, UnauthorizedOperation 403, DryRunOperation 412,
 *   RequestLimitExceeded 503, InternalError 500, everything else 400 (real EC2 agrees on most);
 * - message texts are modelled on EC2's style; clients should branch on the code;
 * - one VPC-wide view: no security groups, no pagination (NextToken never appears),
 *   no Domain other than vpc, IPv4 only;
 * - fault paths: an API call's path is `/ACTION` (`/AssociateAddress`), the metadata
 *   service's its URL path (`/latest/api/token`).
 */
import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto'
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http'
import { isIP } from 'node:net'
import { usageError } from '../../src/errors.js'
import { shown } from '../../src/validate.js'
import { type EmulateFlags, emulateServices } from '../emulate.js'
import {
  type EmulatorOptions,
  EmulatorServer,
  type RecordedRequestBase,
  type RunningEmulator,
  sameText,
} from '../server.js'
import {
  defaultEc2Fixture,
  type Ec2Fixture,
  type Ec2FixtureAddress,
  type Ec2FixtureCredential,
  type Ec2FixtureInstance,
  type Ec2FixtureInterface,
  type Ec2FixtureRouteTable,
  parseEc2Fixture,
} from './fixture.js'

export interface Ec2EmulatorOptions extends EmulatorOptions<Ec2Fixture> {
  /** How long a write takes to show in Describe*, ms. Default 500. */
  pendingMs?: number
  /** Offset of the server clock from the real one (SigV4's time check and the Date header), seconds. */
  clockSkewSeconds?: number
}

/** The live account: the fixture, changed by the writes that have settled. */
export interface Ec2EmulatorState extends Ec2Fixture {
  /** Association ids of associated addresses, by allocation id. */
  associations: Record<string, string>
  thisHost: string | undefined
  /** Seconds the server clock is ahead of the real one (negative: behind). */
  clockSkewSeconds: number
}

export interface Ec2RecordedRequest extends RecordedRequestBase {
  /** The URL path as sent. */
  path: string
  /** The EC2 action, for API calls. */
  action?: string
  /** The form parameters of an API call. */
  params: Record<string, string>
  /** The access key that signed it, once checked. */
  accessKeyId?: string
  /** The error code of a failed API call. */
  code?: string
}

export interface RunningEc2Emulator extends RunningEmulator<Ec2EmulatorState, Ec2RecordedRequest> {
  /** http://127.0.0.1:PORT — both the EC2 endpoint and the metadata service. */
  url: string
  /** AWS_ENDPOINT_URL_EC2, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_EC2_METADATA_SERVICE_ENDPOINT. */
  env: Record<string, string>
}

export const EC2_API_VERSION = '2016-11-15'
const XMLNS = `http://ec2.amazonaws.com/doc/${EC2_API_VERSION}/`
/** SigV4's tolerance for the request's clock. */
const MAX_SKEW_MS = 5 * 60_000
const IMDS_MAX_TTL_S = 21_600
const STATE_CODES: Record<Ec2FixtureInstance['state'], number> = {
  pending: 0,
  running: 16,
  'shutting-down': 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
}
const HTTP_STATUS_OF: Record<string, number> = {
  AuthFailure: 401,
  UnauthorizedOperation: 403,
  DryRunOperation: 412,
  RequestLimitExceeded: 503,
  InternalError: 500,
  Unavailable: 503,
}

/** An EC2 error answer, thrown by handlers. */
export class Ec2Error extends Error {
  readonly status: number
  constructor(
    readonly code: string,
    message: string,
    status?: number,
  ) {
    super(message)
    this.status = status ?? HTTP_STATUS_OF[code] ?? 400
  }
}

const notFound = (code: string, message: string) => new Ec2Error(code, message)
const invalid = (message: string) => new Ec2Error('InvalidParameterValue', message)

// ---- XML -----------------------------------------------------------------------------------

export type XmlValue = string | number | boolean | undefined | XmlValue[] | { [name: string]: XmlValue }

function escapeXml(text: string): string {
  return text.replace(
    /[<>&'"]/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!,
  )
}

/** EC2's XML: objects are elements in key order, arrays are `<item>` lists, undefined is left out. */
export function toXml(name: string, value: XmlValue): string {
  if (value === undefined) return ''
  if (Array.isArray(value)) return `<${name}>${value.map((v) => toXml('item', v)).join('')}</${name}>`
  if (typeof value === 'object') {
    return `<${name}>${Object.entries(value)
      .map(([k, v]) => toXml(k, v))
      .join('')}</${name}>`
  }
  return `<${name}>${escapeXml(String(value))}</${name}>`
}

export function errorXml(code: string, message: string, requestId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${escapeXml(code)}</Code><Message>${escapeXml(message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`
}

/** A successful answer: `<ActionResponse>` with a request id, then the result's elements. */
export function responseXml(action: string, result: Record<string, XmlValue>): string {
  const inner = Object.entries(result)
    .map(([k, v]) => toXml(k, v))
    .join('')
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${XMLNS}"><requestId>${randomUUID()}</requestId>${inner}</${action}Response>`
}

// ---- the Query protocol's parameters -----------------------------------------------------

type Params = Record<string, string>

/** `Name.1`, `Name.2`… in order; a gap ends the list, as EC2 reads it. */
function listParam(params: Params, name: string): string[] {
  const values: string[] = []
  for (let i = 1; params[`${name}.${i}`] !== undefined; i++) values.push(params[`${name}.${i}`]!)
  return values
}

interface Filter {
  name: string
  values: string[]
}

function filterParams(params: Params): Filter[] {
  const filters: Filter[] = []
  for (let i = 1; params[`Filter.${i}.Name`] !== undefined; i++) {
    filters.push({ name: params[`Filter.${i}.Name`]!, values: listParam(params, `Filter.${i}.Value`) })
  }
  return filters
}

function booleanParam(params: Params, name: string): boolean {
  const value = params[name]
  if (value === undefined) return false
  if (value !== 'true' && value !== 'false')
    throw invalid(`Invalid value '${value}' for ${name}. Expected true or false`)
  return value === 'true'
}

function required(params: Params, name: string): string {
  const value = params[name]
  if (!value) throw new Ec2Error('MissingParameter', `The request must contain the parameter ${name}`)
  return value
}

/** EC2 filter values accept `*` and `?` wildcards. */
function valueMatches(pattern: string, value: string | undefined): boolean {
  if (value === undefined) return false
  if (!/[*?]/.test(pattern)) return pattern === value
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.')
  return new RegExp(`^${re}$`, 's').test(value)
}

/**
 * Keep the items that pass every filter (AND), where a filter passes when any
 * value it names matches any of the item's values for that filter name (OR).
 * `tag:KEY` filters read `tags`.
 */
function applyFilters<T>(
  items: T[],
  filters: Filter[],
  fields: Record<string, (item: T) => Array<string | undefined>>,
  tags?: (item: T) => Record<string, string>,
): T[] {
  const checks = filters.map((filter) => {
    const key = filter.name.startsWith('tag:') ? filter.name.slice(4) : undefined
    const field = fields[filter.name] ?? (tags && key ? (item: T) => [tags(item)[key]] : undefined)
    if (!field) throw invalid(`The filter '${filter.name}' is invalid`)
    return { field, values: filter.values }
  })
  return items.filter((item) =>
    checks.every(({ field, values }) => {
      const have = field(item)
      return values.some((pattern) => have.some((value) => valueMatches(pattern, value)))
    }),
  )
}

// ---- addresses -------------------------------------------------------------------------------

/** Whether an IPv4 address lies in a CIDR block. */
function inCidr(ip: string, block: string): boolean {
  const [base, prefixText] = block.split('/')
  const toNumber = (a: string) => a.split('.').reduce((n, octet) => n * 256 + Number(octet), 0)
  const prefix = Number(prefixText)
  if (isIP(ip) !== 4 || !base) return false
  const size = 2 ** (32 - prefix)
  return Math.floor(toNumber(ip) / size) === Math.floor(toNumber(base) / size)
}

const hexId = (prefix: string) => `${prefix}-${randomBytes(9).toString('hex').slice(0, 17)}`

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest()
}

/** IAM-style action patterns: `*`, `ec2:*`, `ec2:Describe*`. */
function allows(credential: Ec2FixtureCredential, action: string): boolean {
  return credential.allow.some((pattern) => valueMatches(pattern, `ec2:${action}`))
}

/**
 * Check a request's SigV4 Authorization the way EC2 does — scope, key, session
 * token, date, payload hash and signature — and return the credential that
 * signed it; throws the Ec2Error EC2 would answer.
 */
export function verifySigV4(
  req: { method?: string; headers: IncomingMessage['headers'] },
  body: Buffer,
  credentials: readonly Ec2FixtureCredential[],
  expectedRegion: string,
  /** The server's clock, ms since epoch. */
  nowMs = Date.now(),
): Ec2FixtureCredential {
  const header = (name: string) => {
    const value = req.headers[name]
    return Array.isArray(value) ? value.join(',') : value
  }
  const authorization = header('authorization')
  if (!authorization)
    throw new Ec2Error('AuthFailure', 'AWS was not able to validate the provided access credentials')
  const match =
    /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([^/,\s]+)\/([^/,\s]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(
      authorization,
    )
  if (!match) {
    throw new Ec2Error(
      'IncompleteSignature',
      `Authorization header requires AWS4-HMAC-SHA256 Credential, SignedHeaders and Signature: ${authorization.slice(0, 80)}`,
    )
  }
  const [, keyId, date, region, service, signedList, signature] = match as unknown as string[]
  if (service !== 'ec2')
    throw new Ec2Error('IncompleteSignature', `Credential should be scoped to correct service: 'ec2'.`)
  if (region !== expectedRegion) {
    throw new Ec2Error('AuthFailure', `Credential should be scoped to a valid region, not '${region}'.`)
  }
  const credential = credentials.find((c) => c.accessKeyId === keyId)
  if (!credential)
    throw new Ec2Error('AuthFailure', 'AWS was not able to validate the provided access credentials')
  const token = header('x-amz-security-token')
  if (
    (credential.sessionToken ?? '') !== (token ?? '') ||
    (token && !sameText(token, credential.sessionToken!))
  ) {
    throw new Ec2Error('AuthFailure', 'AWS was not able to validate the provided access credentials')
  }
  const signedHeaders = signedList!.split(';')
  const amzDate = header('x-amz-date') ?? ''
  if (
    !signedHeaders.includes('host') ||
    !signedHeaders.includes('x-amz-date') ||
    !/^\d{8}T\d{6}Z$/.test(amzDate)
  ) {
    throw new Ec2Error('IncompleteSignature', 'The request must sign the host and x-amz-date headers')
  }
  const when = Date.parse(
    `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`,
  )
  if (amzDate.slice(0, 8) !== date || !(Math.abs(nowMs - when) <= MAX_SKEW_MS)) {
    throw new Ec2Error('RequestExpired', `Request has expired. Timestamp date is ${amzDate}`)
  }
  const payloadHash = sha256(body)
  const claimed = header('x-amz-content-sha256')
  if (claimed !== undefined && claimed !== payloadHash) {
    throw new Ec2Error(
      'AuthFailure',
      'The provided x-amz-content-sha256 header does not match what was computed.',
    )
  }
  const canonicalHeaders = signedHeaders
    .map((name) => `${name}:${(header(name) ?? '').trim().replace(/\s+/g, ' ')}\n`)
    .join('')
  const canonicalRequest = [req.method, '/', '', canonicalHeaders, signedList, claimed ?? payloadHash].join(
    '\n',
  )
  const scope = `${date}/${region}/${service}/aws4_request`
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonicalRequest)].join('\n')
  const key = hmac(
    hmac(hmac(hmac(`AWS4${credential.secretAccessKey}`, date!), region!), service!),
    'aws4_request',
  )
  const expected = createHmac('sha256', key).update(stringToSign).digest('hex')
  if (!sameText(expected, signature!))
    throw new Ec2Error('AuthFailure', 'AWS was not able to validate the provided access credentials')
  return credential
}

export async function startEc2Emulator(options: Ec2EmulatorOptions = {}): Promise<RunningEc2Emulator> {
  return new Ec2Emulator(options).start()
}

type Handler = (params: Params) => Record<string, XmlValue>

class Ec2Emulator extends EmulatorServer<Ec2EmulatorState, Ec2RecordedRequest> {
  readonly state: Ec2EmulatorState
  private readonly imdsTokens = new Map<string, number>()
  private readonly actions: Record<string, Handler>

  constructor(options: Ec2EmulatorOptions) {
    super(options, 500)
    this.state = this.freshState()
    this.actions = {
      DescribeAddresses: (p) => this.describeAddresses(p),
      AssociateAddress: (p) => this.associateAddress(p),
      DescribeInstances: (p) => this.describeInstances(p),
      DescribeNetworkInterfaces: (p) => this.describeNetworkInterfaces(p),
      AssignPrivateIpAddresses: (p) => this.assignPrivateIpAddresses(p),
      DescribeRouteTables: (p) => this.describeRouteTables(p),
      ReplaceRoute: (p) => this.writeRoute(p, 'replace'),
      CreateRoute: (p) => this.writeRoute(p, 'create'),
    }
  }

  protected freshState(): Ec2EmulatorState {
    const options = this.options as Ec2EmulatorOptions
    const fixture = structuredClone(options.fixture ?? defaultEc2Fixture())
    const state: Ec2EmulatorState = {
      ...fixture,
      associations: {},
      thisHost: undefined,
      clockSkewSeconds: options.clockSkewSeconds ?? 0,
    }
    for (const address of state.addresses) {
      if (address.networkInterfaceId) state.associations[address.allocationId] = hexId('eipassoc')
    }
    if (options.thisHost !== undefined) {
      const byId = state.instances.find((i) => i.id === options.thisHost)
      const byName = state.instances.filter((i) => i.name === options.thisHost)
      if (!byId && byName.length > 1) {
        throw usageError(
          `--this-host ${shown(options.thisHost)} names several instances; give the instance id`,
        )
      }
      const found = byId ?? byName[0]
      if (!found) throw usageError(`--this-host ${shown(options.thisHost)} is no instance of the fixture`)
      state.thisHost = found.id
    }
    return state
  }

  start(): Promise<RunningEc2Emulator> {
    return this.listen({
      tls: false,
      dirPrefix: 'ipmove-aws-emulator-',
      url: (origin) => origin,
      env: (origin) => {
        const credential = this.state.credentials[0]
        return {
          AWS_ENDPOINT_URL_EC2: origin,
          AWS_ACCESS_KEY_ID: credential?.accessKeyId ?? '',
          AWS_SECRET_ACCESS_KEY: credential?.secretAccessKey ?? '',
          AWS_REGION: this.state.region,
          AWS_EC2_METADATA_SERVICE_ENDPOINT: origin,
        }
      },
    })
  }

  protected internalError(res: ServerResponse, error: Error): void {
    res.writeHead(500, { 'Content-Type': 'text/xml;charset=UTF-8' })
    res.end(errorXml('InternalError', `emulator error: ${error.message}`, randomUUID()))
  }

  /** Make a write visible after pendingMs: EC2 reads are eventually consistent. */
  private settle(change: () => void): void {
    if (this.pendingMs === 0) change()
    else this.schedule(this.pendingMs, change)
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase()
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    const record: Ec2RecordedRequest = { method, path, params: {}, status: 0 }
    const body = await this.readBody(req)
    this.record(record)
    const send = (status: number, contentType: string, text: string) => {
      record.status = status
      this.log?.debug(
        `emulator: ${method} ${record.action ?? path} -> ${status}${record.code ? ` ${record.code}` : ''}${record.fault ? ` (fault ${record.fault})` : ''}`,
      )
      if (res.headersSent || res.destroyed) return
      // The server's own clock, which SDKs read to correct a skewed one.
      const date = new Date(Date.now() + this.state.clockSkewSeconds * 1000).toUTCString()
      res.writeHead(status, { 'Content-Type': contentType, Server: 'AmazonEC2', Date: date })
      res.end(text)
    }
    const sendError = (error: Ec2Error) => {
      record.code = error.code
      send(error.status, 'text/xml;charset=UTF-8', errorXml(error.code, error.message, randomUUID()))
    }
    if (body === undefined) {
      sendError(new Ec2Error('InvalidParameterValue', 'Request body too large'))
      req.socket.destroy()
      return
    }

    const imds = path.startsWith('/latest/')
    let action: string | undefined
    if (!imds) {
      const params = Object.fromEntries(new URLSearchParams(body.toString('utf8')))
      record.params = params
      action = params.Action
      record.action = action
    }
    const segments = imds ? path.split('/').slice(1) : [action ?? '']
    const { answered } = await this.injectFault(method, segments, record, res, (status, headers) => {
      record.status = status
      if (res.headersSent || res.destroyed) return
      if (imds) {
        res.writeHead(status, { 'Content-Type': 'text/plain', ...headers })
        res.end(STATUS_CODES[status] ?? 'error')
        return
      }
      const code =
        status === 500
          ? 'InternalError'
          : status === 503
            ? 'RequestLimitExceeded'
            : status === 429
              ? 'Throttling'
              : status >= 500
                ? 'Unavailable'
                : 'InvalidParameterValue'
      record.code = code
      res.writeHead(status, { 'Content-Type': 'text/xml;charset=UTF-8', ...headers })
      res.end(errorXml(code, `Injected fault: ${STATUS_CODES[status] ?? 'error'}`, randomUUID()))
    })
    if (answered) return

    if (imds) {
      const answer = this.metadata(method, path, req)
      record.status = answer.status
      if (res.headersSent || res.destroyed) return
      res.writeHead(answer.status, { 'Content-Type': answer.contentType ?? 'text/plain' })
      res.end(answer.text)
      return
    }
    try {
      if (method !== 'POST' || path !== '/')
        throw new Ec2Error('InvalidAction', `${method} ${path} is not the EC2 Query endpoint`)
      const credential = verifySigV4(
        req,
        body,
        this.allCredentials(),
        this.state.region,
        Date.now() + this.state.clockSkewSeconds * 1000,
      )
      record.accessKeyId = credential.accessKeyId
      const params = record.params
      if (!action) throw new Ec2Error('MissingAction', 'The request must contain the parameter Action')
      const handler = this.actions[action]
      if (!handler)
        throw new Ec2Error('InvalidAction', `The action ${action} is not valid for this web service.`)
      if (params.Version !== EC2_API_VERSION)
        throw new Ec2Error(
          'NoSuchVersion',
          `An invalid or unsupported version was specified: ${params.Version}`,
        )
      if (!allows(credential, action)) {
        const encoded = Buffer.from(JSON.stringify({ allowed: false, action: `ec2:${action}` })).toString(
          'base64',
        )
        throw new Ec2Error(
          'UnauthorizedOperation',
          `You are not authorized to perform this operation. User: arn:aws:iam::${this.state.accountId}:user/${credential.accessKeyId} is not authorized to perform: ec2:${action} because no identity-based policy allows the ec2:${action} action. Encoded authorization failure message: ${encoded}`,
        )
      }
      const result = handler(params)
      send(200, 'text/xml;charset=UTF-8', responseXml(action, result))
    } catch (error) {
      if (!(error instanceof Ec2Error)) throw error
      sendError(error)
    }
  }

  private allCredentials(): Ec2FixtureCredential[] {
    return [
      ...this.state.credentials,
      ...(this.state.instanceRole ? [this.state.instanceRole.credential] : []),
    ]
  }

  // ---- lookups -----------------------------------------------------------------------------

  private instance(id: string): Ec2FixtureInstance {
    if (!/^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$/.test(id))
      throw new Ec2Error('InvalidInstanceID.Malformed', `Invalid id: "${id}"`)
    const instance = this.state.instances.find((i) => i.id === id)
    if (!instance) throw notFound('InvalidInstanceID.NotFound', `The instance ID '${id}' does not exist`)
    return instance
  }

  private networkInterface(id: string): Ec2FixtureInterface {
    const ni = this.state.networkInterfaces.find((n) => n.id === id)
    if (!ni)
      throw notFound('InvalidNetworkInterfaceID.NotFound', `The networkInterface ID '${id}' does not exist`)
    return ni
  }

  private routeTable(id: string): Ec2FixtureRouteTable {
    const table = this.state.routeTables.find((t) => t.id === id)
    if (!table) throw notFound('InvalidRouteTableID.NotFound', `The routeTable ID '${id}' does not exist`)
    return table
  }

  private subnet(id: string) {
    return this.state.subnets.find((s) => s.id === id)
  }

  private interfacesOf(instanceId: string): Ec2FixtureInterface[] {
    return this.state.networkInterfaces
      .filter((n) => n.instanceId === instanceId)
      .sort((a, b) => (a.deviceIndex ?? 0) - (b.deviceIndex ?? 0))
  }

  private checkDryRun(params: Params): void {
    if (booleanParam(params, 'DryRun')) {
      throw new Ec2Error('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.')
    }
  }

  // ---- views -------------------------------------------------------------------------------

  private interfaceView(ni: Ec2FixtureInterface, withInstance: boolean): Record<string, XmlValue> {
    const subnet = this.subnet(ni.subnetId)
    return {
      networkInterfaceId: ni.id,
      subnetId: ni.subnetId,
      vpcId: subnet?.vpcId,
      availabilityZone: withInstance ? subnet?.availabilityZone : undefined,
      ownerId: this.state.accountId,
      status: ni.instanceId ? 'in-use' : 'available',
      macAddress: ni.mac,
      privateIpAddress: ni.privateIps[0],
      sourceDestCheck: ni.sourceDestCheck,
      interfaceType: 'interface',
      attachment: ni.instanceId
        ? {
            attachmentId: `eni-attach-${ni.id.slice(4)}`,
            instanceId: withInstance ? ni.instanceId : undefined,
            instanceOwnerId: withInstance ? this.state.accountId : undefined,
            deviceIndex: ni.deviceIndex ?? 0,
            status: 'attached',
          }
        : undefined,
      privateIpAddressesSet: ni.privateIps.map((ip, i) => ({ privateIpAddress: ip, primary: i === 0 })),
      tagSet: withInstance ? [] : undefined,
    }
  }

  private instanceView(instance: Ec2FixtureInstance): Record<string, XmlValue> {
    const enis = this.interfacesOf(instance.id)
    const primary = enis[0]
    const subnet = primary ? this.subnet(primary.subnetId) : undefined
    return {
      instanceId: instance.id,
      imageId: 'ami-0123456789abcdef0',
      instanceState: { code: STATE_CODES[instance.state], name: instance.state },
      instanceType: 't3.micro',
      placement: { availabilityZone: subnet?.availabilityZone, tenancy: 'default' },
      privateIpAddress: primary?.privateIps[0],
      subnetId: primary?.subnetId,
      vpcId: subnet?.vpcId,
      sourceDestCheck: primary?.sourceDestCheck,
      networkInterfaceSet: enis.map((ni) => this.interfaceView(ni, false)),
      tagSet: instance.name ? [{ key: 'Name', value: instance.name }] : [],
    }
  }

  private addressView(address: Ec2FixtureAddress): Record<string, XmlValue> {
    const ni = address.networkInterfaceId
      ? this.state.networkInterfaces.find((n) => n.id === address.networkInterfaceId)
      : undefined
    return {
      publicIp: address.publicIp,
      allocationId: address.allocationId,
      domain: 'vpc',
      instanceId: ni?.instanceId,
      associationId: ni ? this.state.associations[address.allocationId] : undefined,
      networkInterfaceId: ni?.id,
      networkInterfaceOwnerId: ni ? this.state.accountId : undefined,
      privateIpAddress: ni ? address.privateIp : undefined,
      publicIpv4Pool: 'amazon',
      networkBorderGroup: this.state.region,
    }
  }

  /** A route to an interface whose instance is gone or stopped leads nowhere. */
  private routeState(networkInterfaceId: string | undefined): string {
    if (!networkInterfaceId) return 'active'
    const ni = this.state.networkInterfaces.find((n) => n.id === networkInterfaceId)
    const instance = ni?.instanceId ? this.state.instances.find((i) => i.id === ni.instanceId) : undefined
    return instance?.state === 'running' ? 'active' : 'blackhole'
  }

  private routeTableView(table: Ec2FixtureRouteTable): Record<string, XmlValue> {
    return {
      routeTableId: table.id,
      vpcId: table.vpcId,
      ownerId: this.state.accountId,
      routeSet: table.routes.map((route) => {
        const ni = route.networkInterfaceId
          ? this.state.networkInterfaces.find((n) => n.id === route.networkInterfaceId)
          : undefined
        return {
          destinationCidrBlock: route.destination,
          gatewayId: route.gatewayId,
          instanceId: ni?.instanceId,
          instanceOwnerId: ni?.instanceId ? this.state.accountId : undefined,
          networkInterfaceId: route.networkInterfaceId,
          state: this.routeState(route.networkInterfaceId),
          origin: route.gatewayId === 'local' ? 'CreateRouteTable' : 'CreateRoute',
        }
      }),
      associationSet: [],
      tagSet: [],
    }
  }

  // ---- actions -------------------------------------------------------------------------------

  private describeAddresses(params: Params) {
    let addresses = this.state.addresses
    const publicIps = listParam(params, 'PublicIp')
    const allocationIds = listParam(params, 'AllocationId')
    for (const ip of publicIps) {
      if (!addresses.some((a) => a.publicIp === ip))
        throw notFound('InvalidAddress.NotFound', `Address '${ip}' not found.`)
    }
    for (const id of allocationIds) {
      if (!addresses.some((a) => a.allocationId === id)) {
        throw notFound('InvalidAllocationID.NotFound', `The allocation ID '${id}' does not exist`)
      }
    }
    if (publicIps.length) addresses = addresses.filter((a) => publicIps.includes(a.publicIp))
    if (allocationIds.length) addresses = addresses.filter((a) => allocationIds.includes(a.allocationId))
    const views = applyFilters(
      addresses.map((a) => this.addressView(a)),
      filterParams(params),
      {
        'public-ip': (a) => [a.publicIp as string],
        'allocation-id': (a) => [a.allocationId as string],
        'association-id': (a) => [a.associationId as string | undefined],
        'instance-id': (a) => [a.instanceId as string | undefined],
        'network-interface-id': (a) => [a.networkInterfaceId as string | undefined],
        'private-ip-address': (a) => [a.privateIpAddress as string | undefined],
        domain: (a) => [a.domain as string],
      },
    )
    return { addressesSet: views }
  }

  private associateAddress(params: Params) {
    const allocationId = required(params, 'AllocationId')
    const address = this.state.addresses.find((a) => a.allocationId === allocationId)
    if (!address)
      throw notFound('InvalidAllocationID.NotFound', `The allocation ID '${allocationId}' does not exist`)
    const instanceId = params.InstanceId
    const eniId = params.NetworkInterfaceId
    if (instanceId && eniId)
      throw new Ec2Error(
        'InvalidParameterCombination',
        'You may specify either an instance ID or a network interface ID, but not both',
      )
    if (!instanceId && !eniId)
      throw new Ec2Error(
        'MissingParameter',
        'Either an instance ID or a network interface ID must be specified',
      )
    let ni: Ec2FixtureInterface
    if (instanceId) {
      const instance = this.instance(instanceId)
      if (instance.state === 'terminated' || instance.state === 'shutting-down') {
        throw new Ec2Error(
          'IncorrectInstanceState',
          `The instance '${instanceId}' is not in a valid state for this operation.`,
        )
      }
      const enis = this.interfacesOf(instanceId)
      if (enis.length !== 1) {
        throw new Ec2Error(
          'InvalidInstanceID',
          `There are multiple interfaces attached to instance '${instanceId}'. Please specify an interface ID for the operation instead.`,
        )
      }
      ni = enis[0]!
    } else {
      ni = this.networkInterface(eniId!)
    }
    const privateIp = params.PrivateIpAddress ?? ni.privateIps[0]!
    if (!ni.privateIps.includes(privateIp))
      throw invalid(`The private IP address ${privateIp} is not an address of ${ni.id}`)
    if (address.networkInterfaceId && !booleanParam(params, 'AllowReassociation')) {
      throw new Ec2Error(
        'Resource.AlreadyAssociated',
        `resource ${allocationId} is already associated with associate-id ${this.state.associations[allocationId]}`,
      )
    }
    this.checkDryRun(params)
    const associationId = hexId('eipassoc')
    this.settle(() => {
      address.networkInterfaceId = ni.id
      address.privateIp = privateIp
      this.state.associations[allocationId] = associationId
    })
    return { return: true, associationId }
  }

  private describeInstances(params: Params) {
    const ids = listParam(params, 'InstanceId')
    const instances = ids.length ? ids.map((id) => this.instance(id)) : this.state.instances
    const filtered = applyFilters(
      instances,
      filterParams(params),
      {
        'instance-state-name': (i) => [i.state],
        'instance-id': (i) => [i.id],
        'subnet-id': (i) => this.interfacesOf(i.id).map((n) => n.subnetId),
        'vpc-id': (i) => this.interfacesOf(i.id).map((n) => this.subnet(n.subnetId)?.vpcId),
        'network-interface.network-interface-id': (i) => this.interfacesOf(i.id).map((n) => n.id),
      },
      (i): Record<string, string> => (i.name ? { Name: i.name } : {}),
    )
    return {
      reservationSet: filtered.map((instance) => ({
        reservationId: `r-${instance.id.slice(2)}`,
        ownerId: this.state.accountId,
        groupSet: [],
        instancesSet: [this.instanceView(instance)],
      })),
    }
  }

  private describeNetworkInterfaces(params: Params) {
    const ids = listParam(params, 'NetworkInterfaceId')
    const interfaces = ids.length ? ids.map((id) => this.networkInterface(id)) : this.state.networkInterfaces
    const filtered = applyFilters(interfaces, filterParams(params), {
      'addresses.private-ip-address': (n) => n.privateIps,
      'private-ip-address': (n) => [n.privateIps[0]],
      'network-interface-id': (n) => [n.id],
      'attachment.instance-id': (n) => [n.instanceId],
      'subnet-id': (n) => [n.subnetId],
      'vpc-id': (n) => [this.subnet(n.subnetId)?.vpcId],
      'mac-address': (n) => [n.mac],
    })
    return { networkInterfaceSet: filtered.map((n) => this.interfaceView(n, true)) }
  }

  private assignPrivateIpAddresses(params: Params) {
    if (params.DryRun !== undefined)
      throw new Ec2Error('UnknownParameter', 'The parameter DryRun is not recognized')
    const ni = this.networkInterface(required(params, 'NetworkInterfaceId'))
    const ips = listParam(params, 'PrivateIpAddress')
    if (ips.length === 0)
      throw new Ec2Error(
        'MissingParameter',
        'The request must contain the parameter PrivateIpAddress or SecondaryPrivateIpAddressCount',
      )
    const subnet = this.subnet(ni.subnetId)
    const reassign = booleanParam(params, 'AllowReassignment')
    const moves: Array<{ ip: string; from?: Ec2FixtureInterface }> = []
    for (const ip of ips) {
      if (isIP(ip) !== 4) throw invalid(`Invalid value '${ip}' for PrivateIpAddress`)
      if (!subnet || !inCidr(ip, subnet.cidr))
        throw invalid(`Address does not fall within the subnet's address range`)
      const holder = this.state.networkInterfaces.find((n) => n.privateIps.includes(ip))
      if (holder && holder !== ni) {
        if (holder.privateIps[0] === ip || !reassign)
          throw new Ec2Error('InvalidParameterValue', `Address ${ip} is in use.`)
      }
      moves.push({ ip, from: holder === ni ? undefined : holder })
    }
    this.settle(() => {
      for (const { ip, from } of moves) {
        if (from) from.privateIps = from.privateIps.filter((p) => p !== ip)
        // Someone else may have taken it meanwhile: the last write wins, as in EC2.
        for (const other of this.state.networkInterfaces) {
          if (other !== ni && other.privateIps.indexOf(ip) > 0)
            other.privateIps = other.privateIps.filter((p) => p !== ip)
        }
        if (!ni.privateIps.includes(ip)) ni.privateIps.push(ip)
      }
    })
    return {
      networkInterfaceId: ni.id,
      assignedPrivateIpAddressesSet: ips.map((ip) => ({ privateIpAddress: ip })),
    }
  }

  private describeRouteTables(params: Params) {
    const ids = listParam(params, 'RouteTableId')
    const tables = ids.length ? ids.map((id) => this.routeTable(id)) : this.state.routeTables
    const filtered = applyFilters(tables, filterParams(params), {
      'route-table-id': (t) => [t.id],
      'vpc-id': (t) => [t.vpcId],
      'route.destination-cidr-block': (t) => t.routes.map((r) => r.destination),
      'route.network-interface-id': (t) => t.routes.map((r) => r.networkInterfaceId),
      'route.instance-id': (t) =>
        t.routes.map(
          (r) => this.state.networkInterfaces.find((n) => n.id === r.networkInterfaceId)?.instanceId,
        ),
    })
    return { routeTableSet: filtered.map((t) => this.routeTableView(t)) }
  }

  private writeRoute(params: Params, kind: 'replace' | 'create') {
    const table = this.routeTable(required(params, 'RouteTableId'))
    const destination = required(params, 'DestinationCidrBlock')
    const targets = ['NetworkInterfaceId', 'InstanceId', 'GatewayId'].filter((name) => params[name])
    if (targets.length !== 1) {
      throw new Ec2Error(
        'InvalidParameterCombination',
        'The request must contain exactly one of gatewayId, instanceId, networkInterfaceId',
      )
    }
    let eniId: string | undefined
    let gatewayId: string | undefined
    if (params.NetworkInterfaceId) eniId = this.networkInterface(params.NetworkInterfaceId).id
    else if (params.InstanceId) {
      const enis = this.interfacesOf(this.instance(params.InstanceId).id)
      if (enis.length !== 1)
        throw invalid(`Instance ${params.InstanceId} has multiple network interfaces; specify one`)
      eniId = enis[0]!.id
    } else gatewayId = params.GatewayId
    if (eniId) {
      const vpc = this.subnet(this.networkInterface(eniId).subnetId)?.vpcId
      if (vpc !== table.vpcId)
        throw invalid(`route table ${table.id} and network interface ${eniId} belong to different networks`)
    }
    const existing = table.routes.find((r) => r.destination === destination)
    if (kind === 'replace' && !existing) {
      throw notFound(
        'InvalidRoute.NotFound',
        `There is no route defined for '${destination}' in the route table. Use CreateRoute instead.`,
      )
    }
    if (kind === 'create' && existing) {
      throw new Ec2Error('RouteAlreadyExists', `The route identified by ${destination} already exists.`)
    }
    if (existing?.gatewayId === 'local')
      throw invalid(`cannot replace the local route, target '${destination}'`)
    this.checkDryRun(params)
    this.settle(() => {
      const route = table.routes.find((r) => r.destination === destination)
      if (route) {
        route.networkInterfaceId = eniId
        route.gatewayId = gatewayId
      } else {
        table.routes.push({ destination, networkInterfaceId: eniId, gatewayId })
      }
    })
    return { return: true }
  }

  // ---- the instance metadata service -------------------------------------------------------

  /** IMDSv2 only (HttpTokens=required): every GET needs a token from PUT /latest/api/token. */
  private metadata(
    method: string,
    path: string,
    req: IncomingMessage,
  ): { status: number; text: string; contentType?: string } {
    const notFoundText = { status: 404, text: 'Not Found' }
    if (path === '/latest/api/token') {
      if (method !== 'PUT') return { status: 405, text: 'Method Not Allowed' }
      const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds'])
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > IMDS_MAX_TTL_S)
        return { status: 400, text: 'Bad Request' }
      const token = randomBytes(32).toString('base64url')
      this.imdsTokens.set(token, Date.now() + ttl * 1000)
      return { status: 200, text: token }
    }
    if (method !== 'GET') return { status: 405, text: 'Method Not Allowed' }
    const token = req.headers['x-aws-ec2-metadata-token']
    const expires = typeof token === 'string' ? this.imdsTokens.get(token) : undefined
    if (!expires || expires < Date.now()) return { status: 401, text: 'Unauthorized' }
    const role = this.state.instanceRole
    const credentialsPath = '/latest/meta-data/iam/security-credentials/'
    if (role && path === credentialsPath) return { status: 200, text: role.name }
    if (role && path === `${credentialsPath}${role.name}`) {
      const now = new Date()
      return {
        status: 200,
        contentType: 'application/json',
        text: JSON.stringify({
          Code: 'Success',
          LastUpdated: now.toISOString(),
          Type: 'AWS-HMAC',
          AccessKeyId: role.credential.accessKeyId,
          SecretAccessKey: role.credential.secretAccessKey,
          Token: role.credential.sessionToken,
          Expiration: new Date(now.getTime() + 6 * 3600_000).toISOString(),
        }),
      }
    }
    const instance = this.state.instances.find((i) => i.id === this.state.thisHost)
    if (!instance) return notFoundText
    const enis = this.interfacesOf(instance.id)
    const primary = enis[0]
    const base = '/latest/meta-data/'
    if (!path.startsWith(base)) return notFoundText
    const rest = path.slice(base.length)
    const subnet = primary ? this.subnet(primary.subnetId) : undefined
    const simple: Record<string, string | undefined> = {
      'instance-id': instance.id,
      mac: primary?.mac,
      'local-ipv4': primary?.privateIps[0],
      'placement/region': this.state.region,
      'placement/availability-zone': subnet?.availabilityZone,
      'network/interfaces/macs/': enis.map((n) => `${n.mac}/`).join('\n'),
    }
    if (simple[rest] !== undefined) return { status: 200, text: simple[rest]! }
    const perMac = /^network\/interfaces\/macs\/([0-9a-f:]{17})\/([a-z0-9-]+)$/.exec(rest)
    const ni = perMac ? enis.find((n) => n.mac === perMac[1]) : undefined
    if (!perMac || !ni) return notFoundText
    const niSubnet = this.subnet(ni.subnetId)
    const fields: Record<string, string | undefined> = {
      'interface-id': ni.id,
      'device-number': String(ni.deviceIndex ?? 0),
      'local-ipv4s': ni.privateIps.join('\n'),
      'subnet-id': ni.subnetId,
      'vpc-id': niSubnet?.vpcId,
      'subnet-ipv4-cidr-block': niSubnet?.cidr,
    }
    const value = fields[perMac[2]!]
    return value === undefined ? notFoundText : { status: 200, text: value }
  }

  protected stateView(): unknown {
    const { credentials, instanceRole, ...resources } = this.state
    return resources
  }
}

/** The flags of `ipmove emulate aws`, as typed on the command line. */
export type EmulateAwsFlags = EmulateFlags

/**
 * `ipmove emulate aws`: its flags as emulator options (every mistake a one-line usage
 * error), and the service that runs the emulator until `signal` aborts.
 */
export const { optionsFromFlags: ec2EmulatorOptionsFromFlags, emulate: emulateAws } = emulateServices<
  EmulateAwsFlags,
  Ec2Fixture,
  RunningEc2Emulator
>(parseEc2Fixture, startEc2Emulator, defaultEc2Fixture)
