/**
 * The AWS provider through the engine (moveIp / ipStatus), with EC2 faked at the
 * HTTP level by nock: the real SDK builds, signs and parses every request.
 */
import { networkInterfaces } from 'node:os'
import nock from 'nock'
import { describe, expect, it } from 'vitest'
import { providerNamed } from '../providers/index.js'
import { MemoryCache } from '../src/cache.js'
import { IpmoveError } from '../src/errors.js'
import { MemoryLogger } from '../src/output.js'
import { type MoveOptions, moveIp } from '../src/services/move.js'
import { ipStatus } from '../src/services/status.js'
import { parseIp } from '../src/validate.js'
import {
  addresses,
  awsTestEnv,
  Ec2Api,
  ENDPOINT,
  failure,
  imds,
  instances,
  interfaces,
  routeTables,
  SECRET_KEY,
  SUBNET_B,
  VPC,
} from './helpers/ec2-nock.js'
import { guardNock } from './helpers/nock-guard.js'

const FAST = { first: 10, max: 40 }
const WEB1 = 'i-0aaaaaaaaaaaaaaa1'
const WEB2 = 'i-0bbbbbbbbbbbbbbb2'
const THIRD = 'i-0ccccccccccccccc3'
const ENI1 = 'eni-0aaaaaaaaaaaaaaa1'
const ENI2 = 'eni-0bbbbbbbbbbbbbbb2'
const ENI2B = 'eni-0bbbbbbbbbbbbbbb3'
const ENI3 = 'eni-0ccccccccccccccc3'
const ALLOC = 'eipalloc-0aaaaaaaaaaaaaaa1'
const EIP = '203.0.113.5'
const VIP = '198.51.100.50'
const ROUTE_VIP = '192.0.2.10'
const RTB1 = 'rtb-0aaaaaaaaaaaaaaa1'
const RTB2 = 'rtb-0bbbbbbbbbbbbbbb2'

const web1 = { id: WEB1, name: 'web-1', enis: [{ id: ENI1, ips: ['198.51.100.10', VIP] }] }
const web2 = { id: WEB2, name: 'web-2', enis: [{ id: ENI2, ips: ['198.51.100.11'] }] }
/** web-2 with a second interface in another subnet. */
const web2multi = {
  ...web2,
  enis: [...web2.enis, { id: ENI2B, ips: ['198.51.100.140'], subnet: SUBNET_B, device: 1 }],
}

const byName = (name: string) => ({
  'Filter.1.Name': 'tag:Name',
  'Filter.1.Value.1': name,
  'Filter.2.Name': 'instance-state-name',
})
const byId = (id: string) => ({ 'InstanceId.1': id })
const eipFilter = { 'Filter.1.Name': 'public-ip', 'Filter.1.Value.1': EIP }
const eipOn = (instance: string | undefined, eni?: string, privateIp?: string) =>
  addresses({ ip: EIP, allocation: ALLOC, instance, eni, privateIp })
const vipFilter = { 'Filter.1.Name': 'addresses.private-ip-address', 'Filter.1.Value.1': VIP }
const vipRead = { ...vipFilter, 'Filter.2.Name': 'vpc-id', 'Filter.2.Value.1': VPC }

function options(
  env: NodeJS.ProcessEnv,
  extra: Partial<MoveOptions> = {},
  settings: Record<string, string> = {},
): MoveOptions {
  return {
    ip: EIP,
    provider: 'aws',
    instance: 'web-2',
    wait: true,
    dryRun: false,
    env,
    pollMs: FAST,
    ...extra,
    providerSettings: settings,
  }
}

async function failed(promise: Promise<unknown>): Promise<IpmoveError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(IpmoveError)
  return error as IpmoveError
}

// Every expected call happens, no other, and nothing leaves the machine.
guardNock()

