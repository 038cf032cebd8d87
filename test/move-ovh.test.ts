import nock from 'nock'
import { describe, expect, it } from 'vitest'
import { MemoryLogger } from '../src/output.js'
import { type MoveOptions, moveIp } from '../src/services/move.js'
import { ipStatus } from '../src/services/status.js'
import { failure } from './helpers/errors.js'
import { guardNock } from './helpers/nock-guard.js'
import { CONSUMER_KEY, ORIGIN, OvhApi, reply, testEnv } from './helpers/ovh-nock.js'

const PROJECT = '0123456789abcdef0123456789abcdef'
const OTHER_PROJECT = 'fedcba9876543210fedcba9876543210'
const SBG1 = '11111111-1111-4111-8111-111111111111'
const SBG2 = '22222222-2222-4222-8222-222222222222'
const THIRD = '33333333-3333-4333-8333-333333333333'
const FIP = 'failover-ip-id-7'
const IP = '203.0.113.10'
const FAST = { first: 10, max: 40 }

const instances = [
  { id: SBG1, name: 'bi-edge-sbg-1', region: 'SBG5' },
  { id: SBG2, name: 'bi-edge-sbg-2', region: 'SBG5' },
  { id: THIRD, name: 'third', region: 'SBG5' },
]
const failover = (routedTo: string, status = 'ok', progress = 0) => ({
  id: FIP,
  ip: IP,
  block: `${IP}/32`,
  routedTo,
  status,
  progress,
  subType: 'ovh',
})

/** The cold look-ups of a move by project name and instance name. */
function coldLookups(api: OvhApi, holder = SBG1): OvhApi {
  return api
    .get('/cloud/project', [PROJECT, OTHER_PROJECT])
    .get(`/cloud/project/${PROJECT}`, { project_id: PROJECT, description: 't18s' })
    .get(`/cloud/project/${OTHER_PROJECT}`, { project_id: OTHER_PROJECT, description: 'staging' })
    .get(`/cloud/project/${PROJECT}/ip/failover`, [failover(holder)])
    .get(`/cloud/project/${PROJECT}/instance`, instances)
}

function options(env: NodeJS.ProcessEnv, extra: Partial<MoveOptions> = {}): MoveOptions {
  return {
    ip: IP,
    project: 't18s',
    instance: 'bi-edge-sbg-2',
    wait: true,
    dryRun: false,
    env,
    pollMs: FAST,
    ...extra,
  }
}

/** nock 14 only delivers errors given as Error objects. */
const connectionReset = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })

// Every expected call happens, no other, and nothing leaves the machine.
guardNock()

