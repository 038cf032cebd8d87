/**
 * `ipmove ovh credential` at the HTTP level: the access rules it derives, the
 * POST /auth/credential it sends (nock plays OVH), where it stores the new key,
 * and that the key never reaches a message or the result.
 */
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import nock from 'nock'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { providerNamed } from '../providers/index.js'
import { consumerKeyRules } from '../providers/ovh/access-rules.js'
import { resolveOvhCredentials } from '../providers/ovh/credentials.js'
import type { LimitedKeyRequest } from '../src/core/provider.js'
import { MemoryLogger } from '../src/output.js'
import { parseIp } from '../src/validate.js'
import { failure, failureSync } from './helpers/errors.js'
import { MemoryKeyring } from './helpers/memory-keyring.js'
import { guardNock } from './helpers/nock-guard.js'
import { APP_KEY, APP_SECRET, ORIGIN } from './helpers/ovh-nock.js'

guardNock()

const PROJECT = '9f3c2a71d4e84b06a5c1e2f3a4b5c6d7'
const NEW_KEY = 'NewConsumerKey0123456789abcdefgh'
const VALIDATION_URL = 'https://eu.api.ovh.com/auth/?credentialToken=Token0123456789'
const SECRETS = [APP_SECRET, NEW_KEY]

let dir: string
let log: MemoryLogger

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ipmove-ovh-credential-'))
  log = new MemoryLogger()
})

afterEach(() => {
  rmSync(dir, { recursive: true, force: true })
})

const request = (extra: Partial<LimitedKeyRequest> = {}): Promise<unknown> =>
  providerNamed('ovh').limitedKey!.request({
    ips: [parseIp('203.0.113.10')],
    project: PROJECT,
    ipIds: [],
    store: { file: join(dir, 'ovh.conf') },
    env: { OVH_ENDPOINT: 'ovh-eu', OVH_APPLICATION_KEY: APP_KEY, OVH_APPLICATION_SECRET: APP_SECRET },
    config: { values: {} },
    log,
    signal: AbortSignal.timeout(5_000),
    ...extra,
  })

/** OVH's answer to POST /auth/credential, recording what was asked. */
function ovhMakesKey(seen: { headers?: Record<string, unknown>; body?: unknown }) {
  return nock(ORIGIN)
    .post('/1.0/auth/credential')
    .reply(function (_uri, body) {
      seen.headers = this.req.headers
      seen.body = body
      return [200, { validationUrl: VALIDATION_URL, consumerKey: NEW_KEY, state: 'pendingValidation' }]
    })
}

/** Nothing in what was printed or returned holds a secret. */
function expectNoSecret(...texts: string[]): void {
  for (const text of texts) for (const secret of SECRETS) expect(text).not.toContain(secret)
}