describe('eip mode', () => {
  it('moves cold: looks up side by side, associates once, re-reads until EC2 shows the target', async () => {
    const api = new Ec2Api()
      .on('DescribeInstances', byName('web-2'), instances(web2))
      .on('DescribeAddresses', eipFilter, eipOn(WEB1, ENI1, '198.51.100.10'))
      .on(
        'AssociateAddress',
        { AllocationId: ALLOC, InstanceId: WEB2, AllowReassociation: 'true', NetworkInterfaceId: undefined },
        { return: true, associationId: 'eipassoc-0123456789abcdef0' },
      )
      // Eventually consistent: the first read still shows the old holder.
      .on('DescribeAddresses', { 'AllocationId.1': ALLOC }, eipOn(WEB1, ENI1, '198.51.100.10'))
      .on('DescribeAddresses', { 'AllocationId.1': ALLOC }, eipOn(WEB2, ENI2, '198.51.100.11'))
    const log = new MemoryLogger()
    const result = await moveIp(options(awsTestEnv()), log)
    expect(result).toMatchObject({
      ip: `${EIP}/32`,
      provider: 'aws',
      kind: 'eip',
      outcome: 'moved',
      changed: true,
      from: { id: WEB1 },
      to: { id: WEB2, name: 'web-2' },
      requests: 5,
      roundTrips: 4,
    })
    expect(api.of('AssociateAddress')).toHaveLength(1)
    expect(api.of('DescribeInstances')[0]?.params['Filter.2.Value.4']).toBe('stopped')
    expect(log.lines.at(-1)).toMatch(
      /^203\.0\.113\.5\/32 moved from i-0a+1 to web-2 \(i-0b+2\) in \d+\.\d s$/,
    )
  })

  it('writes nothing when the EIP is already on the target (a remap can be billed)', async () => {
    const api = new Ec2Api()
      .on('DescribeInstances', byId(WEB2), instances(web2))
      .on('DescribeAddresses', eipFilter, eipOn(WEB2, ENI2, '198.51.100.11'))
    const result = await moveIp(options(awsTestEnv(), { instance: WEB2 }), new MemoryLogger())
    expect(result).toMatchObject({ outcome: 'in-place', changed: false, requests: 2, roundTrips: 1 })
    expect(api.of('AssociateAddress')).toEqual([])
  })

  it('associates to the primary interface of a multi-interface instance (EC2 refuses InstanceId there)', async () => {
    const api = new Ec2Api()
      .on('DescribeInstances', byId(WEB2), instances(web2multi))
      .on('DescribeAddresses', eipFilter, eipOn(WEB1, ENI1))
      .on(
        'AssociateAddress',
        { NetworkInterfaceId: ENI2, InstanceId: undefined },
        { associationId: 'eipassoc-1' },
      )
      .on('DescribeAddresses', { 'AllocationId.1': ALLOC }, eipOn(WEB2, ENI2))
    const result = await moveIp(options(awsTestEnv(), { instance: WEB2 }), new MemoryLogger())
    expect(result.outcome).toBe('moved')
    expect(api.of('AssociateAddress')).toHaveLength(1)
  })

  it('with --eni and --private-ip compares the interface and address, not just the instance', async () => {
    const api = new Ec2Api()
      .on('DescribeInstances', byName('web-2'), instances(web2multi))
      // On web-2 already, but on the other interface: a move is due.
      .on('DescribeAddresses', eipFilter, eipOn(WEB2, ENI2, '198.51.100.11'))
      .on(
        'AssociateAddress',
        { NetworkInterfaceId: ENI2B, PrivateIpAddress: '198.51.100.140', AllowReassociation: 'true' },
        { associationId: 'eipassoc-2' },
      )
      .on('DescribeAddresses', { 'AllocationId.1': ALLOC }, eipOn(WEB2, ENI2B, '198.51.100.140'))
    const result = await moveIp(
      options(awsTestEnv(), {}, { eni: ENI2B, 'private-ip': '198.51.100.140' }),
      new MemoryLogger(),
    )
    expect(result).toMatchObject({
      outcome: 'moved',
      from: { id: `${ENI2}/198.51.100.11` },
      to: { id: `${ENI2B}/198.51.100.140`, name: 'web-2' },
    })
    expect(api.of('AssociateAddress')).toHaveLength(1)
  })

  it('finds the EIP by its allocation id (--ip-id)', async () => {
    new Ec2Api()
      .on('DescribeInstances', byName('web-2'), instances(web2))
      .on('DescribeAddresses', { 'AllocationId.1': ALLOC }, eipOn(WEB2, ENI2))
    const result = await moveIp(options(awsTestEnv(), { ip: undefined, ipId: ALLOC }), new MemoryLogger())
    expect(result).toMatchObject({ ip: `${EIP}/32`, outcome: 'in-place' })
  })

  it('asks IMDSv2 (token first) which instance this host is when --instance is omitted', async () => {
    const metadata = imds(WEB2)
    new Ec2Api()
      .on('DescribeInstances', byId(WEB2), instances(web2))
      .on('DescribeAddresses', eipFilter, eipOn(WEB2, ENI2))
    const env = awsTestEnv({ AWS_EC2_METADATA_SERVICE_ENDPOINT: 'http://169.254.169.254' })
    const result = await moveIp(options(env, { instance: undefined }), new MemoryLogger())
    expect(result).toMatchObject({ outcome: 'in-place', to: { id: WEB2, name: 'web-2' } })
    expect(metadata.isDone()).toBe(true)
  })

  // The engine passes --interface: on this host, its MAC picks the instance's interface.
  // (Through the provider alone: moveIp would configure the address on that interface.)
  const hostNic = Object.entries(networkInterfaces()).find(([, addrs]) =>
    addrs?.some((a) => a.mac && a.mac !== '00:00:00:00:00:00'),
  )
  it.skipIf(!hostNic)(
    'associates to the interface behind --interface when this host is the target',
    async () => {
      const [name, addrs] = hostNic!
      const mac = addrs!.find((a) => a.mac !== '00:00:00:00:00:00')!.mac
      imds(WEB2)
      const api = new Ec2Api()
        .on(
          'DescribeInstances',
          byId(WEB2),
          instances({ ...web2multi, enis: [web2multi.enis[0]!, { ...web2multi.enis[1]!, mac }] }),
        )
        .on('DescribeAddresses', eipFilter, eipOn(WEB1, ENI1))
        .on('AssociateAddress', { NetworkInterfaceId: ENI2B }, { associationId: 'eipassoc-6' })
      const env = awsTestEnv({ AWS_EC2_METADATA_SERVICE_ENDPOINT: 'http://169.254.169.254' })
      const provider = await providerNamed('aws').load({
        env,
        cache: new MemoryCache(),
        log: new MemoryLogger(),
        settings: {},
      })
      try {
        const located = await provider.locate(
          { ip: parseIp(EIP), needTarget: true, interface: name },
          AbortSignal.timeout(5_000),
        )
        await located.write(located.target!, AbortSignal.timeout(5_000))
      } finally {
        provider.close()
      }
      expect(api.of('AssociateAddress')).toHaveLength(1)
    },
  )

  it('treats "associated nowhere" right after our write as settling, not as someone else', async () => {
    new Ec2Api()
      .on('DescribeInstances', byName('web-2'), instances(web2))
      .on('DescribeAddresses', eipFilter, eipOn(WEB1, ENI1))
      .on('AssociateAddress', { InstanceId: WEB2 }, { associationId: 'eipassoc-3' })
      .on('DescribeAddresses', { 'AllocationId.1': ALLOC }, eipOn(undefined))
      .on('DescribeAddresses', { 'AllocationId.1': ALLOC }, eipOn(WEB2, ENI2))
    const result = await moveIp(options(awsTestEnv()), new MemoryLogger())
    expect(result.outcome).toBe('moved')
  })
})

