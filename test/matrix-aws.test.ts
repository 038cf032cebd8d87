/**
 * The fault matrix for AWS: Elastic IPs, and the private and route modes where
 * a fault reaches their own calls, the built CLI against the EC2 emulator. Each
 * row: the faults, --timeout, the exit code, where the IP ends up, and (where it
 * matters) how many move requests went out. See helpers/matrix.ts for what every
 * row also checks.
 */
import { beforeAll, describe } from 'vitest'
import { WEB1, WEB2, WEB3 } from '../emulator/aws/fixture.js'
import { type Ec2EmulatorOptions, type RunningEc2Emulator, startEc2Emulator } from '../emulator/aws/server.js'
import { requireBuild } from './helpers/cli.js'
import {
  type EmulatorState,
  faultBody,
  HTML,
  type MatrixCase,
  type MatrixKind,
  matrix,
  matrixRow,
} from './helpers/matrix.js'

type Case = MatrixCase<RunningEc2Emulator, Ec2EmulatorOptions>
type Kind = MatrixKind<RunningEc2Emulator, Ec2EmulatorOptions>

interface StateInterface {
  id: string
  instanceId?: string
  privateIps: string[]
}

const eniOwner = (state: EmulatorState, eni: string | undefined) =>
  (state.networkInterfaces as StateInterface[]).find((i) => i.id === eni)?.instanceId

const WRITES = new Set(['AssociateAddress', 'AssignPrivateIpAddresses', 'ReplaceRoute', 'CreateRoute'])

/** What the three modes share: the emulator, the written actions; the cache holds names only. */
const base = {
  start: (options: Partial<Ec2EmulatorOptions> & { faults?: string[] }) =>
    startEc2Emulator({ pendingMs: 300, ...options }),
  isWrite: (r: RunningEc2Emulator['requests'][number]) => WRITES.has(r.action ?? ''),
  knownIds: () => new Set<string>(),
}

const eip: Kind = {
  ...base,
  name: 'AWS EIP',
  command: (target) => ['--provider', 'aws', '--ip', '203.0.113.5', '--instance', target],
  target: 'web-3',
  from: WEB1,
  to: WEB3,
  holder: (state) =>
    eniOwner(
      state,
      (state.addresses as Array<{ publicIp: string; networkInterfaceId?: string }>).find(
        (a) => a.publicIp === '203.0.113.5',
      )?.networkInterfaceId,
    ),
}

const privateIp: Kind = {
  ...base,
  name: 'AWS private',
  command: (target) => [
    '--provider',
    'aws',
    '--mode',
    'private',
    '--ip',
    '198.51.100.50',
    '--instance',
    target,
  ],
  target: 'web-2',
  from: WEB1,
  to: WEB2,
  holder: (state) =>
    (state.networkInterfaces as StateInterface[]).find((i) => i.privateIps.includes('198.51.100.50'))
      ?.instanceId,
}

const route: Kind = {
  ...base,
  name: 'AWS route',
  command: (target) => ['--provider', 'aws', '--mode', 'route', '--ip', '192.0.2.10', '--instance', target],
  target: 'web-2',
  from: WEB1,
  to: WEB2,
  /** The one instance every table routes the VIP to, or what the tables disagree on. */
  holder: (state) => {
    const owners = new Set(
      (state.routeTables as Array<{ routes: Array<{ destination: string; networkInterfaceId?: string }> }>)
        .flatMap((t) => t.routes.filter((r) => r.destination === '192.0.2.10/32'))
        .map((r) => eniOwner(state, r.networkInterfaceId)),
    )
    return [...owners].join(' and ')
  },
}

/** No cache entry of the AWS provider holds an id (only names, for reports). */
const NO_CACHED_IDS = /^$/

const EMPTY_ADDRESSES = faultBody(
  '<?xml version="1.0" encoding="UTF-8"?>\n<DescribeAddressesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>00000000-0000-4000-8000-000000000000</requestId></DescribeAddressesResponse>',
)
/** EC2's answer for a resource in the middle of another change. */
const BUSY = `status=400,${faultBody(
  '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>IncorrectInstanceState</Code><Message>The instance is not in a state that allows this</Message></Error></Errors><RequestID>00000000-0000-4000-8000-000000000001</RequestID></Response>',
)}`
const READONLY = {
  AWS_ACCESS_KEY_ID: 'AKIAIPMOVEREADONLY01',
  AWS_SECRET_ACCESS_KEY: 'ipmove-emulator-readonly-secret-key-00001',
}
/** The first request passes (the look-up), every later one matches the next fault. */
const FIRST_PASSES = 'slow=0'

const row = matrixRow<RunningEc2Emulator, Ec2EmulatorOptions>

