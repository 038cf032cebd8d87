import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { defaultOvhFixture, OVH_ADDRESSES, OVH_CREDENTIALS, OVH_IDS } from '../emulator/ovh/fixture.js'
import {
  emulateOvh,
  envLines,
  type OvhEmulatorOptions,
  type RunningOvhEmulator,
  startOvhEmulator,
} from '../emulator/ovh/server.js'
import { IpmoveError } from '../src/errors.js'
import { type HttpAnswer, httpCall } from './helpers/emulator-process.js'

// Real HTTPS on loopback, verified against the emulator's own throw-away CA.

/** One request to the emulator, trusting its CA; a 5 s idle limit unless `timeoutMs` says otherwise. */
function call(
  emu: RunningOvhEmulator,
  method: string,
  url: string,
  options: { headers?: Record<string, string>; body?: string; timeoutMs?: number } = {},
): Promise<HttpAnswer> {
  return httpCall(method, url, { ...options, caFile: emu.caFile, timeoutMs: options.timeoutMs ?? 5000 })
}

interface SignOptions {
  body?: string
  applicationKey?: string
  secret?: string
  consumerKey?: string
  /** Seconds added to the local clock for X-Ovh-Timestamp. */
  timeDelta?: number
  /** Sign this path instead of the one sent. */
  signedPath?: string
  /** Sign this body instead of the one sent. */
  signedBody?: string
  timeoutMs?: number
}

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex')