describe('private mode', () => {
  it('moves cold: reassigns the secondary IP to the target interface in the same subnet', async () => {
    const api = new Ec2Api()
      .on('DescribeInstances', byName('web-2'), instances(web2multi))
      .on(
        'DescribeNetworkInterfaces',
        vipFilter,
        interfaces({ id: ENI1, ips: ['198.51.100.10', VIP], instance: WEB1 }),
      )
      .on(
        'AssignPrivateIpAddresses',
        { NetworkInterfaceId: ENI2, 'PrivateIpAddress.1': VIP, AllowReassignment: 'true', DryRun: undefined },
        { networkInterfaceId: ENI2, assignedPrivateIpAddressesSet: [{ privateIpAddress: VIP }] },
      )
      .on(
        'DescribeNetworkInterfaces',
        vipRead,
        interfaces({ id: ENI2, ips: ['198.51.100.11', VIP], instance: WEB2 }),
      )
    const result = await moveIp(options(awsTestEnv(), { ip: VIP }, { mode: 'private' }), new MemoryLogger())
    expect(result).toMatchObject({ kind: 'private', outcome: 'moved', from: { id: WEB1 }, to: { id: WEB2 } })
    expect(api.of('AssignPrivateIpAddresses')).toHaveLength(1)
  })

  it('writes nothing when the target already carries the IP', async () => {
    const api = new Ec2Api()
      .on('DescribeInstances', byName('web-2'), instances(web2))
      .on(
        'DescribeNetworkInterfaces',
        vipFilter,
        interfaces({ id: ENI2, ips: ['198.51.100.11', VIP], instance: WEB2 }),
      )
    const result = await moveIp(options(awsTestEnv(), { ip: VIP }, { mode: 'private' }), new MemoryLogger())
    expect(result.outcome).toBe('in-place')
    expect(api.of('AssignPrivateIpAddresses')).toEqual([])
  })

  it('refuses to move a primary address (exit 2) and writes nothing', async () => {
    new Ec2Api()
      .on('DescribeInstances', byName('web-2'), instances(web2))
      .on('DescribeNetworkInterfaces', vipFilter, interfaces({ id: ENI1, ips: [VIP], instance: WEB1 }))
    const error = await failed(
      moveIp(options(awsTestEnv(), { ip: VIP }, { mode: 'private' }), new MemoryLogger()),
    )
    expect(error.kind).toBe('usage')
    expect(error.message).toMatch(/primary address of eni-0a+1/)
  })

  it('refuses a target without an interface in the IP’s subnet (exit 4)', async () => {
    new Ec2Api()
      .on(
        'DescribeInstances',
        byName('web-3'),
        instances({
          id: THIRD,
          name: 'web-3',
          enis: [{ id: ENI3, ips: ['198.51.100.140'], subnet: SUBNET_B }],
        }),
      )
      .on(
        'DescribeNetworkInterfaces',
        vipFilter,
        interfaces({ id: ENI1, ips: ['198.51.100.10', VIP], instance: WEB1 }),
      )
    const error = await failed(
      moveIp(options(awsTestEnv(), { ip: VIP, instance: 'web-3' }, { mode: 'private' }), new MemoryLogger()),
    )
    expect(error.kind).toBe('not-found')
    expect(error.message).toMatch(/no interface in subnet-0a0a0a0a0a0a0a0a1/)
  })
})