describe('consumer key access rules', () => {
  it('names the calls for a Public Cloud failover IP: its project’s failover IPs, attach and instances', () => {
    const base = `/cloud/project/${PROJECT}`
    expect(consumerKeyRules({ projectId: PROJECT, ips: [parseIp('203.0.113.10')] })).toEqual([
      { method: 'GET', path: `${base}/instance` },
      { method: 'GET', path: `${base}/ip/failover` },
      { method: 'GET', path: `${base}/ip/failover/*` },
      { method: 'POST', path: `${base}/ip/failover/*/attach` },
    ])
  })

  it('names only the given failover IPs with --ip-id, and no listing', () => {
    const base = `/cloud/project/${PROJECT}`
    expect(consumerKeyRules({ projectId: PROJECT, ips: [], ipIds: ['fip-1', 'fip-2'] })).toEqual([
      { method: 'GET', path: `${base}/instance` },
      { method: 'GET', path: `${base}/ip/failover/fip-1` },
      { method: 'POST', path: `${base}/ip/failover/fip-1/attach` },
      { method: 'GET', path: `${base}/ip/failover/fip-2` },
      { method: 'POST', path: `${base}/ip/failover/fip-2/attach` },
    ])
  })

  it('names a classic IP’s routing, move tasks and move, in both spellings of its block', () => {
    const rules = consumerKeyRules({ ips: [parseIp('198.51.100.7'), parseIp('2001:db8::/64')] })
    expect(rules.slice(0, 4)).toEqual([
      { method: 'GET', path: '/ip/198.51.100.7/32' },
      { method: 'GET', path: '/ip/198.51.100.7/32/task' },
      { method: 'GET', path: '/ip/198.51.100.7/32/task/*' },
      { method: 'POST', path: '/ip/198.51.100.7/32/move' },
    ])
    expect(rules.map((r) => r.path)).toContain('/ip/198.51.100.7%2F32/move')
    expect(rules.map((r) => r.path)).toContain('/ip/2001%3Adb8%3A%3A%2F64/task/*')
    expect(rules).toHaveLength(16)
    // Nothing account-wide: every path names one of the blocks.
    for (const rule of rules) expect(rule.path).toMatch(/^\/ip\/(198\.51\.100\.7|2001)/)
  })

  it('refuses a project name, an --ip-id without a project, and ids that would widen a rule', () => {
    const name = failureSync(() => consumerKeyRules({ projectId: 't18s', ips: [] }))
    expect(name.kind).toBe('usage')
    expect(name.message).toContain('give its id (32 hex digits')
    expect(failureSync(() => consumerKeyRules({ ips: [], ipIds: ['x'] })).message).toContain(
      '--ip-id needs --project',
    )
    for (const id of ['*', 'a/b', 'a*', '']) {
      expect(failureSync(() => consumerKeyRules({ projectId: PROJECT, ips: [], ipIds: [id] })).kind).toBe(
        'usage',
      )
    }
  })
})