/** A request signed as python-ovh and go-ovh sign them. `path` is below /1.0, sent as is. */
function signed(
  emu: RunningOvhEmulator,
  method: string,
  path: string,
  options: SignOptions = {},
): Promise<HttpAnswer> {
  const ak = options.applicationKey ?? OVH_CREDENTIALS.applicationKey
  const as = options.secret ?? OVH_CREDENTIALS.applicationSecret
  const ck = options.consumerKey ?? OVH_CREDENTIALS.consumerKey
  const ts = String(Math.floor(Date.now() / 1000) + (options.timeDelta ?? 0))
  const body = options.body ?? ''
  const signedUrl = `https://127.0.0.1:${emu.port}/1.0${options.signedPath ?? path}`
  const signature = `$1$${sha1([as, ck, method, signedUrl, options.signedBody ?? body, ts].join('+'))}`
  return call(emu, method, `${emu.url}${path}`, {
    body: body || undefined,
    timeoutMs: options.timeoutMs,
    headers: {
      'X-Ovh-Application': ak,
      'X-Ovh-Consumer': ck,
      'X-Ovh-Timestamp': ts,
      'X-Ovh-Signature': signature,
      ...(body ? { 'Content-Type': 'application/json' } : {}),
    },
  })
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function until<T>(
  what: string,
  read: () => Promise<T>,
  done: (value: T) => boolean,
  ms = 3000,
): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await read()
    if (done(value)) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value)}`)
    await sleep(25)
  }
}

const { t18s } = OVH_IDS.projects
const { sbg1, sbg2, gra1 } = OVH_IDS.instances
const fipV4 = OVH_IDS.failoverIps.v4
const attachPath = `/cloud/project/${t18s}/ip/failover/${fipV4}/attach`
const classicPath = `/ip/${encodeURIComponent(`${OVH_ADDRESSES.classic}/32`)}`

const opened: RunningOvhEmulator[] = []
async function emulator(options: OvhEmulatorOptions = {}): Promise<RunningOvhEmulator> {
  const emu = await startOvhEmulator({ pendingMs: 300, ...options })
  opened.push(emu)
  return emu
}
afterEach(async () => {
  await Promise.all(opened.splice(0).map((emu) => emu.close()))
})

describe('OVH emulator: time, signatures and access rules', () => {
  let emu: RunningOvhEmulator
  beforeAll(async () => {
    emu = await startOvhEmulator({ pendingMs: 300 })
  })
  afterAll(async () => {
    await emu.close()
  })

  it('gives the time unauthenticated, with a query id on every answer', async () => {
    const reply = await call(emu, 'GET', `${emu.url}/auth/time`)
    expect(reply.status).toBe(200)
    expect(reply.text).toMatch(/^\d+$/)
    expect(Math.abs(Number(reply.text) - Date.now() / 1000)).toBeLessThan(5)
    expect(reply.headers['x-ovh-queryid']).toMatch(/^EMU\./)
    const again = await call(emu, 'GET', `${emu.url}/nowhere`)
    expect(again.headers['x-ovh-queryid']).toMatch(/^EMU\./)
    expect(again.headers['x-ovh-queryid']).not.toBe(reply.headers['x-ovh-queryid'])
  })

  it('accepts a correctly signed call', async () => {
    const reply = await signed(emu, 'GET', '/cloud/project')
    expect(reply.status).toBe(200)
    expect(reply.json).toEqual([OVH_IDS.projects.t18s, OVH_IDS.projects.staging])
  })

  it('refuses a wrong secret, an altered body or URL, and a stale timestamp', async () => {
    const badSecret = await signed(emu, 'GET', '/cloud/project', { secret: 'not-the-secret' })
    expect(badSecret.status).toBe(400)
    expect(badSecret.json).toMatchObject({
      message: 'Invalid signature',
      httpCode: '400 Bad Request',
      errorCode: 'INVALID_SIGNATURE',
    })

    const body = JSON.stringify({ instanceId: sbg2 })
    const alteredBody = await signed(emu, 'POST', attachPath, {
      body,
      signedBody: JSON.stringify({ instanceId: gra1 }),
    })
    expect(alteredBody.json.errorCode).toBe('INVALID_SIGNATURE')

    const alteredUrl = await signed(emu, 'GET', `/cloud/project/${t18s}/instance?region=SBG5`, {
      signedPath: `/cloud/project/${t18s}/instance?region=GRA11`,
    })
    expect(alteredUrl.json.errorCode).toBe('INVALID_SIGNATURE')

    const stale = await signed(emu, 'GET', '/cloud/project', { timeDelta: -45 })
    expect(stale.status).toBe(400)
    expect(stale.json.errorCode).toBe('QUERY_TIME_OUT')
    // Within the 30 s tolerance is fine.
    expect((await signed(emu, 'GET', '/cloud/project', { timeDelta: -20 })).status).toBe(200)

    // None of these moved anything.
    expect(emu.state.projects[0]!.failoverIps[0]!.status).toBe('ok')
  })

  it('signs the URL with the port the client sent in Host', async () => {
    const ts = String(Math.floor(Date.now() / 1000))
    const headers = (host: string, signedHost: string) => ({
      Host: host,
      'X-Ovh-Application': OVH_CREDENTIALS.applicationKey,
      'X-Ovh-Consumer': OVH_CREDENTIALS.consumerKey,
      'X-Ovh-Timestamp': ts,
      'X-Ovh-Signature': `$1$${sha1(
        [
          OVH_CREDENTIALS.applicationSecret,
          OVH_CREDENTIALS.consumerKey,
          'GET',
          `https://${signedHost}/1.0/cloud/project`,
          '',
          ts,
        ].join('+'),
      )}`,
    })
    // node-ovh's way (no port) fails against a non-default port...
    const noPort = await call(emu, 'GET', `${emu.url}/cloud/project`, {
      headers: headers(`127.0.0.1:${emu.port}`, '127.0.0.1'),
    })
    expect(noPort.json.errorCode).toBe('INVALID_SIGNATURE')
    // ...and whatever Host the client sends is what it must sign.
    const localhost = await call(emu, 'GET', `${emu.url}/cloud/project`, {
      headers: headers(`localhost:${emu.port}`, `localhost:${emu.port}`),
    })
    expect(localhost.status).toBe(200)
  })

  it('tells an unknown application key from an unknown consumer key', async () => {
    const unknownKey = await signed(emu, 'GET', '/cloud/project', { applicationKey: 'nobody' })
    expect(unknownKey.status).toBe(403)
    expect(unknownKey.json).toMatchObject({ message: 'Invalid application key', errorCode: 'INVALID_KEY' })

    const missing = await call(emu, 'GET', `${emu.url}/cloud/project`)
    expect(missing.status).toBe(403)
    expect(missing.json.errorCode).toBe('INVALID_KEY')

    const unknownConsumer = await signed(emu, 'GET', '/cloud/project', { consumerKey: 'nobody' })
    expect(unknownConsumer.status).toBe(403)
    expect(unknownConsumer.json).toMatchObject({
      message: 'This credential does not exist',
      httpCode: '403 Forbidden',
      errorCode: 'INVALID_CREDENTIAL',
    })
  })

  it('grants calls by the consumer key access rules', async () => {
    const ro = OVH_CREDENTIALS.readOnlyConsumerKey
    expect((await signed(emu, 'GET', `/cloud/project/${t18s}/ip/failover`, { consumerKey: ro })).status).toBe(
      200,
    )
    expect((await signed(emu, 'GET', `${classicPath}/task`, { consumerKey: ro })).status).toBe(200)

    const attach = await signed(emu, 'POST', attachPath, {
      consumerKey: ro,
      body: JSON.stringify({ instanceId: sbg2 }),
    })
    expect(attach.status).toBe(403)
    expect(attach.json).toMatchObject({
      message: 'This call has not been granted',
      errorCode: 'NOT_GRANTED_CALL',
    })
    const move = await signed(emu, 'POST', `${classicPath}/move`, {
      consumerKey: ro,
      body: JSON.stringify({ to: OVH_IDS.dedicatedServers.ns2 }),
    })
    expect(move.json.errorCode).toBe('NOT_GRANTED_CALL')
    expect(emu.state.classicIps[0]!.tasks).toHaveLength(0)

    // A rule for one route does not grant its neighbours.
    emu.state.consumers.push({
      key: 'only-projects',
      applicationKey: OVH_CREDENTIALS.applicationKey,
      rules: [{ method: 'GET', path: '/cloud/project' }],
    })
    expect((await signed(emu, 'GET', '/cloud/project', { consumerKey: 'only-projects' })).status).toBe(200)
    const deeper = await signed(emu, 'GET', `/cloud/project/${t18s}`, { consumerKey: 'only-projects' })
    expect(deeper.json.errorCode).toBe('NOT_GRANTED_CALL')
  })

  it('answers unknown URLs, projects and ids with 404', async () => {
    const route = await signed(emu, 'GET', '/cloud/nothing')
    expect(route.status).toBe(404)
    expect(route.json).toEqual({ message: 'Got an invalid (or empty) URL' })
    expect((await call(emu, 'GET', `https://127.0.0.1:${emu.port}/2.0/cloud/project`)).status).toBe(404)

    const project = await signed(emu, 'GET', '/cloud/project/00000000000000000000000000000000')
    expect(project.status).toBe(404)
    expect(project.json.httpCode).toBe('404 Not Found')
    const fip = await signed(emu, 'GET', `/cloud/project/${t18s}/ip/failover/nope`)
    expect(fip.status).toBe(404)
    expect(fip.json.message).toMatch(/nope/)
    const instance = await signed(emu, 'GET', `/cloud/project/${t18s}/instance/nope`)
    expect(instance.status).toBe(404)
  })

  it('lists projects, instances (by region) and failover IPs as OVH shapes them', async () => {
    const project = await signed(emu, 'GET', `/cloud/project/${t18s}`)
    expect(project.json).toMatchObject({ project_id: t18s, description: 't18s', status: 'ok' })

    const all = await signed(emu, 'GET', `/cloud/project/${t18s}/instance`)
    expect(all.json.map((i: { name: string }) => i.name)).toEqual([
      'bi-edge-sbg-1',
      'bi-edge-sbg-2',
      'twin',
      'twin',
      'bi-edge-gra-1',
    ])
    const twins = all.json.filter((i: { name: string }) => i.name === 'twin')
    expect(twins[0].id).not.toBe(twins[1].id)
    const gra = await signed(emu, 'GET', `/cloud/project/${t18s}/instance?region=GRA11`)
    expect(gra.json).toHaveLength(1)
    expect(gra.json[0]).toMatchObject({ id: gra1, name: 'bi-edge-gra-1', region: 'GRA11', status: 'ACTIVE' })
    expect(gra.json[0].ipAddresses[0]).toMatchObject({ type: 'public', version: 4 })

    const fips = await signed(emu, 'GET', `/cloud/project/${t18s}/ip/failover`)
    expect(fips.json).toHaveLength(2)
    expect(fips.json[0]).toEqual({
      id: fipV4,
      ip: '203.0.113.10',
      block: '203.0.113.10/32',
      routedTo: sbg1,
      status: 'ok',
      progress: 100,
      geoloc: 'fr',
      continentCode: 'EU',
      subType: 'cloud',
    })
    expect(fips.json[1]).toMatchObject({ ip: '2001:db8:1::10', block: '2001:db8:1::10/128', routedTo: sbg2 })
  })
})

