import { createHash } from 'node:crypto'
import nock from 'nock'
import { isolatedEnv } from './cli.js'

/** The real ovh-eu endpoint: nock answers for it, nothing leaves the machine. */
export const ORIGIN = 'https://eu.api.ovh.com'
export const APP_KEY = 'test-application-key'
export const APP_SECRET = 'test-application-secret-0123456789'
export const CONSUMER_KEY = 'test-consumer-key-abcdef'

/** An environment with credentials, an empty config and a private cache directory. */
export function testEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return isolatedEnv({
    OVH_ENDPOINT: 'ovh-eu',
    OVH_APPLICATION_KEY: APP_KEY,
    OVH_APPLICATION_SECRET: APP_SECRET,
    OVH_CONSUMER_KEY: CONSUMER_KEY,
    // This host, when --instance is omitted: answered by nock when a test wants it.
    IPMOVE_OPENSTACK_METADATA_URL: 'http://169.254.169.254/openstack/latest/meta_data.json',
    ...extra,
  })
}

/**
 * Check a request's OVH signature the way the API does; return an OVH error
 * answer when it is wrong, so a signing bug fails the test with the API's words.
 */
export function checkSignature(
  method: string,
  path: string,
  headers: Record<string, string | string[] | undefined>,
  body: string,
  skewSeconds = 0,
): [number, object] | undefined {
  const h = (name: string) => String(headers[name] ?? '')
  if (h('x-ovh-application') !== APP_KEY)
    return [403, { message: 'Invalid application key', errorCode: 'INVALID_KEY' }]
  if (h('x-ovh-consumer') !== CONSUMER_KEY) {
    return [403, { message: 'This credential does not exist', errorCode: 'INVALID_CREDENTIAL' }]
  }
  const ts = h('x-ovh-timestamp')
  // The real API refuses a timestamp off its clock before it checks the signature.
  if (Math.abs(Number(ts) - (Date.now() / 1000 + skewSeconds)) > 30) {
    return [400, { message: 'Query out of time', errorCode: 'QUERY_TIME_OUT', httpCode: '400 Bad Request' }]
  }
  const expected = `$1$${createHash('sha1')
    .update([APP_SECRET, CONSUMER_KEY, method, `${ORIGIN}${path}`, body, ts].join('+'))
    .digest('hex')}`
  if (h('x-ovh-signature') !== expected) {
    return [400, { message: 'Invalid signature', errorCode: 'INVALID_SIGNATURE' }]
  }
  return undefined
}

type Json = object | string | number

/** A non-200 answer; a plain value is a 200 with that JSON body. */
export class Reply {
  constructor(
    readonly status: number,
    readonly body: Json,
  ) {}
}

export const reply = (status: number, body: Json) => new Reply(status, body)

/** An answer, or a function that makes it when the request arrives (for state that changes as the API is read). */
type Answer = Json | Reply | (() => Json | Reply)

/**
 * A nock scope for the OVH API whose every interceptor checks the signature.
 * `scope.isDone()` then proves each expected call happened; nock's
 * disableNetConnect (set in the tests) proves no other call did.
 */
export class OvhApi {
  readonly scope = nock(ORIGIN)
  /** Bodies of the writes, in order. */
  readonly writes: unknown[] = []

  /** `skewSeconds`: how far the API's clock is ahead of this host's (negative: behind). */
  constructor(readonly skewSeconds = 0) {}

  time(): this {
    this.scope
      .get('/1.0/auth/time')
      .reply(200, () => String(Math.round(Date.now() / 1000 + this.skewSeconds)))
    return this
  }

  get(path: string, answer: Answer, times = 1): this {
    return this.on('GET', path, answer, times)
  }

  /**
   * A block /ip does not know. ipmove reads a classic IP's pending move tasks
   * before its routing, so the API's 404 comes from those three lists.
   */
  unknownClassicIp(block: string): this {
    for (const status of ['init', 'todo', 'doing']) {
      this.get(
        `/ip/${block}/task?function=genericMoveFloatingIp&status=${status}`,
        reply(404, { message: `The requested object (ip = ${decodeURIComponent(block)}) does not exist` }),
      )
    }
    return this
  }

  post(path: string, answer: Answer, times = 1): this {
    return this.on('POST', path, answer, times)
  }

  private on(method: 'GET' | 'POST', path: string, answer: Answer, times: number): this {
    const full = `/1.0${path}`
    const interceptor = method === 'GET' ? this.scope.get(full) : this.scope.post(full)
    const writes = this.writes
    const skew = this.skewSeconds
    interceptor.times(times).reply(function (_uri, requestBody) {
      const raw = typeof requestBody === 'string' ? requestBody : JSON.stringify(requestBody)
      const bad = checkSignature(method, full, this.req.headers, method === 'GET' ? '' : raw, skew)
      if (bad) return bad
      const parsed = raw ? JSON.parse(raw) : undefined
      if (method === 'POST') writes.push(parsed)
      const made = typeof answer === 'function' ? answer() : answer
      const { status, body } = made instanceof Reply ? made : { status: 200, body: made }
      return [status, body, { 'X-Ovh-QueryID': `EU.test.${Math.random().toString(16).slice(2)}` }]
    })
    return this
  }
}