describe('ipmove ovh credential (nock as OVH)', () => {
  it('asks with the application key alone, stores the set in a new private file that ipmove then reads', async () => {
    const seen: { headers?: Record<string, unknown>; body?: unknown } = {}
    ovhMakesKey(seen)
    const result = await request({ redirection: 'https://example.com/done' })
    expect(seen.headers?.['x-ovh-application']).toBe(APP_KEY)
    // POST /auth/credential is not signed: no consumer key, no signature.
    expect(seen.headers?.['x-ovh-consumer']).toBeUndefined()
    expect(seen.headers?.['x-ovh-signature']).toBeUndefined()
    expect(seen.body).toEqual({
      accessRules: consumerKeyRules({ projectId: PROJECT, ips: [parseIp('203.0.113.10')] }),
      redirection: 'https://example.com/done',
    })
    expect(result).toEqual({
      endpoint: 'ovh-eu',
      state: 'pendingValidation',
      validationUrl: VALIDATION_URL,
      rules: (seen.body as { accessRules: unknown }).accessRules,
      storedIn: join(dir, 'ovh.conf'),
    })
    expectNoSecret(JSON.stringify(result), ...log.lines)
    // A file where ipmove does not look is stored all the same, with a word on where to put it.
    expect(log.lines).toContainEqual(
      expect.stringMatching(
        new RegExp(`^warning: ipmove reads .*/etc/ovh\\.conf, not ${join(dir, 'ovh.conf')}: move it`),
      ),
    )

    const file = join(dir, 'ovh.conf')
    expect(statSync(file).mode & 0o777).toBe(0o600)
    // The file is an ovh.conf the credential chain reads: the hook finds the new key there.
    const credentials = await resolveOvhCredentials({
      env: {},
      cwd: dir,
      home: dir,
      etcDir: dir,
      keyring: null,
    })
    expect(credentials).toMatchObject({
      kind: 'application',
      endpointName: 'ovh-eu',
      applicationKey: APP_KEY,
      applicationSecret: APP_SECRET,
      consumerKey: NEW_KEY,
    })
  })

  it('stores the set in the keyring as `credentials set ovh` does', async () => {
    ovhMakesKey({})
    const keyring = new MemoryKeyring()
    const result = await request({ store: { keyring } })
    expect(result).toMatchObject({ storedIn: 'the test keyring' })
    expect(JSON.parse(keyring.entries.get('ovh')!)).toEqual({
      endpoint: 'ovh-eu',
      application_key: APP_KEY,
      application_secret: APP_SECRET,
      consumer_key: NEW_KEY,
    })
    const credentials = await resolveOvhCredentials({ env: {}, cwd: dir, home: dir, etcDir: dir, keyring })
    expect(credentials).toMatchObject({ consumerKey: NEW_KEY, source: 'keyring' })
  })

  it('ignores a consumer key already configured, and needs the application secret', async () => {
    ovhMakesKey({})
    const env = {
      OVH_ENDPOINT: 'ovh-eu',
      OVH_APPLICATION_KEY: APP_KEY,
      OVH_APPLICATION_SECRET: APP_SECRET,
      OVH_CONSUMER_KEY: 'OldConsumerKey000000',
    }
    await request({ env })
    expect(readFileSync(join(dir, 'ovh.conf'), 'utf8')).toContain(`consumer_key=${NEW_KEY}`)

    // No secret: nothing is asked of OVH (nock has no answer ready; guardNock fails on any request).
    const missing = await failure(
      request({
        env: { OVH_ENDPOINT: 'ovh-eu', OVH_APPLICATION_KEY: APP_KEY },
        store: { file: join(dir, 'b') },
      }),
      SECRETS,
    )
    expect(missing.kind).toBe('auth')
    expect(missing.message).toContain('application_secret')
    const oauth = await failure(
      request({
        env: { OVH_CLIENT_ID: 'EU.client', OVH_CLIENT_SECRET: 'ClientSecret0123' },
        store: { file: join(dir, 'c') },
      }),
    )
    expect(oauth.kind).toBe('usage')
    expect(oauth.message).toContain('a consumer key belongs to an application')
  })

  it('refuses a place it cannot store the key before asking OVH for one', async () => {
    writeFileSync(join(dir, 'taken.conf'), 'keep me')
    const taken = await failure(request({ store: { file: join(dir, 'taken.conf') } }))
    expect(taken.kind).toBe('usage')
    expect(taken.message).toContain('exists')
    expect(readFileSync(join(dir, 'taken.conf'), 'utf8')).toBe('keep me')
    const noDir = await failure(request({ store: { file: join(dir, 'nowhere', 'ovh.conf') } }))
    expect(noDir.message).toContain('does not exist')
    // Creating it is how it is checked (root may write anywhere else): under a plain file it cannot be.
    const underFile = await failure(request({ store: { file: join(dir, 'taken.conf', 'ovh.conf') } }))
    expect(underFile.kind).toBe('usage')
    expect(underFile.message).toBe(`cannot create ${join(dir, 'taken.conf', 'ovh.conf')} (ENOTDIR)`)
    const noKeyring = await failure(request({ store: { keyring: new MemoryKeyring(true) } }))
    expect(noKeyring.kind).toBe('usage')
    expect(noKeyring.message).toContain('--ovh-conf FILE')
  })

  it('maps OVH’s refusal and a malformed answer to their exit codes, storing nothing', async () => {
    nock(ORIGIN)
      .post('/1.0/auth/credential')
      .reply(403, { errorCode: 'INVALID_KEY', httpCode: '403 Forbidden', message: 'Invalid application key' })
    const refused = await failure(request(), SECRETS)
    expect(refused.kind).toBe('auth')
    expect(refused.message).toBe('OVH API POST /auth/credential: Invalid application key')

    nock(ORIGIN).post('/1.0/auth/credential').reply(200, { consumerKey: NEW_KEY, state: 'pendingValidation' })
    const malformed = await failure(request(), SECRETS)
    expect(malformed.kind).toBe('unexpected')
    expect(malformed.message).toContain('instead of a credential')
    // The file made ready for the key goes when no key came.
    expect(() => statSync(join(dir, 'ovh.conf'))).toThrow()
  })

  it('refuses a redirection that is not an http(s) URL, before any request', async () => {
    const error = await failure(request({ redirection: 'javascript:alert(1)' }))
    expect(error.kind).toBe('usage')
  })
})