describe('OVH emulator: clock skew', () => {
  it('refuses the local clock, and accepts it corrected by /auth/time', async () => {
    const emu = await emulator({ clockSkewSeconds: 300 })
    const naive = await signed(emu, 'GET', '/cloud/project')
    expect(naive.status).toBe(400)
    expect(naive.json).toMatchObject({ errorCode: 'QUERY_TIME_OUT', message: 'Query out of time' })

    const time = await call(emu, 'GET', `${emu.url}/auth/time`)
    const delta = Number(time.text) - Math.floor(Date.now() / 1000)
    expect(delta).toBeGreaterThanOrEqual(298)
    expect(delta).toBeLessThanOrEqual(301)
    expect((await signed(emu, 'GET', '/cloud/project', { timeDelta: delta })).status).toBe(200)
  })
})

describe('OVH emulator: Public Cloud attach', () => {
  it('goes pending, refuses a second attach, then routes to the target', async () => {
    const emu = await emulator({ pendingMs: 400 })
    const body = JSON.stringify({ instanceId: sbg2 })
    const started = Date.now()
    const attach = await signed(emu, 'POST', attachPath, { body })
    expect(attach.status).toBe(200)
    expect(attach.json).toMatchObject({ id: fipV4, status: 'operationPending', progress: 0, routedTo: sbg1 })

    const busy = await signed(emu, 'POST', attachPath, {
      body: JSON.stringify({ instanceId: OVH_IDS.instances.twinA }),
    })
    expect(busy.status).toBe(409)
    expect(busy.json.message).toMatch(/already in progress/)

    const fipPath = `/cloud/project/${t18s}/ip/failover/${fipV4}`
    await sleep(150)
    const midway = await signed(emu, 'GET', fipPath)
    expect(midway.json).toMatchObject({ status: 'operationPending', routedTo: sbg1 })
    expect(midway.json.progress).toBeGreaterThan(0)
    expect(midway.json.progress).toBeLessThan(100)

    const done = await until(
      'the attach',
      () => signed(emu, 'GET', fipPath),
      (r) => r.json.status === 'ok',
    )
    expect(Date.now() - started).toBeGreaterThanOrEqual(400)
    expect(done.json).toMatchObject({ status: 'ok', progress: 100, routedTo: sbg2 })
    expect(emu.state.projects[0]!.failoverIps[0]!.routedTo).toBe(sbg2)
    // The recorded request is the body as sent.
    expect(emu.requests.find((r) => r.method === 'POST')).toMatchObject({
      path: `/1.0${attachPath}`,
      body,
      status: 200,
    })
  })

  it('checks the body, the instance and its region', async () => {
    const emu = await emulator()
    const missing = await signed(emu, 'POST', attachPath, { body: JSON.stringify({ instance: sbg2 }) })
    expect(missing.status).toBe(400)
    expect(missing.json.message).toMatch(/instanceId/)
    const notJson = await signed(emu, 'POST', attachPath, { body: 'instanceId=x' })
    expect(notJson.status).toBe(400)
    const empty = await signed(emu, 'POST', attachPath)
    expect(empty.status).toBe(400)

    const unknown = await signed(emu, 'POST', attachPath, {
      body: JSON.stringify({ instanceId: 'no-such-instance' }),
    })
    expect(unknown.status).toBe(404)
    // An instance of another project is unknown here too.
    const other = await signed(emu, 'POST', attachPath, {
      body: JSON.stringify({ instanceId: OVH_IDS.instances.staging1 }),
    })
    expect(other.status).toBe(404)
    const region = await signed(emu, 'POST', attachPath, { body: JSON.stringify({ instanceId: gra1 }) })
    expect(region.status).toBe(400)
    expect(region.json.message).toMatch(/GRA11/)
    expect(emu.state.projects[0]!.failoverIps[0]).toMatchObject({ status: 'ok', routedTo: sbg1 })
  })
})