describe('move on OVH Public Cloud', () => {
  it('moves cold: resolves names, writes once, polls until done, and reports from → to', async () => {
    const api = coldLookups(new OvhApi())
      .post(`/cloud/project/${PROJECT}/ip/failover/${FIP}/attach`, failover(SBG1, 'operationPending'))
      .get(`/cloud/project/${PROJECT}/ip/failover/${FIP}`, failover(SBG1, 'operationPending', 40))
      .get(`/cloud/project/${PROJECT}/ip/failover/${FIP}`, failover(SBG2))
    const log = new MemoryLogger()
    const result = await moveIp(options(testEnv()), log)
    expect(api.writes).toEqual([{ instanceId: SBG2 }])
    expect(result).toMatchObject({
      ip: `${IP}/32`,
      kind: 'cloud',
      outcome: 'moved',
      changed: true,
      from: { id: SBG1, name: 'bi-edge-sbg-1' },
      to: { id: SBG2, name: 'bi-edge-sbg-2' },
      project: { id: PROJECT, name: 't18s' },
      requests: 8,
    })
    expect(log.lines.at(-1)).toMatch(
      /^203\.0\.113\.10\/32 moved from bi-edge-sbg-1 .* to bi-edge-sbg-2 .* in \d+\.\d s$/,
    )
  })

  it('writes nothing when the IP is already on the target', async () => {
    const api = coldLookups(new OvhApi(), SBG2)
    const result = await moveIp(options(testEnv()), new MemoryLogger())
    expect(api.writes).toEqual([])
    expect(result).toMatchObject({ outcome: 'in-place', changed: false })
  })

  it('is warm on the second run: one read before the write', async () => {
    const env = testEnv()
    coldLookups(new OvhApi(), SBG2)
    await moveIp(options(env), new MemoryLogger())
    expect(nock.pendingMocks()).toEqual([])

    const api = new OvhApi()
      .get(`/cloud/project/${PROJECT}/ip/failover/${FIP}`, failover(SBG1))
      .post(`/cloud/project/${PROJECT}/ip/failover/${FIP}/attach`, failover(SBG1, 'operationPending'))
      .get(`/cloud/project/${PROJECT}/ip/failover/${FIP}`, failover(SBG2))
    const result = await moveIp(options(env), new MemoryLogger())
    expect(api.writes).toEqual([{ instanceId: SBG2 }])
    expect(result).toMatchObject({ outcome: 'moved', from: { id: SBG1, name: 'bi-edge-sbg-1' }, requests: 3 })
  })

  it('drops a cached id that the API no longer knows, and looks it up again', async () => {
    const env = testEnv()
    coldLookups(new OvhApi(), SBG2)
    await moveIp(options(env), new MemoryLogger())

    new OvhApi()
      .get(
        `/cloud/project/${PROJECT}/ip/failover/${FIP}`,
        reply(404, { message: 'The requested object does not exist' }),
      )
      .get(`/cloud/project/${PROJECT}/ip/failover`, [{ ...failover(SBG2), id: 'new-id' }])
    const result = await moveIp(options(env), new MemoryLogger())
    expect(result.outcome).toBe('in-place')
  })

  it('drops a cached instance id the API refuses (rebuilt under the same name) and moves to the new one', async () => {
    const env = testEnv()
    coldLookups(new OvhApi(), SBG2)
    await moveIp(options(env), new MemoryLogger())

    const REBUILT = '44444444-4444-4444-8444-444444444444'
    const attach = `/cloud/project/${PROJECT}/ip/failover/${FIP}/attach`
    const api = new OvhApi()
      .get(`/cloud/project/${PROJECT}/ip/failover/${FIP}`, failover(SBG1))
      .post(attach, reply(404, { message: `Instance ${SBG2} does not exist` }))
      .get(`/cloud/project/${PROJECT}/instance`, [instances[0], { ...instances[1], id: REBUILT }])
      .post(attach, failover(SBG1, 'operationPending'))
      .get(`/cloud/project/${PROJECT}/ip/failover/${FIP}`, failover(REBUILT))
    const result = await moveIp(options(env), new MemoryLogger())
    expect(api.writes).toEqual([{ instanceId: SBG2 }, { instanceId: REBUILT }])
    expect(result).toMatchObject({ outcome: 'moved', to: { id: REBUILT, name: 'bi-edge-sbg-2' } })

    // The cache now holds the new id: the next run asks for it directly.
    new OvhApi().get(`/cloud/project/${PROJECT}/ip/failover/${FIP}`, failover(REBUILT))
    expect(await moveIp(options(env), new MemoryLogger())).toMatchObject({ outcome: 'in-place', requests: 1 })
  })

  it('drops a cached project id the API no longer knows and looks the name up again', async () => {
    const env = testEnv()
    coldLookups(new OvhApi(), SBG2)
    await moveIp(options(env), new MemoryLogger())

    // Project t18s was deleted and made again: it has a new id.
    const gone = reply(404, { message: 'This service does not exist' })
    new OvhApi()
      .get(`/cloud/project/${PROJECT}/ip/failover/${FIP}`, gone)
      .get(`/cloud/project/${PROJECT}/ip/failover`, gone)
      .get('/cloud/project', [OTHER_PROJECT])
      .get(`/cloud/project/${OTHER_PROJECT}`, { project_id: OTHER_PROJECT, description: 't18s' })
      .get(`/cloud/project/${OTHER_PROJECT}/ip/failover`, [failover(SBG2)])
      .get(`/cloud/project/${OTHER_PROJECT}/instance`, instances)
    const result = await moveIp(options(env), new MemoryLogger())
    expect(result).toMatchObject({ outcome: 'in-place', project: { id: OTHER_PROJECT, name: 't18s' } })
  })

  it('waits for a pending operation, then decides again', async () => {
    const api = new OvhApi()
      .get('/cloud/project', [PROJECT])
      .get(`/cloud/project/${PROJECT}`, { description: 't18s' })
      .get(`/cloud/project/${PROJECT}/ip/failover`, [failover(SBG1, 'operationPending', 10)])
      .get(`/cloud/project/${PROJECT}/instance`, instances)
      .get(`/cloud/project/${PROJECT}/ip/failover/${FIP}`, failover(THIRD))
      .post(`/cloud/project/${PROJECT}/ip/failover/${FIP}/attach`, failover(THIRD, 'operationPending'))
      .get(`/cloud/project/${PROJECT}/ip/failover/${FIP}`, failover(SBG2))
    const log = new MemoryLogger()
    const result = await moveIp(options(testEnv()), log)
    expect(result).toMatchObject({ outcome: 'moved', from: { id: THIRD } })
    expect(api.writes).toHaveLength(1)
    expect(log.lines.join('\n')).toMatch(/already pending/)
  })

  it('--dry-run resolves and reads but never writes', async () => {
    const api = coldLookups(new OvhApi())
    const result = await moveIp(options(testEnv(), { dryRun: true }), new MemoryLogger())
    expect(result.outcome).toBe('would-move')
    expect(api.writes).toEqual([])
  })

  it('--no-wait returns once the write is accepted', async () => {
    const api = coldLookups(new OvhApi()).post(
      `/cloud/project/${PROJECT}/ip/failover/${FIP}/attach`,
      failover(SBG1, 'operationPending'),
    )
    const result = await moveIp(options(testEnv(), { wait: false }), new MemoryLogger())
    expect(result).toMatchObject({ outcome: 'accepted', changed: true })
    expect(api.writes).toHaveLength(1)
  })

  it('accepts a project id and an instance id without listing projects', async () => {
    const api = new OvhApi()
      .get(`/cloud/project/${PROJECT}/ip/failover`, [failover(SBG2)])
      .get(`/cloud/project/${PROJECT}/instance`, instances)
    const result = await moveIp(options(testEnv(), { project: PROJECT, instance: SBG2 }), new MemoryLogger())
    expect(result).toMatchObject({
      outcome: 'in-place',
      to: { id: SBG2, name: 'bi-edge-sbg-2' },
      requests: 2,
    })
    expect(api.writes).toEqual([])
  })

  it('finds the IP by its OVH id (ipmoveOvh’s -ip-id) without --ip', async () => {
    const api = new OvhApi()
      .get(`/cloud/project/${PROJECT}/ip/failover/${FIP}`, failover(SBG1))
      .get(`/cloud/project/${PROJECT}/instance`, instances)
      .post(`/cloud/project/${PROJECT}/ip/failover/${FIP}/attach`, failover(SBG1, 'operationPending'))
      .get(`/cloud/project/${PROJECT}/ip/failover/${FIP}`, failover(SBG2))
    const result = await moveIp(
      options(testEnv(), { ip: undefined, ipId: FIP, project: PROJECT }),
      new MemoryLogger(),
    )
    expect(result).toMatchObject({ ip: `${IP}/32`, outcome: 'moved', to: { id: SBG2 } })
    expect(api.writes).toEqual([{ instanceId: SBG2 }])
  })

  it('refuses --ip-id without --project, and --ip with a different --ip-id', async () => {
    const noProject = await failure(
      moveIp(options(testEnv(), { ip: undefined, ipId: FIP, project: undefined }), new MemoryLogger()),
    )
    expect(noProject.kind).toBe('usage')
    new OvhApi().get(`/cloud/project/${PROJECT}/ip/failover/${FIP}`, failover(SBG1))
    nock(ORIGIN).get(`/1.0/cloud/project/${PROJECT}/instance`).optionally().reply(200, instances)
    const mismatch = await failure(
      moveIp(options(testEnv(), { ip: '203.0.113.99', ipId: FIP, project: PROJECT }), new MemoryLogger()),
    )
    expect(mismatch.kind).toBe('usage')
    expect(mismatch.message).toMatch(/name different IPs/)
  })

  it('uses the metadata service when --instance is omitted', async () => {
    nock('http://169.254.169.254')
      .get('/openstack/latest/meta_data.json')
      .reply(200, { uuid: SBG2, name: 'bi-edge-sbg-2' })
    new OvhApi()
      .get('/cloud/project', [PROJECT])
      .get(`/cloud/project/${PROJECT}`, { description: 't18s' })
      .get(`/cloud/project/${PROJECT}/ip/failover`, [failover(SBG2)])
      .get(`/cloud/project/${PROJECT}/instance`, instances)
    const result = await moveIp(options(testEnv(), { instance: undefined }), new MemoryLogger())
    expect(result).toMatchObject({ outcome: 'in-place', to: { id: SBG2, name: 'bi-edge-sbg-2' } })
  })

  it('exits 2 before any API request when --instance is omitted and no metadata service answers', async () => {
    nock('http://169.254.169.254')
      .get('/openstack/latest/meta_data.json')
      .times(3)
      .replyWithError(Object.assign(new Error('connect EHOSTUNREACH'), { code: 'EHOSTUNREACH' }))
    const unexpected: string[] = []
    const count = (req: { path: string }) => unexpected.push(req.path)
    nock.emitter.on('no match', count)
    try {
      const error = await failure(moveIp(options(testEnv(), { instance: undefined }), new MemoryLogger()))
      expect(error.kind).toBe('usage')
      expect(error.message).toMatch(/--instance was omitted and this host's metadata service/)
      expect(unexpected).toEqual([])
    } finally {
      nock.emitter.off('no match', count)
    }
  })

  it('refuses an ambiguous instance name, naming the candidates (exit 4)', async () => {
    const api = new OvhApi()
      .get('/cloud/project', [PROJECT])
      .get(`/cloud/project/${PROJECT}`, { description: 't18s' })
      .get(`/cloud/project/${PROJECT}/ip/failover`, [failover(SBG1)])
      .get(`/cloud/project/${PROJECT}/instance`, [
        { id: SBG2, name: 'twin', region: 'SBG5' },
        { id: THIRD, name: 'twin', region: 'GRA11' },
      ])
    const error = await failure(moveIp(options(testEnv(), { instance: 'twin' }), new MemoryLogger()))
    expect(error.kind).toBe('not-found')
    expect(error.message).toContain(SBG2)
    expect(error.message).toContain(THIRD)
    expect(api.writes).toEqual([])
  })

  it('reports an unknown project (exit 4), naming the projects found', async () => {
    new OvhApi()
      .get('/cloud/project', [PROJECT, OTHER_PROJECT])
      .get(`/cloud/project/${PROJECT}`, { description: 't18s' })
      .get(`/cloud/project/${OTHER_PROJECT}`, { description: null })
    const error = await failure(moveIp(options(testEnv(), { project: 'nope' }), new MemoryLogger()))
    expect(error.kind).toBe('not-found')
    expect(error.message).toBe(
      `no Public Cloud project named "nope" among the 2 these credentials see: t18s (${PROJECT}), ${OTHER_PROJECT}`,
    )
  })

  it('says to add --project when a Public Cloud IP is given without it (exit 4), naming its project', async () => {
    const api = new OvhApi()
      .unknownClassicIp(`${IP}%2F32`)
      .get('/cloud/project', [OTHER_PROJECT, PROJECT])
      .get(`/cloud/project/${PROJECT}`, { description: 't18s' })
      .get(`/cloud/project/${OTHER_PROJECT}`, { description: 'staging' })
      .get(`/cloud/project/${OTHER_PROJECT}/ip/failover`, [])
      .get(`/cloud/project/${PROJECT}/ip/failover`, [failover(SBG1)])
    const error = await failure(
      moveIp(options(testEnv(), { project: undefined, instance: SBG2 }), new MemoryLogger()),
    )
    expect(error.kind).toBe('not-found')
    expect(error.message).toBe(
      `${IP}/32 is a Public Cloud failover IP of project t18s (${PROJECT}), not a classic one (/ip): add --project t18s`,
    )
    expect(api.writes).toEqual([])
  })

  it('names what it searched when an IP is nowhere (exit 4)', async () => {
    new OvhApi()
      .unknownClassicIp(`${IP}%2F32`)
      .get('/cloud/project', [PROJECT])
      .get(`/cloud/project/${PROJECT}`, { description: 't18s' })
      .get(`/cloud/project/${PROJECT}/ip/failover`, [])
    const nowhere = await failure(
      moveIp(options(testEnv(), { project: undefined, instance: SBG2 }), new MemoryLogger()),
    )
    expect(nowhere.message).toBe(
      `${IP}/32 is not a failover IP of this account: not in /ip, nor in the failover IPs of the 1 Public Cloud projects (t18s (${PROJECT}))`,
    )

    // Without the right to list projects, the advice stays.
    new OvhApi()
      .unknownClassicIp(`${IP}%2F32`)
      .get(
        '/cloud/project',
        reply(403, { message: 'This call has not been granted', errorCode: 'NOT_GRANTED_CALL' }),
      )
    const denied = await failure(
      moveIp(options(testEnv(), { project: undefined, instance: SBG2 }), new MemoryLogger()),
    )
    expect(denied.kind).toBe('not-found')
    expect(denied.message).toMatch(
      /is not a classic failover IP of this account \(\/ip\); for a Public Cloud failover IP, add --project/,
    )

    // With --project: the project's failover IPs, then /ip.
    new OvhApi()
      .get('/cloud/project', [PROJECT])
      .get(`/cloud/project/${PROJECT}`, { description: 't18s' })
      .get(`/cloud/project/${PROJECT}/ip/failover`, [
        { ...failover(SBG1), ip: '203.0.113.99', block: '203.0.113.99/32' },
      ])
      .get(`/cloud/project/${PROJECT}/instance`, instances)
      .unknownClassicIp(`${IP}%2F32`)
    const inProject = await failure(moveIp(options(testEnv()), new MemoryLogger()))
    expect(inProject.message).toBe(
      `${IP}/32 is neither a failover IP of project t18s (its failover IPs: 203.0.113.99/32) nor a classic failover IP of this account (/ip)`,
    )
  })

  it("names the project's instances when --instance matches none (exit 4)", async () => {
    coldLookups(new OvhApi())
    const error = await failure(moveIp(options(testEnv(), { instance: 'nope' }), new MemoryLogger()))
    expect(error.kind).toBe('not-found')
    expect(error.message).toBe(
      `no instance "nope" in project ${PROJECT}, by id or name (its instances: bi-edge-sbg-1, bi-edge-sbg-2, third)`,
    )
  })

  it('maps a refused write to exit 3 and keeps OVH’s words and query id', async () => {
    coldLookups(new OvhApi()).post(
      `/cloud/project/${PROJECT}/ip/failover/${FIP}/attach`,
      reply(403, { message: 'This call has not been granted', errorCode: 'NOT_GRANTED_CALL' }),
    )
    const error = await failure(moveIp(options(testEnv()), new MemoryLogger()))
    expect(error.kind).toBe('auth')
    expect(error.message).toMatch(/This call has not been granted \(query EU\.test\.[0-9a-f]+\)/)
    expect(error.message).not.toContain(CONSUMER_KEY)
  })

  it('retries transient read failures (503, 429 with Retry-After) and succeeds', async () => {
    const again = new OvhApi()
      .get(`/cloud/project/${PROJECT}/ip/failover`, reply(503, { message: 'Service Unavailable' }))
      .get(`/cloud/project/${PROJECT}/ip/failover`, [failover(SBG2)])
    again.scope
      .get(`/1.0/cloud/project/${PROJECT}/instance`)
      .reply(429, { message: 'slow down' }, { 'Retry-After': '1' })
    again.get(`/cloud/project/${PROJECT}/instance`, instances)
    const started = Date.now()
    const result = await moveIp(options(testEnv(), { project: PROJECT }), new MemoryLogger())
    expect(result).toMatchObject({ outcome: 'in-place', requests: 4 })
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000)
  })

  it('gives up with exit 8 when the API keeps failing', async () => {
    new OvhApi().get(`/cloud/project/${PROJECT}/ip/failover`, reply(502, { message: 'Bad Gateway' }), 5)
    nock('https://eu.api.ovh.com')
      .get(`/1.0/cloud/project/${PROJECT}/instance`)
      .optionally()
      .reply(200, instances)
    const error = await failure(moveIp(options(testEnv(), { project: PROJECT }), new MemoryLogger()))
    expect(error.kind).toBe('unreachable')
    expect(error.message).toMatch(/HTTP 502/)
  })

  it('times out with exit 5 when the operation never finishes', async () => {
    coldLookups(new OvhApi()).post(
      `/cloud/project/${PROJECT}/ip/failover/${FIP}/attach`,
      failover(SBG1, 'operationPending'),
    )
    nock('https://eu.api.ovh.com')
      .persist()
      .get(`/1.0/cloud/project/${PROJECT}/ip/failover/${FIP}`)
      .reply(200, failover(SBG1, 'operationPending', 50))
    const error = await failure(moveIp(options(testEnv(), { timeoutMs: 800 }), new MemoryLogger()))
    expect(error.kind).toBe('timeout')
    expect(error.message).toMatch(/last seen: status operationPending, 50%/)
  })

  it('exits 6 when another node moves the IP elsewhere while ours runs', async () => {
    const api = coldLookups(new OvhApi())
      .post(`/cloud/project/${PROJECT}/ip/failover/${FIP}/attach`, failover(SBG1, 'operationPending'))
      .get(`/cloud/project/${PROJECT}/ip/failover/${FIP}`, failover(THIRD))
    const error = await failure(moveIp(options(testEnv()), new MemoryLogger()))
    expect(error.kind).toBe('superseded')
    expect(error.message).toMatch(/third/)
    expect(api.writes).toHaveLength(1)
  })

  it('does not write twice when a reset write did land', async () => {
    const api = coldLookups(new OvhApi())
    api.scope
      .post(`/1.0/cloud/project/${PROJECT}/ip/failover/${FIP}/attach`)
      .replyWithError(connectionReset())
    api
      .get(`/cloud/project/${PROJECT}/ip/failover/${FIP}`, failover(SBG1, 'operationPending'))
      .get(`/cloud/project/${PROJECT}/ip/failover/${FIP}`, failover(SBG2))
    const log = new MemoryLogger()
    const result = await moveIp(options(testEnv()), log)
    expect(result.outcome).toBe('moved')
    expect(log.lines.join('\n')).toMatch(/may not have reached/)
  })

  it('writes again when a reset write did not land', async () => {
    const api = coldLookups(new OvhApi())
    api.scope
      .post(`/1.0/cloud/project/${PROJECT}/ip/failover/${FIP}/attach`)
      .replyWithError(connectionReset())
    api
      .get(`/cloud/project/${PROJECT}/ip/failover/${FIP}`, failover(SBG1))
      .post(`/cloud/project/${PROJECT}/ip/failover/${FIP}/attach`, failover(SBG1, 'operationPending'))
      .get(`/cloud/project/${PROJECT}/ip/failover/${FIP}`, failover(SBG2))
    const result = await moveIp(options(testEnv()), new MemoryLogger())
    expect(result.outcome).toBe('moved')
    expect(api.writes).toEqual([{ instanceId: SBG2 }])
  })

  for (const [status, what, kind] of [
    [502, 'a failure that may have landed', 'ambiguous-write'],
    [503, 'a refusal', 'unreachable'],
  ] as const) {
    it(`sends at most two move requests when every one meets ${what} (HTTP ${status})`, async () => {
      const api = coldLookups(new OvhApi())
      const attach = `/1.0/cloud/project/${PROJECT}/ip/failover/${FIP}/attach`
      let posts = 0
      api.scope
        .persist()
        .post(attach)
        .reply(() => {
          posts++
          return [status, { message: 'Bad Gateway' }]
        })
      // Each re-read shows the write had no effect.
      api.scope.persist().get(`/1.0/cloud/project/${PROJECT}/ip/failover/${FIP}`).reply(200, failover(SBG1))
      const error = await failure(moveIp(options(testEnv(), { timeoutMs: 5_000 }), new MemoryLogger()))
      expect(error.kind).toBe(kind)
      expect(error.message).toMatch(/gave up after 2 move requests, the most ipmove sends in one run$/)
      expect(posts).toBe(2)
    })
  }

  it('after a "busy" refusal, waits out the other operation and takes the IP (second request)', async () => {
    const attach = `/cloud/project/${PROJECT}/ip/failover/${FIP}/attach`
    const read = `/cloud/project/${PROJECT}/ip/failover/${FIP}`
    const api = coldLookups(new OvhApi())
      .post(attach, reply(409, { message: 'An operation is already in progress' }))
      .get(read, failover(THIRD, 'operationPending', 50))
      .get(read, failover(THIRD))
      .post(attach, failover(THIRD, 'operationPending'))
      .get(read, failover(SBG2))
    const result = await moveIp(options(testEnv()), new MemoryLogger())
    expect(result).toMatchObject({ outcome: 'moved', from: { id: THIRD }, to: { id: SBG2 } })
    expect(api.writes).toEqual([{ instanceId: SBG2 }, { instanceId: SBG2 }])
  })

  it('asks /auth/time again when a cached clock delta is refused', async () => {
    const env = testEnv()
    coldLookups(new OvhApi(), SBG2)
    await moveIp(options(env), new MemoryLogger())
    // The cached delta is now wrong by an hour: the API refuses the signature once.
    const { FileCache } = await import('../src/cache.js')
    const { readdirSync } = await import('node:fs')
    const dir = env.IPMOVE_CACHE_DIR as string
    const cache = new FileCache(`${dir}/${readdirSync(dir)[0]}`)
    cache.set('time-delta', '3600')
    cache.save()
    new OvhApi().time().get(`/cloud/project/${PROJECT}/ip/failover/${FIP}`, failover(SBG2), 2)
    const result = await moveIp(options(env), new MemoryLogger())
    expect(result.outcome).toBe('in-place')
  })
})