describe('ipmove ovh credential --wait (nock as OVH)', () => {
  const NOT_VALID = {
    errorCode: 'INVALID_CREDENTIAL',
    httpCode: '403 Forbidden',
    message: 'This credential is not valid',
  }
  const SERVER_TIME = Math.round(Date.now() / 1000) + 3_600

  type Seen = { made: string[] }
  const shown = (): Seen => ({ made: [] })

  /** The key's state calls, each checked to be signed with the new key at the API's time. */
  function ovhKeyStates(answers: [number, object][], seen: Seen) {
    const scope = nock(ORIGIN).get('/1.0/auth/time').reply(200, String(SERVER_TIME))
    for (const [status, body] of answers) {
      scope.get('/1.0/auth/currentCredential').reply(function () {
        const h = this.req.headers
        expect(h['x-ovh-consumer']).toBe(NEW_KEY)
        expect(Math.abs(Number(h['x-ovh-timestamp']) - SERVER_TIME)).toBeLessThanOrEqual(2)
        const signed = [APP_SECRET, NEW_KEY, 'GET', `${ORIGIN}/1.0/auth/currentCredential`, '']
        const sha = createHash('sha1')
          .update([...signed, h['x-ovh-timestamp']].join('+'))
          .digest('hex')
        expect(h['x-ovh-signature']).toBe(`$1$${sha}`)
        // The URL was shown before the first poll.
        expect(seen.made).toEqual([VALIDATION_URL])
        return [status, body]
      })
    }
    return scope
  }

  const waiting = (seen: Seen, signal = AbortSignal.timeout(5_000)) =>
    request({
      signal,
      wait: {
        made: (key) => seen.made.push(key.validationUrl),
        intervalMs: 10,
      },
    }) as Promise<{ state: string }>

  it('shows the URL, then polls GET /auth/currentCredential signed with the new key until it is validated', async () => {
    const seen = shown()
    ovhMakesKey({})
    const scope = ovhKeyStates(
      [
        [403, NOT_VALID],
        [403, NOT_VALID],
        [200, { credentialId: 7, applicationId: 1, status: 'validated', rules: [], ovhSupport: false }],
      ],
      seen,
    )
    const key = await waiting(seen)
    expect(key.state).toBe('validated')
    expect(scope.isDone()).toBe(true)
    expectNoSecret(JSON.stringify(key), ...log.lines)
  })

  it('takes a 200 answering pendingValidation as pending too, and a refused key as a refusal (exit 3)', async () => {
    const seen = shown()
    ovhMakesKey({})
    ovhKeyStates(
      [
        [200, { status: 'pendingValidation' }],
        [200, { status: 'refused' }],
      ],
      seen,
    )
    const error = await failure(waiting(seen), SECRETS)
    expect(error.kind).toBe('auth')
    expect(error.message).toBe(
      'OVH says the new consumer key is refused, so it will never work: run the command again for a new one',
    )
    // Stored before the wait, as without --wait.
    expect(readFileSync(join(dir, 'ovh.conf'), 'utf8')).toContain('consumer_key=')
  })

  it('ends when the time is up, naming the URL again (exit 5)', async () => {
    ovhMakesKey({})
    nock(ORIGIN).get('/1.0/auth/time').reply(200, String(SERVER_TIME))
    nock(ORIGIN).get('/1.0/auth/currentCredential').times(1_000).reply(403, NOT_VALID)
    const started = Date.now()
    const error = await failure(waiting(shown(), AbortSignal.timeout(400)), SECRETS)
    expect(error.kind).toBe('timeout')
    expect(error.message).toBe(
      `the consumer key was not allowed in time; it is stored and works once allowed at ${VALIDATION_URL}`,
    )
    expect(Date.now() - started).toBeLessThan(2_000)
    nock.cleanAll()
  })

  it('stops at any other answer: an unknown key, a state outside the enum', async () => {
    const seen = shown()
    ovhMakesKey({})
    ovhKeyStates(
      [[403, { errorCode: 'INVALID_CREDENTIAL', message: 'This credential does not exist' }]],
      seen,
    )
    const unknown = await failure(waiting(seen), SECRETS)
    expect(unknown.kind).toBe('auth')
    expect(unknown.message).toBe('OVH API GET /auth/currentCredential: This credential does not exist')

    rmSync(join(dir, 'ovh.conf'))
    const again = shown()
    ovhMakesKey({})
    ovhKeyStates([[200, { status: 'allowed' }]], again)
    const odd = await failure(waiting(again), SECRETS)
    expect(odd.kind).toBe('unexpected')
    expect(odd.message).toContain('instead of a credential')
  })
})