describe('OVH emulator: classic IP move', () => {
  it('lists the account’s IPs by type, refusing a type outside ip.IpTypeEnum, behind its own access rule', async () => {
    const fixture = defaultOvhFixture()
    const minimal = fixture.consumers[0]!
    fixture.consumers.push({
      ...minimal,
      key: 'lister-ck',
      rules: [...minimal.rules, { method: 'GET', path: '/ip' }],
    })
    const emu = await emulator({ fixture })
    const lister = { consumerKey: 'lister-ck' }
    expect((await signed(emu, 'GET', '/ip?type=failover', lister)).json).toEqual(['198.51.100.7/32'])
    expect((await signed(emu, 'GET', '/ip', lister)).json).toEqual(['198.51.100.7/32'])
    expect((await signed(emu, 'GET', '/ip?type=vps', lister)).json).toEqual([])
    const bad = await signed(emu, 'GET', '/ip?type=floating', lister)
    expect(bad.status).toBe(400)
    // `GET /ip/*` (a move's rule) does not grant the list.
    expect((await signed(emu, 'GET', '/ip?type=failover')).status).toBe(403)
  })

  it('reads the IP by its encoded block and lists destinations', async () => {
    const emu = await emulator()
    const ip = await signed(emu, 'GET', classicPath)
    expect(ip.status).toBe(200)
    expect(ip.json).toMatchObject({
      ip: '198.51.100.7/32',
      type: 'failover',
      routedTo: { serviceName: OVH_IDS.dedicatedServers.ns1 },
    })
    expect(emu.requests.at(-1)!.path).toBe('/1.0/ip/198.51.100.7%2F32')

    // Unencoded, the slash splits the path and no route matches, as on the real API.
    const raw = await signed(emu, 'GET', '/ip/198.51.100.7/32')
    expect(raw.status).toBe(404)
    expect(raw.json.message).toBe('Got an invalid (or empty) URL')
    const bare = await signed(emu, 'GET', '/ip/198.51.100.7')
    expect(bare.status).toBe(404)

    const destinations = await signed(emu, 'GET', `${classicPath}/move`)
    expect(destinations.json.dedicatedServer).toEqual([
      { service: OVH_IDS.dedicatedServers.ns2, nexthop: ['198.51.100.2'] },
    ])
  })

  it('runs the task todo → doing → done and then routes the IP', async () => {
    const emu = await emulator({ pendingMs: 450 })
    const unknown = await signed(emu, 'POST', `${classicPath}/move`, {
      body: JSON.stringify({ to: 'ns9.example' }),
    })
    expect(unknown.status).toBe(400)
    const current = await signed(emu, 'POST', `${classicPath}/move`, {
      body: JSON.stringify({ to: OVH_IDS.dedicatedServers.ns1 }),
    })
    expect(current.status).toBe(400)
    const noTo = await signed(emu, 'POST', `${classicPath}/move`, {
      body: JSON.stringify({ nexthop: '198.51.100.2' }),
    })
    expect(noTo.status).toBe(400)
    expect(noTo.json.message).toMatch(/'to'/)

    const move = await signed(emu, 'POST', `${classicPath}/move`, {
      body: JSON.stringify({ to: OVH_IDS.dedicatedServers.ns2 }),
    })
    expect(move.status).toBe(200)
    expect(move.json).toMatchObject({
      function: 'genericMoveFloatingIp',
      status: 'todo',
      destination: { serviceName: OVH_IDS.dedicatedServers.ns2 },
      doneDate: null,
    })
    expect(typeof move.json.taskId).toBe('number')
    const taskId: number = move.json.taskId

    const again = await signed(emu, 'POST', `${classicPath}/move`, {
      body: JSON.stringify({ to: OVH_IDS.dedicatedServers.ns2 }),
    })
    expect(again.status).toBe(409)

    const todo = await signed(emu, 'GET', `${classicPath}/task?function=genericMoveFloatingIp&status=todo`)
    expect(todo.json).toEqual([taskId])
    expect((await signed(emu, 'GET', `${classicPath}/task?status=done`)).json).toEqual([])
    expect((await signed(emu, 'GET', `${classicPath}/task?status=sleeping`)).status).toBe(400)

    const taskPath = `${classicPath}/task/${taskId}`
    await until(
      'doing',
      () => signed(emu, 'GET', taskPath),
      (r) => r.json.status === 'doing',
    )
    expect((await signed(emu, 'GET', classicPath)).json.routedTo.serviceName).toBe(
      OVH_IDS.dedicatedServers.ns1,
    )
    const done = await until(
      'done',
      () => signed(emu, 'GET', taskPath),
      (r) => r.json.status === 'done',
    )
    expect(done.json.doneDate).toEqual(expect.any(String))
    expect((await signed(emu, 'GET', classicPath)).json.routedTo.serviceName).toBe(
      OVH_IDS.dedicatedServers.ns2,
    )
    expect((await signed(emu, 'GET', `${classicPath}/task/999`)).status).toBe(404)
  })
})