// biome-ignore format: a matrix reads best one row per line
const eipCases: Case[] = [
  // 5xx on reads: retried.
  row('500 once on DescribeAddresses', ['path=/DescribeAddresses,status=500'], 10, 0, 'to', 1),
  row('503 twice on DescribeInstances', ['path=/DescribeInstances,status=503,times=2'], 10, 0, 'to', 1),
  row('502 HTML page once on DescribeAddresses', [`path=/DescribeAddresses,status=502,${HTML}`], 10, 0, 'to', 1),
  row('503 forever on DescribeAddresses', ['path=/DescribeAddresses,status=503,times=0'], 12, 8, 'from', 0),
  row('500 forever on DescribeInstances', ['path=/DescribeInstances,status=500,times=0'], 12, 8, 'from', 0),
  // 429: with and without Retry-After.
  row('429 with Retry-After once on DescribeAddresses', ['path=/DescribeAddresses,status=429,retry-after=1'], 10, 0, 'to', 1),
  row('429 without Retry-After twice on DescribeInstances', ['path=/DescribeInstances,status=429,times=2'], 10, 0, 'to', 1),
  row('429 forever on DescribeAddresses', ['path=/DescribeAddresses,status=429,times=0'], 12, 8, 'from', 0),
  // Faults on the write: at most two move requests, the second only when the first had no effect.
  row('503 once on AssociateAddress', ['path=/AssociateAddress,status=503'], 10, 0, 'to', 2),
  row('429 once on AssociateAddress', ['path=/AssociateAddress,status=429'], 10, 0, 'to', 2),
  row('500 once on AssociateAddress (not applied)', ['path=/AssociateAddress,status=500'], 10, 0, 'to', 2),
  row('500 forever on AssociateAddress', ['path=/AssociateAddress,status=500,times=0'], 10, 8, 'from', 2),
  // Resets and silence.
  row('reset once on DescribeAddresses', ['path=/DescribeAddresses,reset'], 10, 0, 'to', 1),
  row('reset before the write', ['path=/AssociateAddress,reset'], 10, 0, 'to', 2),
  // EC2 shows a write only once it settles: the re-read after the reset cannot see it, so the
  // association is sent once more (to the same target, harmless), never a third time.
  row('reset after the write landed', ['path=/AssociateAddress,reset-after'], 10, 0, 'to', 2, { emulator: { pendingMs: 1500 } }),
  row('hang on DescribeAddresses', ['path=/DescribeAddresses,hang'], 2, 5, 'from', 0),
  row('hang on AssociateAddress', ['path=/AssociateAddress,hang'], 2, 5, 'from', 1),
  row('hang on every poll', [`path=/DescribeAddresses,${FIRST_PASSES}`, 'path=/DescribeAddresses,hang,times=0'], 2, 5, 'to', 1),
  row('slow answers (400 ms each)', ['slow=400,times=0'], 10, 0, 'to', 1),
  row('a slow drip on DescribeAddresses', ['path=/DescribeAddresses,drip=200'], 2, 5, 'from', 0),
  row('a drip that finishes in time', ['path=/DescribeInstances,drip=1'], 10, 0, 'to', 1),
  row('a slow drip on AssociateAddress (the write landed)', ['path=/AssociateAddress,drip=300'], 2, 5, 'to', 1),
  row('HTML 500 forever on DescribeAddresses', [`path=/DescribeAddresses,status=500,${HTML},times=0`], 12, 8, 'from', 0),
  row('reset forever on DescribeAddresses', ['path=/DescribeAddresses,reset,times=0'], 12, 8, 'from', 0),
  row('every request hangs', ['hang,times=0'], 3, 5, 'from', 0),
  // Answers ipmove cannot use: exit 9, nothing written after them.
  row('malformed XML for DescribeAddresses', [`path=/DescribeAddresses,${faultBody('<?xml version="1.0"?><DescribeAddressesResponse><addressesSet><item>')}`], 5, 9, 'from', 0),
  row('an HTML page with 200 for DescribeInstances', [`path=/DescribeInstances,${HTML}`], 5, 9, 'from', 0),
  row('an empty 200 for DescribeAddresses', [`path=/DescribeAddresses,${faultBody('')}`], 5, 9, 'from', 0),
  row('DescribeAddresses without its address list', [`path=/DescribeAddresses,${EMPTY_ADDRESSES}`], 5, 9, 'from', 0),
  row('an HTML page with 200 for AssociateAddress (not applied)', [`path=/AssociateAddress,${HTML}`], 5, 9, 'from', 1),
  row('JSON {} for AssociateAddress (not applied)', [`path=/AssociateAddress,${faultBody('{}')}`], 5, 9, 'from', 1),
  row('a 5 MiB DescribeAddresses', ['path=/DescribeAddresses,size=5'], 5, 9, 'from', 0),
  row('a 5 MiB poll answer', [`path=/DescribeAddresses,${FIRST_PASSES}`, 'path=/DescribeAddresses,size=5'], 5, 9, 'to', 1),
  // Credentials.
  row('an unknown (expired) access key', [], 5, 3, 'from', 0, { env: { AWS_ACCESS_KEY_ID: 'AKIAEXPIRED000000001' } }),
  row('a wrong secret key', [], 5, 3, 'from', 0, { env: { AWS_SECRET_ACCESS_KEY: 'not-the-secret-key' } }),
  row('a session token the key does not have', [], 5, 3, 'from', 0, { env: { AWS_SESSION_TOKEN: 'expired-session-token' } }),
  row('a read-only key refused AssociateAddress', [], 5, 3, 'from', 1, { env: READONLY }),
  // The API's clock off ours, both ways: the SDK corrects from the Date header.
  row('clock skew +10 min', [], 10, 0, 'to', 1, { emulator: { clockSkewSeconds: 600 } }),
  row('clock skew -10 min', [], 10, 0, 'to', 1, { emulator: { clockSkewSeconds: -600 } }),
  row('clock skew +1 h', [], 10, 0, 'to', 1, { emulator: { clockSkewSeconds: 3600 } }),
  row('clock skew -1 h', [], 10, 0, 'to', 1, { emulator: { clockSkewSeconds: -3600 } }),
  // "Busy" (EC2's 409): the engine waits, re-reads and asks once more.
  row('IncorrectInstanceState once on AssociateAddress', [`path=/AssociateAddress,${BUSY}`], 10, 0, 'to', 2),
  row('IncorrectInstanceState forever on AssociateAddress', [`path=/AssociateAddress,${BUSY},times=0`], 10, 6, 'from', 2),
]

