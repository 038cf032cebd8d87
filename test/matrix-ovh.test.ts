/**
 * The fault matrix for OVH: Public Cloud failover IPs (attach) and classic
 * failover IPs (/ip/{block}/move and its task), the built CLI against the OVH
 * emulator. Each row: the faults, the command's extra arguments, --timeout, the
 * exit code, where the IP ends up, and (where it matters) how many move requests
 * went out. See helpers/matrix.ts for what every row also checks.
 */
import { beforeAll, describe } from 'vitest'
import { OVH_IDS } from '../emulator/ovh/fixture.js'
import { type OvhEmulatorOptions, type RunningOvhEmulator, startOvhEmulator } from '../emulator/ovh/server.js'
import { ipmove, isolatedEnv, requireBuild } from './helpers/cli.js'
import {
  type EmulatorState,
  faultBody,
  HTML,
  type MatrixCase,
  type MatrixKind,
  matrix,
  matrixRow,
} from './helpers/matrix.js'

type Case = MatrixCase<RunningOvhEmulator, OvhEmulatorOptions>

const { sbg1, sbg2, twinA } = OVH_IDS.instances
const { ns1, ns2 } = OVH_IDS.dedicatedServers
const CLOUD_IP = '203.0.113.10'

interface StateProject {
  id: string
  description: string
  instances: Array<{ id: string }>
  failoverIps: Array<{ id: string; ip: string; routedTo: string }>
}

const projectOf = (state: EmulatorState) =>
  (state.projects as StateProject[]).find((p) => p.description === 't18s')!

const cloud: MatrixKind<RunningOvhEmulator, OvhEmulatorOptions> = {
  name: 'OVH Public Cloud',
  start: (options) => startOvhEmulator({ pendingMs: 300, ...options }),
  command: (target) => ['--project', 't18s', '--ip', CLOUD_IP, '--instance', target],
  target: 'bi-edge-sbg-2',
  from: sbg1,
  to: sbg2,
  holder: (state) => projectOf(state).failoverIps.find((f) => f.ip === CLOUD_IP)?.routedTo,
  isWrite: (r) => r.method === 'POST' && /\/attach$/.test(r.path),
  knownIds: (state) =>
    new Set(
      (state.projects as StateProject[]).flatMap((p) => [
        p.id,
        ...p.instances.map((i) => i.id),
        ...p.failoverIps.map((f) => f.id),
      ]),
    ),
}

const classic: MatrixKind<RunningOvhEmulator, OvhEmulatorOptions> = {
  name: 'OVH classic',
  start: (options) => startOvhEmulator({ pendingMs: 300, ...options }),
  command: (target) => ['--ip', '198.51.100.7/32', '--instance', target],
  target: ns2,
  from: ns1,
  to: ns2,
  holder: (state) => (state.classicIps as Array<{ routedTo: string }>)[0]?.routedTo,
  isWrite: (r) => r.method === 'POST' && /\/move$/.test(r.path),
  knownIds: () => new Set(),
}

const CACHED_IDS = /^(project|instance|failover):/

// Paths as the emulator's faults match them (below /1.0).
const PROJECTS = '/cloud/project'
const PROJECT = '/cloud/project/*'
const INSTANCES = '/cloud/project/*/instance'
const FIPS = '/cloud/project/*/ip/failover'
const FIP = '/cloud/project/*/ip/failover/*'
const ATTACH = '/cloud/project/*/ip/failover/*/attach,method=POST'
const BLOCK = '/ip/*'
const TASKS = '/ip/*/task'
const TASK = '/ip/*/task/*'
const MOVE = '/ip/*/move,method=POST'

/** An OAuth2 service account instead of the application key. */
const OAUTH2 = {
  OVH_CLIENT_ID: 'emulator-client',
  OVH_CLIENT_SECRET: 'emulator-client-secret',
  OVH_APPLICATION_KEY: null,
  OVH_APPLICATION_SECRET: null,
  OVH_CONSUMER_KEY: null,
}