describe('OVH emulator: metadata and OAuth2', () => {
  it('reports this host like the OpenStack metadata service', async () => {
    const emu = await emulator({ thisHost: 'bi-edge-sbg-2' })
    const meta = await call(emu, 'GET', emu.env.IPMOVE_OPENSTACK_METADATA_URL!)
    expect(meta.status).toBe(200)
    expect(meta.json).toMatchObject({
      uuid: sbg2,
      name: 'bi-edge-sbg-2',
      project_id: t18s,
      hostname: 'bi-edge-sbg-2',
    })
    expect(meta.json.availability_zone).toEqual(expect.any(String))

    const byId = await emulator({ thisHost: OVH_IDS.instances.twinB })
    expect((await call(byId, 'GET', byId.env.IPMOVE_OPENSTACK_METADATA_URL!)).json.uuid).toBe(
      OVH_IDS.instances.twinB,
    )
    const none = await emulator()
    expect((await call(none, 'GET', none.env.IPMOVE_OPENSTACK_METADATA_URL!)).status).toBe(404)

    await expect(startOvhEmulator({ thisHost: 'twin' })).rejects.toThrow(/several instances/)
    await expect(startOvhEmulator({ thisHost: 'ghost' })).rejects.toThrow(/no instance/)
  })

  it('issues a token for the client credentials and accepts it as Bearer', async () => {
    const emu = await emulator()
    const origin = `https://127.0.0.1:${emu.port}`
    const basic = Buffer.from(`${OVH_CREDENTIALS.clientId}:${OVH_CREDENTIALS.clientSecret}`).toString(
      'base64',
    )
    const form = { 'Content-Type': 'application/x-www-form-urlencoded' }
    const token = await call(emu, 'POST', `${origin}/auth/oauth2/token`, {
      headers: { ...form, Authorization: `Basic ${basic}` },
      body: 'grant_type=client_credentials&scope=all',
    })
    expect(token.status).toBe(200)
    expect(token.json).toMatchObject({ token_type: 'Bearer', expires_in: 3600, scope: 'all' })

    const bearer = { Authorization: `Bearer ${token.json.access_token}` }
    const projects = await call(emu, 'GET', `${emu.url}/cloud/project`, { headers: bearer })
    expect(projects.status).toBe(200)
    expect(projects.json).toContain(t18s)

    const wrong = await call(emu, 'GET', `${emu.url}/cloud/project`, {
      headers: { Authorization: 'Bearer forged' },
    })
    expect(wrong.status).toBe(401)
    // Expired tokens stop working.
    emu.state.tokens[token.json.access_token]!.expiresAt = Date.now() - 1
    expect((await call(emu, 'GET', `${emu.url}/cloud/project`, { headers: bearer })).status).toBe(401)

    // Form fields work too, under /1.0 as well.
    const viaForm = await call(emu, 'POST', `${emu.url}/auth/oauth2/token`, {
      headers: form,
      body: `grant_type=client_credentials&client_id=${OVH_CREDENTIALS.clientId}&client_secret=${OVH_CREDENTIALS.clientSecret}`,
    })
    expect(viaForm.status).toBe(200)

    const badClient = await call(emu, 'POST', `${origin}/auth/oauth2/token`, {
      headers: {
        ...form,
        Authorization: `Basic ${Buffer.from(`${OVH_CREDENTIALS.clientId}:nope`).toString('base64')}`,
      },
      body: 'grant_type=client_credentials',
    })
    expect(badClient.status).toBe(401)
    expect(badClient.json.error).toBe('invalid_client')
    const badGrant = await call(emu, 'POST', `${origin}/auth/oauth2/token`, {
      headers: { ...form, Authorization: `Basic ${basic}` },
      body: 'grant_type=password',
    })
    expect(badGrant.status).toBe(400)
  })
})