// biome-ignore format: a matrix reads best one row per line
const privateCases: Case[] = [
  row('503 once on AssignPrivateIpAddresses', ['path=/AssignPrivateIpAddresses,status=503'], 10, 0, 'to', 2),
  row('500 forever on AssignPrivateIpAddresses', ['path=/AssignPrivateIpAddresses,status=500,times=0'], 10, 8, 'from', 2),
  row('reset after the assignment landed', ['path=/AssignPrivateIpAddresses,reset-after'], 10, 0, 'to', 2, { emulator: { pendingMs: 1500 } }),
  row('hang on DescribeNetworkInterfaces', ['path=/DescribeNetworkInterfaces,hang'], 2, 5, 'from', 0),
  row('malformed XML for DescribeNetworkInterfaces', [`path=/DescribeNetworkInterfaces,${faultBody('<DescribeNetworkInterfacesResponse><networkInterfaceSet><item>')}`], 5, 9, 'from', 0),
  row('an HTML page with 200 for AssignPrivateIpAddresses (not applied)', [`path=/AssignPrivateIpAddresses,${HTML}`], 5, 9, 'from', 1),
  row('a read-only key refused the assignment', [], 5, 3, 'from', 1, { env: READONLY }),
  row('clock skew -10 min', [], 10, 0, 'to', 1, { emulator: { clockSkewSeconds: -600 } }),
]

// biome-ignore format: a matrix reads best one row per line
const routeCases: Case[] = [
  // One table refused, the other updated (shown at once): the refused one is written again, not waited for.
  row('503 once on ReplaceRoute, the other table updated', ['path=/ReplaceRoute,status=503'], 10, 0, 'to', undefined, { emulator: { pendingMs: 0 } }),
  row('500 once on ReplaceRoute, the other table updated', ['path=/ReplaceRoute,status=500'], 10, 0, 'to', undefined, { emulator: { pendingMs: 0 } }),
  row('500 forever on ReplaceRoute', ['path=/ReplaceRoute,status=500,times=0'], 10, 8, 'from'),
  row('reset after a route was replaced', ['path=/ReplaceRoute,reset-after'], 10, 0, 'to'),
  row('hang on DescribeRouteTables', ['path=/DescribeRouteTables,hang'], 2, 5, 'from', 0),
  row('an HTML page with 200 for DescribeRouteTables', [`path=/DescribeRouteTables,${HTML}`], 5, 9, 'from', 0),
  row('a read-only key refused ReplaceRoute', [], 5, 3, 'from', undefined, { env: READONLY }),
  row('clock skew +10 min', [], 10, 0, 'to', undefined, { emulator: { clockSkewSeconds: 600 } }),
]

beforeAll(() => requireBuild())

describe('fault matrix: AWS', () => {
  matrix(eip, eipCases, NO_CACHED_IDS)
  matrix(privateIp, privateCases, NO_CACHED_IDS)
  matrix(route, routeCases, NO_CACHED_IDS)
})