describe('answers the OVH API would not give (exit 9)', () => {
  const byId = { project: PROJECT, instance: SBG2 }
  const wrong: Array<[string, ReturnType<typeof reply>, RegExp]> = [
    ['an HTML page', reply(200, '<html><body>Bad Gateway</body></html>'), /an HTML page/],
    ['an empty 200', reply(200, ''), /an empty answer/],
    ['an empty 204', reply(204, ''), /HTTP 204, an empty answer/],
    ['null', reply(200, 'null'), /null/],
    ['{}', reply(200, {}), /an object without the expected fields/],
    ['a string', reply(200, '"203.0.113.10"'), /a JSON string/],
    ['a list of something else', reply(200, [1, 2]), /a list of something else/],
  ]
  for (const [what, answer, says] of wrong) {
    it(`says so when a list of failover IPs is ${what}`, async () => {
      new OvhApi()
        .get(`/cloud/project/${PROJECT}/ip/failover`, answer)
        .get(`/cloud/project/${PROJECT}/instance`, instances)
      const error = await failure(moveIp(options(testEnv(), byId), new MemoryLogger()))
      expect(error.kind).toBe('unexpected')
      expect(error.message).toMatch(
        /^OVH API GET \/cloud\/project\/[0-9a-f]+\/ip\/failover: the API answered something unexpected \(HTTP 20[04], /,
      )
      expect(error.message).toMatch(says)
      expect(error.message).toMatch(/instead of a list of failover IPs\)$/)
    })

    it(`writes once and stops when the attach answers ${what}`, async () => {
      const api = coldLookups(new OvhApi()).post(
        `/cloud/project/${PROJECT}/ip/failover/${FIP}/attach`,
        answer,
      )
      const error = await failure(moveIp(options(testEnv()), new MemoryLogger()))
      expect(error.kind).toBe('unexpected')
      expect(error.message).toMatch(says)
      expect(api.writes).toHaveLength(1)
    })
  }

  it('reads projects, instances and classic IPs with care too', async () => {
    new OvhApi().get('/cloud/project', reply(200, { projects: [PROJECT] }))
    const projects = await failure(moveIp(options(testEnv()), new MemoryLogger()))
    expect(projects.message).toMatch(/instead of a list of project ids/)

    new OvhApi()
      .get(`/cloud/project/${PROJECT}/ip/failover`, [failover(SBG2)])
      .get(`/cloud/project/${PROJECT}/instance`, [{ id: SBG2 }])
    const list = await failure(moveIp(options(testEnv(), { project: PROJECT }), new MemoryLogger()))
    expect(list.message).toMatch(/instead of a list of instances/)

    const block = encodeURIComponent('198.51.100.7/32')
    const moveClassic = () =>
      failure(
        moveIp(
          options(testEnv(), { ip: '198.51.100.7', project: undefined, instance: 'ns2' }),
          new MemoryLogger(),
        ),
      )
    // The pending tasks are read first, the routing after them.
    const taskLists = (doing: string | number[]) =>
      new OvhApi()
        .get(`/ip/${block}/task?function=genericMoveFloatingIp&status=init`, [])
        .get(`/ip/${block}/task?function=genericMoveFloatingIp&status=todo`, [])
        .get(`/ip/${block}/task?function=genericMoveFloatingIp&status=doing`, doing)
    taskLists('')
    const tasks = await moveClassic()
    taskLists([]).get(`/ip/${block}`, reply(200, { routedTo: 'ns1' }))
    const routing = await moveClassic()
    for (const e of [projects, list, tasks, routing]) expect(e.kind).toBe('unexpected')
  })
})