describe('route mode', () => {
  const routeFilter = {
    'Filter.1.Name': 'route.destination-cidr-block',
    'Filter.1.Value.1': `${ROUTE_VIP}/32`,
  }
  const tables = (eni: string, instance: string) =>
    routeTables(
      { id: RTB1, routes: [{ cidr: `${ROUTE_VIP}/32`, eni, instance }] },
      { id: RTB2, routes: [{ cidr: `${ROUTE_VIP}/32`, eni, instance }] },
    )

  it('moves cold: replaces the /32 route in every table that has it, side by side', async () => {
    const api = new Ec2Api()
      .on('DescribeInstances', byName('web-2'), instances(web2))
      .on('DescribeRouteTables', routeFilter, tables(ENI1, WEB1))
      .on(
        'ReplaceRoute',
        { RouteTableId: RTB1, DestinationCidrBlock: `${ROUTE_VIP}/32`, NetworkInterfaceId: ENI2 },
        { return: true },
      )
      .on(
        'ReplaceRoute',
        { RouteTableId: RTB2, DestinationCidrBlock: `${ROUTE_VIP}/32`, NetworkInterfaceId: ENI2 },
        { return: true },
      )
      // One table updated, the other not yet: settling, not someone else's move.
      .on(
        'DescribeRouteTables',
        { 'RouteTableId.1': RTB1, 'RouteTableId.2': RTB2 },
        routeTables(
          { id: RTB1, routes: [{ cidr: `${ROUTE_VIP}/32`, eni: ENI2, instance: WEB2 }] },
          { id: RTB2, routes: [{ cidr: `${ROUTE_VIP}/32`, eni: ENI1, instance: WEB1 }] },
        ),
      )
      .on('DescribeRouteTables', { 'RouteTableId.1': RTB1, 'RouteTableId.2': RTB2 }, tables(ENI2, WEB2))
    const result = await moveIp(
      options(awsTestEnv(), { ip: ROUTE_VIP }, { mode: 'route' }),
      new MemoryLogger(),
    )
    expect(result).toMatchObject({ kind: 'route', outcome: 'moved', from: { id: WEB1 }, to: { id: WEB2 } })
    expect(api.of('ReplaceRoute')).toHaveLength(2)
  })

  it('creates the route where a named table lacks it, and falls back when EC2 disagrees', async () => {
    const api = new Ec2Api()
      .on('DescribeInstances', byName('web-2'), instances(web2))
      .on(
        'DescribeRouteTables',
        { 'RouteTableId.1': RTB1, 'RouteTableId.2': RTB2 },
        routeTables(
          { id: RTB1, routes: [{ cidr: '198.51.100.0/24', gateway: 'local' }] },
          { id: RTB2, routes: [{ cidr: `${ROUTE_VIP}/32`, eni: ENI1 }] },
        ),
      )
      .on('CreateRoute', { RouteTableId: RTB1, NetworkInterfaceId: ENI2 }, { return: true })
      // The route vanished between our read and our write: create it instead.
      .on('ReplaceRoute', { RouteTableId: RTB2 }, failure('InvalidRoute.NotFound'))
      .on('CreateRoute', { RouteTableId: RTB2, NetworkInterfaceId: ENI2 }, { return: true })
      .on('DescribeRouteTables', { 'RouteTableId.1': RTB1, 'RouteTableId.2': RTB2 }, tables(ENI2, WEB2))
    const result = await moveIp(
      options(awsTestEnv(), { ip: ROUTE_VIP }, { mode: 'route', 'route-table': `${RTB1},${RTB2}` }),
      new MemoryLogger(),
    )
    expect(result.outcome).toBe('moved')
    expect(api.of('CreateRoute').map((c) => c.params.RouteTableId)).toEqual([RTB1, RTB2])
  })

  it('writes nothing when every table already points at the target, and warns about source/dest check', async () => {
    const api = new Ec2Api()
      .on(
        'DescribeInstances',
        byName('web-2'),
        instances({ ...web2, enis: [{ id: ENI2, ips: ['198.51.100.11'], sourceDestCheck: true }] }),
      )
      .on('DescribeRouteTables', routeFilter, tables(ENI2, WEB2))
    const log = new MemoryLogger()
    const result = await moveIp(options(awsTestEnv(), { ip: ROUTE_VIP }, { mode: 'route' }), log)
    expect(result.outcome).toBe('in-place')
    expect(api.of('ReplaceRoute')).toEqual([])
    expect(log.lines.join('\n')).toMatch(/warning: source\/destination check is on for eni-0b+2/)
  })

  it('exits 4 when no table routes the IP and none was named', async () => {
    new Ec2Api()
      .on('DescribeInstances', byName('web-2'), instances(web2))
      .on('DescribeRouteTables', routeFilter, routeTables())
    const error = await failed(
      moveIp(options(awsTestEnv(), { ip: ROUTE_VIP }, { mode: 'route' }), new MemoryLogger()),
    )
    expect(error.kind).toBe('not-found')
    expect(error.message).toMatch(/--route-table/)
  })

  it('status reports tables that disagree', async () => {
    new Ec2Api().on(
      'DescribeRouteTables',
      routeFilter,
      routeTables(
        { id: RTB1, routes: [{ cidr: `${ROUTE_VIP}/32`, eni: ENI2, instance: WEB2 }] },
        { id: RTB2, routes: [{ cidr: `${ROUTE_VIP}/32`, eni: ENI1, instance: WEB1 }] },
      ),
    )
    const result = await ipStatus(
      { ip: ROUTE_VIP, provider: 'aws', env: awsTestEnv(), providerSettings: { mode: 'route' } },
      new MemoryLogger(),
    )
    expect(result.note).toBe(`route tables disagree: ${RTB1} → ${WEB2}, ${RTB2} → ${WEB1}`)
  })
})