describe('OVH emulator: faults', () => {
  it('answers an injected status with Retry-After, before auth, for the times asked', async () => {
    const emu = await emulator({
      faults: ['path=/cloud/project/*/ip/failover/*/attach,method=POST,status=503,retry-after=2,times=2'],
    })
    const body = JSON.stringify({ instanceId: sbg2 })
    for (let i = 0; i < 2; i++) {
      // Unsigned: the fault comes before the signature check.
      const reply = await call(emu, 'POST', `${emu.url}${attachPath}`, { body })
      expect(reply.status).toBe(503)
      expect(reply.headers['retry-after']).toBe('2')
      expect(reply.headers['x-ovh-queryid']).toBeDefined()
      expect(reply.json).toMatchObject({ httpCode: '503 Service Unavailable', message: expect.any(String) })
    }
    expect(emu.state.projects[0]!.failoverIps[0]!.status).toBe('ok')
    // Used up: the third call reaches the API.
    expect((await signed(emu, 'POST', attachPath, { body })).json.status).toBe('operationPending')
    // GETs never matched it.
    expect(emu.requests.map((r) => r.status)).toEqual([503, 503, 200])
    expect(emu.requests[0]!.fault).toMatch(/status=503/)
  })

  it('resets the connection with no answer', async () => {
    const emu = await emulator({ faults: ['path=/auth/time,reset'] })
    await expect(call(emu, 'GET', `${emu.url}/auth/time`)).rejects.toMatchObject({ code: 'ECONNRESET' })
    expect(emu.requests[0]).toMatchObject({ status: 0, fault: expect.stringMatching(/reset/) })
    expect((await call(emu, 'GET', `${emu.url}/auth/time`)).status).toBe(200)
  })

  it('hangs until the client gives up, and still closes at once', async () => {
    const emu = await startOvhEmulator({ faults: ['hang,times=0'] })
    await expect(call(emu, 'GET', `${emu.url}/auth/time`, { timeoutMs: 200 })).rejects.toThrow(
      'client timeout',
    )
    // A request still hanging when the emulator closes.
    const pending = call(emu, 'GET', `${emu.url}/cloud/project`, { timeoutMs: 10_000 }).then(
      () => new Error('answered'),
      (error: Error) => error,
    )
    await until(
      'the hung request',
      async () => emu.requests.length,
      (n) => n === 2,
    )
    const started = Date.now()
    await emu.close()
    expect(Date.now() - started).toBeLessThan(1000)
    expect((await pending).message).toMatch(/socket hang up|ECONNRESET/)
    expect(existsSync(emu.caFile)).toBe(false)
  })

  it('closes at once with a connection that never started TLS', async () => {
    const emu = await startOvhEmulator()
    const socket = connect(emu.port, '127.0.0.1')
    const ended = new Promise((resolve) => socket.on('close', resolve))
    await new Promise((resolve) => socket.on('connect', resolve))
    const started = Date.now()
    await emu.close()
    expect(Date.now() - started).toBeLessThan(1000)
    await ended
  })

  it('answers late when slow, by method, and forever with times=0', async () => {
    const emu = await emulator({ faults: ['path=/auth/time,method=GET,slow=300,times=0'] })
    for (let i = 0; i < 2; i++) {
      const reply = await call(emu, 'GET', `${emu.url}/auth/time`)
      expect(reply.status).toBe(200)
      expect(reply.ms).toBeGreaterThanOrEqual(290)
    }
    const other = await signed(emu, 'GET', '/cloud/project')
    expect(other.ms).toBeLessThan(290)

    emu.addFault('path=/cloud/**,status=429')
    expect((await signed(emu, 'GET', '/cloud/project')).status).toBe(429)
    expect((await signed(emu, 'GET', '/cloud/project')).status).toBe(200)
    expect(() => emu.addFault('status=abc')).toThrow(/status=abc/)
  })

  it('matches encoded blocks as one path segment', async () => {
    const emu = await emulator({ faults: ['path=/ip/*/move,method=POST,status=500'] })
    const reply = await signed(emu, 'POST', `${classicPath}/move`, {
      body: JSON.stringify({ to: OVH_IDS.dedicatedServers.ns2 }),
    })
    expect(reply.status).toBe(500)
    expect(emu.state.classicIps[0]!.tasks).toHaveLength(0)
  })
})

describe('OVH emulator: answer faults (body, size, drip, reset-after, task)', () => {
  it('answers a chosen body, percent-decoded, with its status and a fitting content type', async () => {
    const emu = await emulator({
      faults: [
        'path=/auth/time,status=502,body=%3Chtml%3Ebad gateway%3C%2Fhtml%3E',
        `path=/auth/time,body=${encodeURIComponent('{"a":1,"b":[2]}')}`,
      ],
    })
    const html = await call(emu, 'GET', `${emu.url}/auth/time`)
    expect(html).toMatchObject({ status: 502, text: '<html>bad gateway</html>' })
    expect(html.headers['content-type']).toMatch(/^text\/html/)
    const json = await call(emu, 'GET', `${emu.url}/auth/time`)
    expect(json).toMatchObject({ status: 200, text: '{"a":1,"b":[2]}' })
    expect(emu.requests.map((r) => r.status)).toEqual([502, 200])
    expect(Number((await call(emu, 'GET', `${emu.url}/auth/time`)).text)).toBeGreaterThan(1e9)
  })

  it('sends a body of the size asked', async () => {
    const emu = await emulator({ faults: ['path=/cloud/project,size=3'] })
    const reply = await signed(emu, 'GET', '/cloud/project')
    expect(reply.status).toBe(200)
    expect(reply.text.length).toBe(3 * 1024 * 1024)
    expect(reply.text.trim()).toBe('')
  })

  it('drips the normal answer one byte at a time', async () => {
    const emu = await emulator({ faults: ['path=/auth/time,drip=30'] })
    const reply = await call(emu, 'GET', `${emu.url}/auth/time`)
    expect(reply.status).toBe(200)
    expect(Math.abs(Number(reply.text) - Date.now() / 1000)).toBeLessThan(5)
    expect(reply.ms).toBeGreaterThanOrEqual(30 * reply.text.length - 20)
  })

  it('carries the write out, then drops the connection (reset-after)', async () => {
    const emu = await emulator({ faults: ['path=/cloud/project/*/ip/failover/*/attach,reset-after'] })
    const body = JSON.stringify({ instanceId: sbg2 })
    await expect(signed(emu, 'POST', attachPath, { body })).rejects.toMatchObject({
      message: expect.stringMatching(/ECONNRESET|socket hang up/),
    })
    const ip = emu.state.projects[0]!.failoverIps[0]!
    expect(ip.status).toBe('operationPending')
    expect(ip.pending?.target).toBe(sbg2)
    expect(emu.requests[0]!.fault).toMatch(/reset-after/)
  })

  it('ends a classic move task as the task fault says, the IP staying put', async () => {
    const emu = await emulator({
      pendingMs: 150,
      faults: ['path=/ip/*/move,method=POST,task=ovhError', 'path=/ip/*/move,method=POST,task=todo'],
    })
    const body = JSON.stringify({ to: OVH_IDS.dedicatedServers.ns2 })
    const failed = (await signed(emu, 'POST', `${classicPath}/move`, { body })).json.taskId as number
    const ended = await until(
      'ovhError',
      () => signed(emu, 'GET', `${classicPath}/task/${failed}`),
      (r) => r.json.status !== 'todo' && r.json.status !== 'doing',
    )
    expect(ended.json).toMatchObject({ status: 'ovhError', doneDate: null })
    const stuck = (await signed(emu, 'POST', `${classicPath}/move`, { body })).json.taskId as number
    await sleep(400)
    expect((await signed(emu, 'GET', `${classicPath}/task/${stuck}`)).json.status).toBe('todo')
    // Still todo: a third move is refused as busy; the IP never moved.
    expect((await signed(emu, 'POST', `${classicPath}/move`, { body })).status).toBe(409)
    expect(emu.state.classicIps[0]!.routedTo).toBe(OVH_IDS.dedicatedServers.ns1)
  })
})