/** The clock delta a run left in the account's cache, in seconds. */
async function cachedDelta(env: NodeJS.ProcessEnv): Promise<number> {
  const { FileCache } = await import('../src/cache.js')
  const { readdirSync } = await import('node:fs')
  const dir = env.IPMOVE_CACHE_DIR as string
  return Number(new FileCache(`${dir}/${readdirSync(dir)[0]}`).get('time-delta'))
}

describe('a host clock off the API’s (HTTP 400 QUERY_TIME_OUT)', () => {
  const byId = { project: PROJECT, instance: SBG2 }
  for (const skew of [120, -120, 3600, -3600]) {
    it(`recovers cold from a skew of ${skew} s: asks /auth/time once, re-signs, caches the delta`, async () => {
      const env = testEnv()
      // Both look-ups go out side by side, are refused, and are sent again once.
      new OvhApi(skew)
        .time()
        .get(`/cloud/project/${PROJECT}/ip/failover`, [failover(SBG2)], 2)
        .get(`/cloud/project/${PROJECT}/instance`, instances, 2)
      const result = await moveIp(options(env, byId), new MemoryLogger())
      expect(result).toMatchObject({ outcome: 'in-place', requests: 5 })
      expect(Math.abs((await cachedDelta(env)) - skew)).toBeLessThanOrEqual(1)

      // The next run signs right at once: no refusal, no /auth/time.
      new OvhApi(skew).get(`/cloud/project/${PROJECT}/ip/failover/${FIP}`, failover(SBG2))
      expect(await moveIp(options(env, byId), new MemoryLogger())).toMatchObject({ requests: 1 })
    })

    it(`recovers with a stale cached delta (${-skew} s) when the API is ${skew} s off`, async () => {
      const env = testEnv()
      new OvhApi(-skew)
        .time()
        .get(`/cloud/project/${PROJECT}/ip/failover`, [failover(SBG2)], 2)
        .get(`/cloud/project/${PROJECT}/instance`, instances, 2)
      await moveIp(options(env, byId), new MemoryLogger())
      expect(Math.abs((await cachedDelta(env)) + skew)).toBeLessThanOrEqual(1)

      const api = new OvhApi(skew)
        .time()
        .get(`/cloud/project/${PROJECT}/ip/failover/${FIP}`, failover(SBG1), 2)
        .post(`/cloud/project/${PROJECT}/ip/failover/${FIP}/attach`, failover(SBG2))
      const result = await moveIp(options(env, byId), new MemoryLogger())
      expect(result).toMatchObject({ outcome: 'moved', requests: 4 })
      expect(api.writes).toEqual([{ instanceId: SBG2 }])
      expect(Math.abs((await cachedDelta(env)) - skew)).toBeLessThanOrEqual(1)
    })
  }

  it('exits 3, asking /auth/time once, when the API still refuses the corrected time', async () => {
    new OvhApi(600)
      .get(`/cloud/project/${PROJECT}/ip/failover`, [failover(SBG2)], 2)
      .get(`/cloud/project/${PROJECT}/instance`, instances, 2)
      .scope.get('/1.0/auth/time')
      .reply(200, () => String(Math.round(Date.now() / 1000)))
    const error = await failure(moveIp(options(testEnv(), byId), new MemoryLogger()))
    expect(error.kind).toBe('auth')
    expect(error.message).toMatch(/Query out of time/)
  })
})