describe('instances', () => {
  it('refuses an ambiguous Name tag, naming the candidates (exit 4)', async () => {
    const api = new Ec2Api()
      .on(
        'DescribeInstances',
        byName('twin'),
        instances({ ...web1, name: 'twin' }, { ...web2, name: 'twin', state: 'stopped' }),
      )
      .on('DescribeAddresses', eipFilter, eipOn(WEB1, ENI1))
    const error = await failed(moveIp(options(awsTestEnv(), { instance: 'twin' }), new MemoryLogger()))
    expect(error.kind).toBe('not-found')
    expect(error.message).toContain(WEB1)
    expect(error.message).toContain(`${WEB2} (stopped)`)
    expect(api.of('AssociateAddress')).toEqual([])
  })

  it('exits 4 for an unknown name, an unknown id and an unknown EIP', async () => {
    new Ec2Api()
      .on('DescribeInstances', byName('nope'), instances())
      .on('DescribeAddresses', eipFilter, eipOn(WEB1, ENI1))
    const name = await failed(moveIp(options(awsTestEnv(), { instance: 'nope' }), new MemoryLogger()))
    expect(name.kind).toBe('not-found')
    expect(name.message).toBe(
      'no instance named "nope" in eu-west-3 (searched the Name tags of pending, running, stopping, stopped instances)',
    )

    new Ec2Api()
      .on(
        'DescribeInstances',
        byId(THIRD),
        failure('InvalidInstanceID.NotFound', `The instance ID '${THIRD}' does not exist`),
      )
      .on('DescribeAddresses', eipFilter, eipOn(WEB1, ENI1))
    const id = await failed(moveIp(options(awsTestEnv(), { instance: THIRD }), new MemoryLogger()))
    expect(id.kind).toBe('not-found')
    expect(id.message).toMatch(/InvalidInstanceID\.NotFound/)

    new Ec2Api()
      .on('DescribeInstances', byName('web-2'), instances(web2))
      .on('DescribeAddresses', eipFilter, addresses())
    const eip = await failed(moveIp(options(awsTestEnv()), new MemoryLogger()))
    expect(eip.kind).toBe('not-found')
    expect(eip.message).toBe('203.0.113.5 is not an Elastic IP of this account in eu-west-3')
  })
})