/** Another client's run, on another host (its own lock and cache). */
async function otherClient(emulator: RunningOvhEmulator, args: string[]): Promise<void> {
  const run = await ipmove([...args, '--no-wait', '--json'], isolatedEnv(emulator.env))
  if (run.code !== 0) throw new Error(`the other client failed: ${run.stderr}`)
}

/** Fill the cache as an earlier run would have: project, failover and instance ids. */
async function warmCache(_emulator: RunningOvhEmulator, env: NodeJS.ProcessEnv): Promise<void> {
  const run = await ipmove([...cloud.command(cloud.target), '--dry-run', '--json'], env)
  if (run.code !== 0) throw new Error(`warming the cache failed: ${run.stderr}`)
}

const REBUILT = 'c1a5e0b2-0000-4000-8000-00000000beef'

const row = matrixRow<RunningOvhEmulator, OvhEmulatorOptions>

// biome-ignore format: a matrix reads best one row per line
const cloudCases: Case[] = [
  // 5xx on reads: retried.
  row('500 once on the project list', [`path=${PROJECTS},status=500`], 10, 0, 'to'),
  row('502 once on the project', [`path=${PROJECT},status=502`], 10, 0, 'to'),
  row('503 twice on the failover list', [`path=${FIPS},status=503,times=2`], 10, 0, 'to'),
  row('502 HTML page once on the instance list', [`path=${INSTANCES},status=502,${HTML}`], 10, 0, 'to'),
  row('503 forever on the project list', [`path=${PROJECTS},status=503,times=0`], 10, 8, 'from', 0),
  row('500 forever on the failover list', [`path=${FIPS},status=500,times=0`], 10, 8, 'from', 0),
  row('500 once while polling', [`path=${FIP},method=GET,status=500`], 10, 0, 'to', 1),
  // 429: with and without Retry-After.
  row('429 with Retry-After once on the project list', [`path=${PROJECTS},status=429,retry-after=1`], 10, 0, 'to'),
  row('429 without Retry-After twice on the failover list', [`path=${FIPS},status=429,times=2`], 10, 0, 'to'),
  row('429 forever on every read', ['method=GET,status=429,times=0'], 10, 8, 'from', 0),
  row('429 forever, Retry-After longer than --timeout', ['method=GET,status=429,retry-after=30,times=0'], 3, 5, 'from', 0),
  // Faults on the write: at most two move requests, the second only when the first had no effect.
  row('503 once on the attach', [`path=${ATTACH},status=503`], 10, 0, 'to', 2),
  row('429 with Retry-After once on the attach', [`path=${ATTACH},status=429,retry-after=1`], 10, 0, 'to', 2),
  row('500 once on the attach (not applied)', [`path=${ATTACH},status=500`], 10, 0, 'to', 2),
  row('502 forever on the attach', [`path=${ATTACH},status=502,times=0`], 10, 8, 'from', 2),
  row('409 once on the attach', [`path=${ATTACH},status=409`], 10, 0, 'to', 2),
  row('409 forever on the attach', [`path=${ATTACH},status=409,times=0`], 10, 6, 'from', 2),
  // Resets and silence.
  row('reset once on the project list', [`path=${PROJECTS},reset`], 10, 0, 'to'),
  {
    name: 'reset before the write',
    faults: [`path=${ATTACH},reset`],
    timeout: 10,
    exit: 0,
    holder: 'to',
    writes: 2,
  },
  row('reset after the write landed', [`path=${ATTACH},reset-after`], 10, 0, 'to', 1),
  row('reset once while polling', [`path=${FIP},method=GET,reset`], 10, 0, 'to', 1),
  row('hang on the first read', [`path=${PROJECTS},hang`], 2, 5, 'from', 0),
  row('hang on the attach', [`path=${ATTACH},hang`], 2, 5, 'from', 1),
  row('hang on every poll', [`path=${FIP},method=GET,hang,times=0`], 2, 5, 'to', 1),
  row('slow answers (400 ms each)', ['slow=400,times=0'], 10, 0, 'to', 1),
  row('a slow drip on the failover list', [`path=${FIPS},drip=200`], 2, 5, 'from', 0),
  row('a drip that finishes in time', [`path=${PROJECT},drip=3`], 10, 0, 'to'),
  // Answers ipmove cannot use: exit 9, nothing written after them.
  row('malformed JSON for the failover list', [`path=${FIPS},${faultBody('[{"id": "5e0b')}`], 5, 9, 'from', 0),
  row('an HTML page with 200 for the project list', [`path=${PROJECTS},${HTML}`], 5, 9, 'from', 0),
  row('an empty 200 for the project', [`path=${PROJECT},${faultBody('')}`], 5, 9, 'from', 0),
  row('null for the instance list', [`path=${INSTANCES},${faultBody('null')}`], 5, 9, 'from', 0),
  row('a string where the failover list belongs', [`path=${FIPS},${faultBody('"5e0b8f1a"')}`], 5, 9, 'from', 0),
  row('{} for the attach (not applied)', [`path=${ATTACH},${faultBody('{}')}`], 5, 9, 'from', 1),
  row('a wrong-shape poll answer', [`path=${FIP},method=GET,${faultBody('{"routedTo": 42}')}`], 5, 9, 'to', 1),
  row('a 5 MiB failover list', [`path=${FIPS},size=5`], 5, 9, 'from', 0),
  row('a 5 MiB poll answer', [`path=${FIP},method=GET,size=5`], 5, 9, 'to', 1),
  // Credentials.
  row('an expired (unknown) consumer key', [], 5, 3, 'from', 0, { env: { OVH_CONSUMER_KEY: 'expired-consumer-key-0001' } }),
  row('a wrong application secret', [], 5, 3, 'from', 0, { env: { OVH_APPLICATION_SECRET: 'not-the-secret' } }),
  row('a consumer key refused the attach', [], 5, 3, 'from', 1, { env: { OVH_CONSUMER_KEY: 'emulator-ck-readonly' } }),
  row('403 on the project list', [`path=${PROJECTS},status=403`], 5, 3, 'from', 0),
  {
    name: 'a refused OAuth2 client secret',
    env: {
      OVH_CLIENT_ID: 'emulator-client',
      OVH_CLIENT_SECRET: 'wrong',
      OVH_APPLICATION_KEY: null,
      OVH_APPLICATION_SECRET: null,
      OVH_CONSUMER_KEY: null,
    },
    timeout: 5,
    exit: 3,
    holder: 'from',
    writes: 0,
  },
  row('a malformed /auth/time while the clock is off', [`path=/auth/time,${faultBody('"soon"')}`], 5, 9, 'from', 0, { emulator: { clockSkewSeconds: 120 } }),
  row('500 forever on /auth/time while the clock is off', ['path=/auth/time,status=500,times=0'], 10, 8, 'from', 0, { emulator: { clockSkewSeconds: 120 } }),
  // OAuth2 service accounts: the token request is no move, and is retried like a read.
  row('OAuth2: reset once on the token request', ['path=/auth/oauth2/token,reset'], 10, 0, 'to', 1, { env: OAUTH2 }),
  row('OAuth2: 503 once on the token request', ['path=/auth/oauth2/token,status=503'], 10, 0, 'to', 1, { env: OAUTH2 }),
  row('OAuth2: a malformed token answer', [`path=/auth/oauth2/token,${faultBody('{"access_token": 42}')}`], 5, 9, 'from', 0, { env: OAUTH2 }),
  row('OAuth2: an HTML page for the token', [`path=/auth/oauth2/token,${HTML}`], 5, 9, 'from', 0, { env: OAUTH2 }),
  row('400 on the attach (the provider refused the move)', [`path=${ATTACH},status=400`], 5, 1, 'from', 1),
  row('401 on the attach', [`path=${ATTACH},status=401`], 5, 3, 'from', 1),
  row('a slow drip on the attach (the write landed)', [`path=${ATTACH},drip=300`], 2, 5, 'to', 1),
  // Cached ids the API no longer knows: dropped, looked up again, in the same run.
  {
    name: '404 of the cached instance id (rebuilt under its name)',
    before: async (emulator, env) => {
      await warmCache(emulator, env)
      emulator.state.projects[0]!.instances.find((i) => i.id === sbg2)!.id = REBUILT
    },
    timeout: 10,
    exit: 0,
    holder: REBUILT,
    converges: () => REBUILT,
  },
  {
    name: '404 of the cached failover IP id',
    before: async (emulator, env) => {
      await warmCache(emulator, env)
      emulator.state.projects[0]!.failoverIps[0]!.id = 'a0a0a0a0-1111-4222-8333-444455556666'
    },
    timeout: 10,
    exit: 0,
    holder: 'to',
    writes: 1,
  },
  {
    name: '404 of the cached project id',
    before: async (emulator, env) => {
      await warmCache(emulator, env)
      emulator.state.projects[0]!.id = '0f0f0f0f0f0f4f0f8f0f0f0f0f0f0f0f'
    },
    timeout: 10,
    exit: 0,
    holder: 'to',
    writes: 1,
  },
  // Another operation pending on the IP.
  {
    name: 'an attach by another client still pending',
    emulator: { pendingMs: 2500 },
    before: (emulator) => otherClient(emulator, cloud.command(twinA)),
    timeout: 10,
    exit: 0,
    holder: 'to',
    writes: 1,
  },
  {
    name: 'an operation pending that never ends',
    before: async (emulator) => {
      const ip = emulator.state.projects[0]!.failoverIps[0]!
      ip.status = 'operationPending'
      ip.pending = { target: twinA, startedAt: Date.now(), doneAt: Number.POSITIVE_INFINITY }
    },
    timeout: 2,
    exit: 5,
    holder: 'from',
    writes: 0,
    between: (emulator) => {
      const ip = emulator.state.projects[0]!.failoverIps[0]!
      ip.status = 'ok'
      ip.pending = undefined
    },
  },
  // The API's clock off ours, both ways: recovered through /auth/time.
  row('clock skew +2 min', [], 10, 0, 'to', 1, { emulator: { clockSkewSeconds: 120 } }),
  row('clock skew -2 min', [], 10, 0, 'to', 1, { emulator: { clockSkewSeconds: -120 } }),
  row('clock skew +1 h', [], 10, 0, 'to', 1, { emulator: { clockSkewSeconds: 3600 } }),
  row('clock skew -1 h', [], 10, 0, 'to', 1, { emulator: { clockSkewSeconds: -3600 } }),
  {
    name: 'clock skew flipped after the delta was cached',
    emulator: { clockSkewSeconds: 300 },
    before: async (emulator, env) => {
      await warmCache(emulator, env)
      emulator.state.clockSkewSeconds = -300
    },
    timeout: 10,
    exit: 0,
    holder: 'to',
    writes: 1,
  },
]