describe('move of a classic failover IP', () => {
  const BLOCK = '198.51.100.7%2F32'
  const tasks = (api: OvhApi, ids: Record<string, number[]> = {}) => {
    for (const status of ['init', 'todo', 'doing']) {
      api.get(`/ip/${BLOCK}/task?function=genericMoveFloatingIp&status=${status}`, ids[status] ?? [])
    }
    return api
  }

  it('posts /ip/{block}/move and follows the task until done', async () => {
    const api = tasks(
      new OvhApi().get(`/ip/${BLOCK}`, { ip: '198.51.100.7/32', routedTo: { serviceName: 'ns1' } }),
    )
      .post(`/ip/${BLOCK}/move`, { taskId: 42, status: 'todo', function: 'genericMoveFloatingIp' })
      .get(`/ip/${BLOCK}/task/42`, { taskId: 42, status: 'doing' })
      .get(`/ip/${BLOCK}`, { routedTo: { serviceName: 'ns1' } })
      .get(`/ip/${BLOCK}/task/42`, { taskId: 42, status: 'done' })
      .get(`/ip/${BLOCK}`, { routedTo: { serviceName: 'ns2' } })
    const result = await moveIp(
      options(testEnv(), { ip: '198.51.100.7', project: undefined, instance: 'ns2' }),
      new MemoryLogger(),
    )
    expect(api.writes).toEqual([{ to: 'ns2' }])
    expect(result).toMatchObject({
      kind: 'classic',
      outcome: 'moved',
      from: { id: 'ns1' },
      to: { id: 'ns2' },
    })
  })

  it('waits for a pending move task before deciding', async () => {
    const api = tasks(new OvhApi().get(`/ip/${BLOCK}`, { routedTo: { serviceName: 'ns1' } }), { todo: [7] })
    tasks(api.get(`/ip/${BLOCK}`, { routedTo: { serviceName: 'ns2' } }))
    const result = await moveIp(
      options(testEnv(), { ip: '198.51.100.7/32', project: undefined, instance: 'ns2' }),
      new MemoryLogger(),
    )
    expect(result.outcome).toBe('in-place')
    expect(api.writes).toEqual([])
  })

  it('reads the task before the routing, so a task that ends between the two reads is not taken for a move with no effect', async () => {
    // The move ends the moment the API is asked about its task: a routing read made
    // side by side with the task read could still show ns1 beside a "done" task.
    let done = false
    const api = tasks(new OvhApi().get(`/ip/${BLOCK}`, { routedTo: { serviceName: 'ns1' } }))
      .post(`/ip/${BLOCK}/move`, { taskId: 44, status: 'todo' })
      .get(`/ip/${BLOCK}/task/44`, () => {
        done = true
        return { taskId: 44, status: 'done' }
      })
      .get(`/ip/${BLOCK}`, () => ({ routedTo: { serviceName: done ? 'ns2' : 'ns1' } }))
    const result = await moveIp(
      options(testEnv(), { ip: '198.51.100.7', project: undefined, instance: 'ns2' }),
      new MemoryLogger(),
    )
    expect(api.writes).toEqual([{ to: 'ns2' }])
    expect(result).toMatchObject({ outcome: 'moved', from: { id: 'ns1' }, to: { id: 'ns2' } })
  })

  it('fails when the task ends in error', async () => {
    tasks(new OvhApi().get(`/ip/${BLOCK}`, { routedTo: { serviceName: 'ns1' } }))
      .post(`/ip/${BLOCK}/move`, { taskId: 43, status: 'todo' })
      .get(`/ip/${BLOCK}/task/43`, { taskId: 43, status: 'ovhError', comment: 'destination refused' })
    const error = await failure(
      moveIp(
        options(testEnv(), { ip: '198.51.100.7', project: undefined, instance: 'ns2' }),
        new MemoryLogger(),
      ),
    )
    expect(error.kind).toBe('provider-failed')
    expect(error.message).toMatch(/task 43 .* ovhError: destination refused/)
  })
})