describe('answers EC2 would not give (exit 9)', () => {
  const bodies: Array<[string, string | Buffer]> = [
    ['an HTML page', '<html><body><h1>Gateway</h1></body></html>'],
    ['cut XML', '<?xml version="1.0"?><DescribeAddressesResponse><addressesSet><item><publicIp>'],
    ['an answer over 4 MiB', Buffer.alloc(5 * 1024 * 1024, ' ')],
  ]
  for (const [what, body] of bodies) {
    it(`reports ${what} as unexpected, once, and writes nothing`, async () => {
      const api = new Ec2Api().on('DescribeInstances', byId(WEB2), instances(web2))
      let asked = 0
      nock(ENDPOINT)
        .post('/', (form) => String(new URLSearchParams(form).get('Action')) === 'DescribeAddresses')
        .reply(200, () => {
          asked++
          return body
        })
      const error = await failed(moveIp(options(awsTestEnv(), { instance: WEB2 }), new MemoryLogger()))
      expect(error.kind).toBe('unexpected')
      expect(error.message).toMatch(/^EC2 DescribeAddresses: the API answered /)
      expect(error.message).not.toContain('\n')
      expect(asked).toBe(1)
      expect(api.of('AssociateAddress')).toEqual([])
    })
  }
})

describe('errors and retries', () => {
  const coldEip = () =>
    new Ec2Api()
      .on('DescribeInstances', byName('web-2'), instances(web2))
      .on('DescribeAddresses', eipFilter, eipOn(WEB1, ENI1))

  it('exits 3 naming the IAM action EC2 refused, without the encoded blob or the secret', async () => {
    coldEip().on(
      'AssociateAddress',
      {},
      failure(
        'UnauthorizedOperation',
        'You are not authorized to perform this operation. User: arn:aws:iam::123456789012:user/x is not authorized to perform: ec2:AssociateAddress. Encoded authorization failure message: AbCdEf0123',
      ),
    )
    const error = await failed(moveIp(options(awsTestEnv()), new MemoryLogger()))
    expect(error.kind).toBe('auth')
    expect(error.message).toMatch(/^IAM does not allow ec2:AssociateAddress \(UnauthorizedOperation\): /)
    expect(error.message).not.toContain('AbCdEf0123')
    expect(error.details).toMatchObject({
      encodedAuthorizationMessage: 'AbCdEf0123',
      action: 'ec2:AssociateAddress',
    })
    expect(JSON.stringify(error.details) + error.message).not.toContain(SECRET_KEY)
  })

  it('exits 3 when EC2 refuses the credentials (AuthFailure)', async () => {
    new Ec2Api()
      .on(
        'DescribeInstances',
        {},
        failure('AuthFailure', 'AWS was not able to validate the provided access credentials'),
      )
      .on(
        'DescribeAddresses',
        {},
        failure('AuthFailure', 'AWS was not able to validate the provided access credentials'),
      )
    const error = await failed(moveIp(options(awsTestEnv()), new MemoryLogger()))
    expect(error.kind).toBe('auth')
    expect(error.message).toMatch(
      /EC2 refused the credentials for ec2:Describe(Instances|Addresses) \(AuthFailure\)/,
    )
  })

  it('retries RequestLimitExceeded and succeeds', async () => {
    const api = new Ec2Api()
      .on('DescribeInstances', byName('web-2'), instances(web2))
      .on('DescribeAddresses', eipFilter, failure('RequestLimitExceeded', 'Request limit exceeded.'))
      .on('DescribeAddresses', eipFilter, eipOn(WEB2, ENI2))
    const result = await moveIp(options(awsTestEnv()), new MemoryLogger())
    expect(result).toMatchObject({ outcome: 'in-place', requests: 3 })
    expect(api.of('DescribeAddresses')).toHaveLength(2)
  })

  it('gives up with exit 8 after 5 attempts when EC2 keeps answering 5xx', async () => {
    const api = new Ec2Api()
      .on('DescribeInstances', byName('web-2'), instances(web2))
      .on('DescribeAddresses', eipFilter, failure('InternalError', 'An internal error has occurred', 500), 5)
    const error = await failed(moveIp(options(awsTestEnv()), new MemoryLogger()))
    expect(error.kind).toBe('unreachable')
    expect(error.message).toMatch(/^EC2 DescribeAddresses failed after 5 attempts: HTTP 500 InternalError/)
    expect(api.of('DescribeAddresses')).toHaveLength(5)
  })

  it('sends at most two associates when EC2 keeps failing them, re-reading in between', async () => {
    const api = coldEip()
      .on(
        'AssociateAddress',
        { InstanceId: WEB2 },
        failure('InternalError', 'An internal error has occurred', 500),
      )
      .on('DescribeAddresses', { 'AllocationId.1': ALLOC }, eipOn(WEB1, ENI1))
      .on(
        'AssociateAddress',
        { InstanceId: WEB2 },
        failure('InternalError', 'An internal error has occurred', 500),
      )
    const error = await failed(moveIp(options(awsTestEnv(), { timeoutMs: 5_000 }), new MemoryLogger()))
    expect(error.kind).toBe('ambiguous-write')
    expect(error.message).toMatch(/gave up after 2 move requests/)
    expect(api.of('AssociateAddress')).toHaveLength(2)
  })

  it('exits 6 when, after our associate, EC2 shows a third instance (a concurrent associate won)', async () => {
    const api = coldEip()
      .on('AssociateAddress', { InstanceId: WEB2 }, { associationId: 'eipassoc-4' })
      .on('DescribeAddresses', { 'AllocationId.1': ALLOC }, eipOn(THIRD, ENI3))
    const error = await failed(moveIp(options(awsTestEnv()), new MemoryLogger()))
    expect(error.kind).toBe('superseded')
    expect(error.message).toContain(THIRD)
    expect(api.of('AssociateAddress')).toHaveLength(1)
  })

  it('exits 5 when EC2 never shows the target within --timeout, writing once', async () => {
    const api = coldEip().on('AssociateAddress', { InstanceId: WEB2 }, { associationId: 'eipassoc-5' })
    nock('https://ec2.eu-west-3.amazonaws.com')
      .persist()
      .post('/', (body) => String(JSON.stringify(body)).includes('DescribeAddresses'))
      .reply(
        200,
        () =>
          `<?xml version="1.0"?><DescribeAddressesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><addressesSet><item><publicIp>${EIP}</publicIp><allocationId>${ALLOC}</allocationId><instanceId>${WEB1}</instanceId><networkInterfaceId>${ENI1}</networkInterfaceId></item></addressesSet></DescribeAddressesResponse>`,
      )
    const error = await failed(moveIp(options(awsTestEnv(), { timeoutMs: 600 }), new MemoryLogger()))
    expect(error.kind).toBe('timeout')
    expect(error.message).toMatch(/timed out before the IP reached web-2/)
    expect(api.of('AssociateAddress')).toHaveLength(1)
  })

  it('refuses bad settings before any call (exit 2)', async () => {
    const bad: Record<string, string>[] = [
      { mode: 'nat' },
      { region: 'mars-1' },
      { 'route-table': 'rtb-xyz' },
      { eni: 'eni-1; reboot' },
      { endpoint: 'http://ec2.example.com' },
      { profile: 'a b' },
    ]
    for (const settings of bad) {
      const error = await failed(moveIp(options(awsTestEnv(), {}, settings), new MemoryLogger()))
      expect(error.kind, JSON.stringify(settings)).toBe('usage')
    }
    const v6 = await failed(moveIp(options(awsTestEnv(), { ip: '2001:db8::5' }), new MemoryLogger()))
    expect(v6.kind).toBe('usage')
    const ipId = await failed(
      moveIp(options(awsTestEnv(), { ipId: ALLOC }, { mode: 'route' }), new MemoryLogger()),
    )
    expect(ipId.kind).toBe('usage')
  })
})