// biome-ignore format: a matrix reads best one row per line
const classicCases: Case[] = [
  row('500 once on the IP', [`path=${BLOCK},status=500`], 10, 0, 'to', 1),
  row('502 once on a task list', [`path=${TASKS},status=502`], 10, 0, 'to', 1),
  row('503 twice on the IP', [`path=${BLOCK},status=503,times=2`], 10, 0, 'to', 1),
  row('502 HTML page once on the task', [`path=${TASK},status=502,${HTML}`], 10, 0, 'to', 1),
  row('503 forever on the IP', [`path=${BLOCK},status=503,times=0`], 10, 8, 'from', 0),
  row('500 forever on the task', [`path=${TASK},status=500,times=0`], 10, 8, 'to', 1),
  row('429 with Retry-After once on the IP', [`path=${BLOCK},status=429,retry-after=1`], 10, 0, 'to'),
  row('429 without Retry-After twice on the task lists', [`path=${TASKS},status=429,times=2`], 10, 0, 'to'),
  row('429 forever on every read', ['method=GET,status=429,times=0'], 10, 8, 'from', 0),
  row('503 once on the move', [`path=${MOVE},status=503`], 10, 0, 'to', 2),
  row('429 once on the move', [`path=${MOVE},status=429`], 10, 0, 'to', 2),
  row('500 once on the move (not applied)', [`path=${MOVE},status=500`], 10, 0, 'to', 2),
  row('502 forever on the move', [`path=${MOVE},status=502,times=0`], 10, 8, 'from', 2),
  row('409 once on the move', [`path=${MOVE},status=409`], 10, 0, 'to', 2),
  row('409 forever on the move', [`path=${MOVE},status=409,times=0`], 10, 6, 'from', 2),
  row('reset once on the IP', [`path=${BLOCK},reset`], 10, 0, 'to', 1),
  {
    name: 'reset before the move',
    faults: [`path=${MOVE},reset`],
    timeout: 10,
    exit: 0,
    holder: 'to',
    writes: 2,
  },
  row('reset after the move landed', [`path=${MOVE},reset-after`], 10, 0, 'to', 1),
  row('reset once on the task', [`path=${TASK},reset`], 10, 0, 'to', 1),
  { name: 'hang on the IP', faults: [`path=${BLOCK},hang`], timeout: 2, exit: 5, holder: 'from', writes: 0 },
  { name: 'hang on the move', faults: [`path=${MOVE},hang`], timeout: 2, exit: 5, holder: 'from', writes: 1 },
  row('hang on every task poll', [`path=${TASK},hang,times=0`], 2, 5, 'to', 1),
  row('slow answers (400 ms each)', ['slow=400,times=0'], 10, 0, 'to', 1),
  row('a slow drip on the IP', [`path=${BLOCK},drip=200`], 2, 5, 'from', 0),
  row('malformed JSON for the IP', [`path=${BLOCK},${faultBody('{"ip": "198.51')}`], 5, 9, 'from', 0),
  row('an HTML page with 200 for a task list', [`path=${TASKS},${HTML}`], 5, 9, 'from', 0),
  row('a string where a task list belongs', [`path=${TASKS},${faultBody('"none"')}`], 5, 9, 'from', 0),
  row('{} for the move (not applied)', [`path=${MOVE},${faultBody('{}')}`], 5, 9, 'from', 1),
  row('null for the task', [`path=${TASK},${faultBody('null')}`], 5, 9, 'to', 1),
  row('a 5 MiB answer for the IP', [`path=${BLOCK},size=5`], 5, 9, 'from', 0),
  row('an expired (unknown) consumer key', [], 5, 3, 'from', 0, { env: { OVH_CONSUMER_KEY: 'expired-consumer-key-0001' } }),
  row('a consumer key refused the move', [], 5, 3, 'from', 1, { env: { OVH_CONSUMER_KEY: 'emulator-ck-readonly' } }),
  row('404 forever on the task (followed through the task lists)', [`path=${TASK},status=404,times=0`], 5, 0, 'to', 1),
  // The move's task.
  {
    name: 'a move by another client still pending',
    emulator: { pendingMs: 2500 },
    before: (emulator) => otherClient(emulator, classic.command(ns2)),
    timeout: 10,
    exit: 0,
    holder: 'to',
    writes: 0,
  },
  {
    name: 'a task stuck in todo',
    faults: [`path=${MOVE},task=todo`],
    timeout: 2,
    exit: 5,
    holder: 'from',
    writes: 1,
    between: (emulator) => {
      for (const task of emulator.state.classicIps[0]!.tasks) task.status = 'cancelled'
    },
  },
  row('a task ending cancelled', [`path=${MOVE},task=cancelled`], 5, 1, 'from', 1),
  row('a task ending customerError', [`path=${MOVE},task=customerError`], 5, 1, 'from', 1),
  row('a task ending ovhError', [`path=${MOVE},task=ovhError`], 5, 1, 'from', 1),
  row('clock skew +2 min', [], 10, 0, 'to', 1, { emulator: { clockSkewSeconds: 120 } }),
  row('clock skew -2 min', [], 10, 0, 'to', 1, { emulator: { clockSkewSeconds: -120 } }),
  row('clock skew +1 h', [], 10, 0, 'to', 1, { emulator: { clockSkewSeconds: 3600 } }),
  row('clock skew -1 h', [], 10, 0, 'to', 1, { emulator: { clockSkewSeconds: -3600 } }),
]

beforeAll(() => requireBuild())

describe('fault matrix: OVH Public Cloud', () => {
  matrix(cloud, cloudCases, CACHED_IDS)
})

describe('fault matrix: OVH classic', () => {
  matrix(classic, classicCases, CACHED_IDS)
})