describe('status', () => {
  it('reports holder and pending state without writing', async () => {
    const api = new OvhApi()
      .get(`/cloud/project/${PROJECT}/ip/failover`, [failover(SBG1, 'operationPending', 30)])
      .get(`/cloud/project/${PROJECT}/instance`, instances)
    const result = await ipStatus({ ip: IP, project: PROJECT, env: testEnv() }, new MemoryLogger())
    expect(result).toMatchObject({
      holder: { id: SBG1, name: 'bi-edge-sbg-1' },
      pending: true,
      progress: 30,
      kind: 'cloud',
      roundTrips: 1,
    })
    expect(api.writes).toEqual([])
  })
})

describe('bad input', () => {
  const cases: [string, Partial<MoveOptions>][] = [
    ['a malformed IP', { ip: '203.0.113.300' }],
    ['a short-form IPv4', { ip: '127.1' }],
    ['an IP with host bits and a prefix', { ip: '203.0.113.10/24' }],
    ['shell metacharacters in the instance', { instance: 'web; rm -rf /' }],
    ['a quote in the project', { project: "t18s'" }],
    ['an empty instance', { instance: '' }],
    ['a huge value', { instance: 'a'.repeat(10_000) }],
    ['an invalid interface', { interface: 'eth0; reboot' }],
    ['an unknown provider', { provider: 'nowhere' }],
    ['a classic IP without --instance', { project: undefined, instance: undefined }],
  ]
  for (const [what, extra] of cases) {
    it(`exits 2 before any request for ${what}`, async () => {
      // No interceptor: nock reports every request, the metadata service's included.
      const requests: string[] = []
      const record = (req: { path?: string }) => requests.push(req.path ?? '?')
      nock.emitter.on('no match', record)
      try {
        const error = await failure(moveIp(options(testEnv(), extra), new MemoryLogger()))
        expect(error.kind).toBe('usage')
        expect(error.message.split('\n')).toHaveLength(1)
        // A Public Cloud user who forgot --project is told so, not only about classic IPs.
        if (what === 'a classic IP without --instance') expect(error.message).toContain('add --project')
        await new Promise((resolve) => setTimeout(resolve, 20)) // let a stray request surface
        expect(requests).toEqual([])
      } finally {
        nock.emitter.removeListener('no match', record)
      }
    })
  }
})