describe('--dry-run', () => {
  it('sends the write with DryRun: DryRunOperation means allowed, and nothing is written', async () => {
    const api = new Ec2Api()
      .on('DescribeInstances', byName('web-2'), instances(web2))
      .on('DescribeAddresses', eipFilter, eipOn(WEB1, ENI1))
      .on(
        'AssociateAddress',
        { DryRun: 'true', InstanceId: WEB2, AllocationId: ALLOC },
        failure('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.'),
      )
    const log = new MemoryLogger()
    const result = await moveIp(options(awsTestEnv(), { dryRun: true }, { 'dry-run': 'true' }), log)
    expect(result.outcome).toBe('would-move')
    expect(api.of('AssociateAddress')).toHaveLength(1)
    expect(log.lines).toContain('dry run: EC2 would allow ec2:AssociateAddress (DryRunOperation)')
  })

  it('exits 3 naming the IAM action the preflight found missing', async () => {
    new Ec2Api()
      .on('DescribeInstances', byName('web-2'), instances(web2))
      .on(
        'DescribeRouteTables',
        {},
        routeTables({ id: RTB1, routes: [{ cidr: `${ROUTE_VIP}/32`, eni: ENI1 }] }),
      )
      .on(
        'ReplaceRoute',
        { DryRun: 'true' },
        failure('UnauthorizedOperation', 'You are not authorized to perform this operation.'),
      )
    const error = await failed(
      moveIp(
        options(awsTestEnv(), { ip: ROUTE_VIP, dryRun: true }, { mode: 'route', 'dry-run': 'true' }),
        new MemoryLogger(),
      ),
    )
    expect(error.kind).toBe('auth')
    expect(error.message).toMatch(/^dry run: IAM does not allow ec2:ReplaceRoute/)
  })

  it('checks the permission even when the IP is already in place', async () => {
    const api = new Ec2Api()
      .on('DescribeInstances', byName('web-2'), instances(web2))
      .on('DescribeAddresses', eipFilter, eipOn(WEB2, ENI2))
      .on(
        'AssociateAddress',
        { DryRun: 'true' },
        failure('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.'),
      )
    const result = await moveIp(
      options(awsTestEnv(), { dryRun: true }, { 'dry-run': 'true' }),
      new MemoryLogger(),
    )
    expect(result.outcome).toBe('in-place')
    expect(api.of('AssociateAddress')).toHaveLength(1)
  })
})