describe('OVH emulator: control surface and command service', () => {
  it('shows the state without secrets', async () => {
    const emu = await emulator({ faults: ['path=/ip/**,status=500,times=0'] })
    await call(emu, 'GET', `${emu.url}/ip/x`)
    const state = await call(emu, 'GET', `https://127.0.0.1:${emu.port}/_emulator/state`)
    expect(state.status).toBe(200)
    expect(state.json.projects[0].failoverIps[0]).toMatchObject({ ip: '203.0.113.10', routedTo: sbg1 })
    expect(state.json.classicIps[0].routedTo).toBe(OVH_IDS.dedicatedServers.ns1)
    expect(state.json.faults).toEqual([{ spec: 'path=/ip/**,status=500,times=0', left: 'forever' }])
    expect(state.text).not.toContain(OVH_CREDENTIALS.applicationSecret)
    expect(state.text).not.toContain(OVH_CREDENTIALS.clientSecret)
  })

  it('exports the environment to use it', async () => {
    const emu = await emulator()
    expect(emu.url).toBe(`https://127.0.0.1:${emu.port}/1.0`)
    expect(emu.env).toEqual({
      OVH_ENDPOINT: emu.url,
      OVH_APPLICATION_KEY: 'emulator-ak',
      OVH_APPLICATION_SECRET: 'emulator-as',
      OVH_CONSUMER_KEY: 'emulator-ck',
      NODE_EXTRA_CA_CERTS: emu.caFile,
      IPMOVE_OPENSTACK_METADATA_URL: `https://127.0.0.1:${emu.port}/openstack/latest/meta_data.json`,
      IPMOVE_EMULATOR_URL: `https://127.0.0.1:${emu.port}`,
    })
    expect(readFileSync(emu.caFile, 'utf8')).toMatch(/BEGIN CERTIFICATE/)
    expect(envLines({ A: '/tmp/x.pem', B: "it's" })).toEqual(['export A=/tmp/x.pem', `export B='it'\\''s'`])
  })

  it('serves a fixture file and refuses bad flags with exit 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ipmove-emu-test-'))
    try {
      const fixture = defaultOvhFixture()
      fixture.projects[0]!.description = 'from-file'
      const file = join(dir, 'fixture.json')
      writeFileSync(file, JSON.stringify(fixture))
      const controller = new AbortController()
      let ready: RunningOvhEmulator | undefined
      const running = emulateOvh(
        {
          port: '0',
          pendingMs: '100',
          fixtureFile: file,
          dir: join(dir, 'out'),
          faults: ['path=/nothing,hang'],
        },
        controller.signal,
        (emu) => {
          ready = emu
        },
      )
      await until(
        'the emulator',
        async () => ready,
        (r) => r !== undefined,
      )
      const project = await signed(ready!, 'GET', `/cloud/project/${t18s}`)
      expect(project.json.description).toBe('from-file')
      expect(readFileSync(join(dir, 'out', 'env.sh'), 'utf8')).toContain(
        `export OVH_ENDPOINT=${ready!.url}\n`,
      )
      controller.abort()
      await running
      await expect(call(ready!, 'GET', `${ready!.url}/auth/time`)).rejects.toThrow()
      // A --dir the user gave is kept.
      expect(existsSync(join(dir, 'out', 'ca.pem'))).toBe(true)

      writeFileSync(file, JSON.stringify({ ...fixture, projects: [{ id: 'x' }] }))
      const cases: Array<[Parameters<typeof emulateOvh>[0], RegExp]> = [
        [{ port: '70000' }, /--port "70000"/],
        [{ pendingMs: 'soon' }, /--pending-ms/],
        [{ clockSkew: '1.5' }, /--clock-skew/],
        [{ host: 'bad host' }, /--host/],
        [{ thisHost: 'a;b' }, /--this-host/],
        [{ faults: ['status=503', 'path=/x,explode'] }, /"explode"/],
        [{ fixtureFile: join(dir, 'missing.json') }, /ENOENT/],
        [{ fixtureFile: file }, /projects\[0\]\.description/],
      ]
      for (const [flags, message] of cases) {
        const error = await emulateOvh(flags, new AbortController().signal, () => {}).catch((e: unknown) => e)
        expect(error, JSON.stringify(flags)).toBeInstanceOf(IpmoveError)
        expect((error as IpmoveError).kind).toBe('usage')
        expect((error as Error).message).toMatch(message)
        expect((error as Error).message).not.toContain('\n')
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('OVH emulator: consumer keys made by POST /auth/credential', () => {
  const credentialUrl = (emu: RunningOvhEmulator) => `${emu.url}/auth/credential`
  const ask = (
    emu: RunningOvhEmulator,
    body: unknown,
    applicationKey: string = OVH_CREDENTIALS.applicationKey,
  ) =>
    call(emu, 'POST', credentialUrl(emu), {
      body: JSON.stringify(body),
      headers: { 'X-Ovh-Application': applicationKey, 'Content-Type': 'application/json' },
    })
  /** What the person's browser does with the validation URL: open it, then submit its form. */
  async function click(emu: RunningOvhEmulator, validationUrl: string, action: 'validate' | 'refuse') {
    const page = await call(emu, 'GET', validationUrl)
    const token = new URL(validationUrl).searchParams.get('credentialToken')!
    const form = new URLSearchParams({ credentialToken: token, action }).toString()
    const sent = await call(emu, 'POST', new URL('/auth/', validationUrl).href, {
      body: form,
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    })
    return { page, sent }
  }
  const rules = [{ method: 'GET', path: `/cloud/project/${t18s}/ip/failover*` }]

  it('makes a pending key of the calling application, usable once allowed and only for its rules', async () => {
    const emu = await emulator()
    const made = await ask(emu, { accessRules: rules })
    expect(made.status).toBe(200)
    expect(made.json).toEqual({
      validationUrl: expect.stringMatching(
        new RegExp(`^https://127\\.0\\.0\\.1:${emu.port}/auth/\\?credentialToken=[A-Za-z0-9]{64}$`),
      ),
      consumerKey: expect.stringMatching(/^[A-Za-z0-9]{32}$/),
      state: 'pendingValidation',
    })
    const consumerKey = made.json.consumerKey as string
    const list = `/cloud/project/${t18s}/ip/failover`

    const pending = await signed(emu, 'GET', list, { consumerKey })
    expect(pending.status).toBe(403)
    expect(pending.json).toMatchObject({
      errorCode: 'INVALID_CREDENTIAL',
      httpCode: '403 Forbidden',
      message: 'This credential is not valid',
    })

    const { page, sent } = await click(emu, made.json.validationUrl, 'validate')
    expect(page.status).toBe(200)
    expect(page.headers['content-type']).toMatch(/^text\/html/)
    expect(page.text).toContain(`GET /cloud/project/${t18s}/ip/failover*`)
    expect(sent.status).toBe(200)

    expect((await signed(emu, 'GET', list, { consumerKey })).status).toBe(200)
    expect((await signed(emu, 'GET', `${list}/${fipV4}`, { consumerKey })).status).toBe(200)
    const outside = await signed(emu, 'GET', '/cloud/project', { consumerKey })
    expect(outside.status).toBe(403)
    expect(outside.json).toMatchObject({
      errorCode: 'NOT_GRANTED_CALL',
      message: 'This call has not been granted',
    })
    const write = await signed(emu, 'POST', attachPath, {
      consumerKey,
      body: JSON.stringify({ instanceId: sbg2 }),
    })
    expect(write.json.errorCode).toBe('NOT_GRANTED_CALL')

    // The URL works once.
    expect((await call(emu, 'GET', made.json.validationUrl)).status).toBe(404)
  })

  it('keeps a refused key out, and sends the browser to the redirection once allowed', async () => {
    const emu = await emulator()
    const refusedKey = await ask(emu, { accessRules: rules })
    await click(emu, refusedKey.json.validationUrl, 'refuse')
    const refused = await signed(emu, 'GET', `/cloud/project/${t18s}/ip/failover`, {
      consumerKey: refusedKey.json.consumerKey,
    })
    expect(refused.json.errorCode).toBe('INVALID_CREDENTIAL')

    const redirected = await ask(emu, { accessRules: rules, redirection: 'https://example.com/done' })
    const { sent } = await click(emu, redirected.json.validationUrl, 'validate')
    expect(sent.status).toBe(303)
    expect(sent.headers.location).toBe('https://example.com/done')
  })

  it('refuses an unknown application and a body outside the schema', async () => {
    const emu = await emulator()
    const unknown = await ask(emu, { accessRules: rules }, 'nobody')
    expect(unknown.status).toBe(403)
    expect(unknown.json.errorCode).toBe('INVALID_KEY')
    for (const body of [
      {},
      { accessRules: [] },
      { accessRules: [{ method: 'PATCH', path: '/me' }] },
      { accessRules: [{ method: 'GET', path: 'me' }] },
      { accessRules: rules, redirection: 7 },
      { accessRules: rules, allowedIPs: ['192.0.2.0/24'] },
      { accessRules: rules, extra: true },
      [],
    ]) {
      const answer = await ask(emu, body)
      expect(answer.status, JSON.stringify(body)).toBe(400)
    }
    expect(emu.state.consumers.filter((c) => c.state === 'pendingValidation')).toEqual([])
  })
})
