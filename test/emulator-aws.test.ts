/**
 * The EC2 emulator, driven by the real AWS SDK (an independent client: if our
 * XML or our SigV4 check were wrong, the SDK would say so) and by raw HTTP
 * where the SDK cannot go (IMDS, unsigned requests).
 */
import { readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  AssignPrivateIpAddressesCommand,
  AssociateAddressCommand,
  CreateRouteCommand,
  DescribeAddressesCommand,
  DescribeInstancesCommand,
  DescribeNetworkInterfacesCommand,
  DescribeRouteTablesCommand,
  EC2Client,
  ReplaceRouteCommand,
} from '@aws-sdk/client-ec2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  defaultEc2Fixture,
  EIP_WEB,
  ENI_MULTI1,
  ENI_WEB1,
  ENI_WEB2,
  ENI_WEB3,
  MULTI,
  RTB_MAIN,
  RTB_PRIVATE,
  RTB_SPARE,
  WEB1,
  WEB2,
} from '../emulator/aws/fixture.js'
import {
  ec2EmulatorOptionsFromFlags,
  type RunningEc2Emulator,
  startEc2Emulator,
} from '../emulator/aws/server.js'
import { IpmoveError } from '../src/errors.js'

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'

const FULL = {
  accessKeyId: 'AKIAIPMOVEEMULATOR01',
  secretAccessKey: 'ipmove-emulator-secret-access-key-000001',
}
const READONLY = {
  accessKeyId: 'AKIAIPMOVEREADONLY01',
  secretAccessKey: 'ipmove-emulator-readonly-secret-key-00001',
}

let emulator: RunningEc2Emulator
let dir: string

function client(
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } = FULL,
  region = 'eu-west-3',
) {
  return new EC2Client({ region, endpoint: emulator.url, credentials, maxAttempts: 1 })
}

/** The SDK error an EC2 call ends in: its code and HTTP status. */
async function rejection(
  promise: Promise<unknown>,
): Promise<{ name: string; status?: number; message: string }> {
  const error = (await promise.then(
    () => undefined,
    (e: unknown) => e,
  )) as { name: string; message: string; $metadata?: { httpStatusCode?: number } } | undefined
  expect(error, 'the call should have failed').toBeDefined()
  return { name: error!.name, status: error!.$metadata?.httpStatusCode, message: error!.message }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ipmove-ec2-emu-test-'))
  emulator = await startEc2Emulator({ pendingMs: 150, thisHost: 'web-2', dir })
})

afterAll(async () => {
  await emulator?.close()
  await rm(dir, { recursive: true, force: true })
})

describe('EC2 Query API, through the SDK', () => {
  it('describes an Elastic IP with its association, in the element names the SDK reads', async () => {
    const out = await client().send(
      new DescribeAddressesCommand({ Filters: [{ Name: 'public-ip', Values: ['203.0.113.5'] }] }),
    )
    expect(out.Addresses).toHaveLength(1)
    expect(out.Addresses?.[0]).toMatchObject({
      PublicIp: '203.0.113.5',
      AllocationId: EIP_WEB,
      Domain: 'vpc',
      InstanceId: WEB1,
      NetworkInterfaceId: ENI_WEB1,
      PrivateIpAddress: '198.51.100.10',
    })
    expect(out.Addresses?.[0]?.AssociationId).toMatch(/^eipassoc-[0-9a-f]{17}$/)
  })

  it('finds instances by Name tag and state, with their interfaces', async () => {
    const out = await client().send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: 'tag:Name', Values: ['multi'] },
          { Name: 'instance-state-name', Values: ['running', 'stopped'] },
        ],
      }),
    )
    const instances = (out.Reservations ?? []).flatMap((r) => r.Instances ?? [])
    expect(instances.map((i) => i.InstanceId)).toEqual([MULTI])
    const [instance] = instances
    expect(instance?.State?.Name).toBe('running')
    expect(instance?.Tags).toEqual([{ Key: 'Name', Value: 'multi' }])
    expect(
      instance?.NetworkInterfaces?.map((n) => [n.NetworkInterfaceId, n.Attachment?.DeviceIndex]),
    ).toEqual([
      ['eni-0fffffffffffffff6', 0],
      [ENI_MULTI1, 1],
    ])
    expect(instance?.NetworkInterfaces?.[1]?.PrivateIpAddresses).toEqual([
      expect.objectContaining({ PrivateIpAddress: '198.51.100.160', Primary: true }),
      expect.objectContaining({ PrivateIpAddress: '198.51.100.161', Primary: false }),
    ])
    const twins = await client().send(
      new DescribeInstancesCommand({ Filters: [{ Name: 'tag:Name', Values: ['twin'] }] }),
    )
    expect(twins.Reservations).toHaveLength(2)
  })

  it('finds the interface holding a private IP, and route tables routing a VIP', async () => {
    const nis = await client().send(
      new DescribeNetworkInterfacesCommand({
        Filters: [{ Name: 'addresses.private-ip-address', Values: ['198.51.100.50'] }],
      }),
    )
    expect(nis.NetworkInterfaces?.map((n) => [n.NetworkInterfaceId, n.Attachment?.InstanceId])).toEqual([
      [ENI_WEB1, WEB1],
    ])
    const tables = await client().send(
      new DescribeRouteTablesCommand({
        Filters: [{ Name: 'route.destination-cidr-block', Values: ['192.0.2.10/32'] }],
      }),
    )
    expect(tables.RouteTables?.map((t) => t.RouteTableId)).toEqual([RTB_MAIN, RTB_PRIVATE])
    const route = tables.RouteTables?.[0]?.Routes?.find((r) => r.DestinationCidrBlock === '192.0.2.10/32')
    expect(route).toMatchObject({ NetworkInterfaceId: ENI_WEB1, InstanceId: WEB1, State: 'active' })
  })

  it('accepts a write at once but shows it only after pendingMs (eventual consistency)', async () => {
    const ec2 = client()
    const out = await ec2.send(
      new AssociateAddressCommand({ AllocationId: EIP_WEB, InstanceId: WEB2, AllowReassociation: true }),
    )
    expect(out.AssociationId).toMatch(/^eipassoc-/)
    const read = async () =>
      (await ec2.send(new DescribeAddressesCommand({ AllocationIds: [EIP_WEB] }))).Addresses?.[0]?.InstanceId
    expect(await read()).toBe(WEB1)
    await new Promise((resolve) => setTimeout(resolve, 250))
    expect(await read()).toBe(WEB2)
  })

  it('moves a secondary private IP within its subnet only, and routes', async () => {
    const ec2 = client()
    const assigned = await ec2.send(
      new AssignPrivateIpAddressesCommand({
        NetworkInterfaceId: ENI_WEB2,
        PrivateIpAddresses: ['198.51.100.50'],
        AllowReassignment: true,
      }),
    )
    expect(assigned.AssignedPrivateIpAddresses).toEqual([{ PrivateIpAddress: '198.51.100.50' }])
    const otherSubnet = await rejection(
      ec2.send(
        new AssignPrivateIpAddressesCommand({
          NetworkInterfaceId: ENI_WEB3,
          PrivateIpAddresses: ['198.51.100.51'],
        }),
      ),
    )
    expect(otherSubnet).toMatchObject({ name: 'InvalidParameterValue', status: 400 })
    const primary = await rejection(
      ec2.send(
        new AssignPrivateIpAddressesCommand({
          NetworkInterfaceId: ENI_WEB2,
          PrivateIpAddresses: ['198.51.100.10'],
          AllowReassignment: true,
        }),
      ),
    )
    expect(primary.message).toMatch(/in use/)

    const missing = await rejection(
      ec2.send(
        new ReplaceRouteCommand({
          RouteTableId: RTB_SPARE,
          DestinationCidrBlock: '192.0.2.10/32',
          NetworkInterfaceId: ENI_WEB2,
        }),
      ),
    )
    expect(missing.name).toBe('InvalidRoute.NotFound')
    await ec2.send(
      new CreateRouteCommand({
        RouteTableId: RTB_SPARE,
        DestinationCidrBlock: '192.0.2.10/32',
        NetworkInterfaceId: ENI_WEB2,
      }),
    )
    const exists = await rejection(
      ec2.send(
        new CreateRouteCommand({
          RouteTableId: RTB_MAIN,
          DestinationCidrBlock: '192.0.2.10/32',
          NetworkInterfaceId: ENI_WEB2,
        }),
      ),
    )
    expect(exists.name).toBe('RouteAlreadyExists')
  })

  it('refuses InstanceId for an instance with several interfaces, and unknown ids', async () => {
    const ec2 = client()
    const multi = await rejection(
      ec2.send(new AssociateAddressCommand({ AllocationId: EIP_WEB, InstanceId: MULTI })),
    )
    expect(multi).toMatchObject({ name: 'InvalidInstanceID', status: 400 })
    const alloc = await rejection(
      ec2.send(new DescribeAddressesCommand({ AllocationIds: ['eipalloc-00000000'] })),
    )
    expect(alloc.name).toBe('InvalidAllocationID.NotFound')
    const table = await rejection(
      ec2.send(new DescribeRouteTablesCommand({ RouteTableIds: ['rtb-00000000'] })),
    )
    expect(table.name).toBe('InvalidRouteTableID.NotFound')
    const filter = await rejection(
      ec2.send(new DescribeAddressesCommand({ Filters: [{ Name: 'colour', Values: ['red'] }] })),
    )
    expect(filter.name).toBe('InvalidParameterValue')
  })

  it('answers DryRun with 412 DryRunOperation when allowed and 403 UnauthorizedOperation when not', async () => {
    const before = JSON.stringify(emulator.state.addresses)
    const allowed = await rejection(
      client().send(
        new AssociateAddressCommand({
          AllocationId: EIP_WEB,
          InstanceId: WEB1,
          AllowReassociation: true,
          DryRun: true,
        }),
      ),
    )
    expect(allowed).toMatchObject({ name: 'DryRunOperation', status: 412 })
    const refused = await rejection(
      client(READONLY).send(
        new AssociateAddressCommand({
          AllocationId: EIP_WEB,
          InstanceId: WEB1,
          AllowReassociation: true,
          DryRun: true,
        }),
      ),
    )
    expect(refused).toMatchObject({ name: 'UnauthorizedOperation', status: 403 })
    expect(refused.message).toMatch(/ec2:AssociateAddress.*Encoded authorization failure message: /)
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(JSON.stringify(emulator.state.addresses)).toBe(before)
    // A read-only key may still read.
    await client(READONLY).send(new DescribeAddressesCommand({}))
  })

  it('verifies SigV4: a wrong secret, another region and no signature at all fail AuthFailure', async () => {
    const wrong = await rejection(
      client({ ...FULL, secretAccessKey: 'not-the-secret' }).send(new DescribeAddressesCommand({})),
    )
    expect(wrong).toMatchObject({ name: 'AuthFailure', status: 401 })
    const region = await rejection(client(FULL, 'us-east-1').send(new DescribeAddressesCommand({})))
    expect(region.message).toMatch(/scoped to a valid region/)
    const unsigned = await fetch(emulator.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'Action=DescribeAddresses&Version=2016-11-15',
    })
    expect(unsigned.status).toBe(401)
    expect(await unsigned.text()).toMatch(
      /^<\?xml version="1.0" encoding="UTF-8"\?>\n<Response><Errors><Error><Code>AuthFailure<\/Code><Message>[^<]+<\/Message><\/Error><\/Errors><RequestID>[0-9a-f-]{36}<\/RequestID><\/Response>$/,
    )
  })

  it('injects faults by action: 503 is RequestLimitExceeded', async () => {
    emulator.addFault('path=/DescribeRouteTables,status=503')
    const throttled = await rejection(client().send(new DescribeRouteTablesCommand({})))
    expect(throttled).toMatchObject({ name: 'RequestLimitExceeded', status: 503 })
    await client().send(new DescribeRouteTablesCommand({}))
    expect(
      emulator.requests
        .filter((r) => r.action === 'DescribeRouteTables')
        .map((r) => r.status)
        .slice(-2),
    ).toEqual([503, 200])
  })
})

describe('clock skew', () => {
  it('refuses a request signed 10 min off its clock, and tells its time in Date for the SDK to correct', async () => {
    const skewed = await startEc2Emulator({ clockSkewSeconds: 600 })
    try {
      const once = new EC2Client({
        region: 'eu-west-3',
        endpoint: skewed.url,
        credentials: FULL,
        maxAttempts: 1,
      })
      const refused = await rejection(once.send(new DescribeAddressesCommand({})))
      expect(refused).toMatchObject({ name: 'RequestExpired', status: 400 })
      const response = await fetch(skewed.url, { method: 'POST', body: 'Action=DescribeAddresses' })
      const serverTime = Date.parse(response.headers.get('date') ?? '')
      expect(Math.abs(serverTime - Date.now() - 600_000)).toBeLessThan(5_000)
      // The SDK reads the server's Date, corrects its clock and retries once.
      const corrected = new EC2Client({
        region: 'eu-west-3',
        endpoint: skewed.url,
        credentials: FULL,
        maxAttempts: 2,
      })
      expect((await corrected.send(new DescribeAddressesCommand({}))).Addresses).toBeDefined()
    } finally {
      await skewed.close()
    }
  })
})

describe('instance metadata (IMDSv2)', () => {
  const get = (path: string, token?: string) =>
    fetch(`${emulator.url}${path}`, { headers: token ? { 'X-aws-ec2-metadata-token': token } : {} })

  it('wants a token first, then tells who this host is and its interfaces', async () => {
    expect((await get('/latest/meta-data/instance-id')).status).toBe(401)
    const bad = await fetch(`${emulator.url}/latest/api/token`, { method: 'PUT' })
    expect(bad.status).toBe(400)
    const token = await (
      await fetch(`${emulator.url}/latest/api/token`, {
        method: 'PUT',
        headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' },
      })
    ).text()
    expect(await (await get('/latest/meta-data/instance-id', token)).text()).toBe(WEB2)
    const mac = await (await get('/latest/meta-data/mac', token)).text()
    expect(mac).toBe('02:00:00:00:00:02')
    expect(
      await (await get(`/latest/meta-data/network/interfaces/macs/${mac}/interface-id`, token)).text(),
    ).toBe(ENI_WEB2)
    expect(await (await get('/latest/meta-data/placement/region', token)).text()).toBe('eu-west-3')
    const role = await (await get('/latest/meta-data/iam/security-credentials/', token)).text()
    const credentials = JSON.parse(
      await (await get(`/latest/meta-data/iam/security-credentials/${role}`, token)).text(),
    )
    expect(credentials).toMatchObject({ Code: 'Success', AccessKeyId: 'ASIAIPMOVEROLE000001' })
    // The role's temporary credentials sign requests, session token included.
    const out = await client({
      accessKeyId: credentials.AccessKeyId,
      secretAccessKey: credentials.SecretAccessKey,
      sessionToken: credentials.Token,
    }).send(new DescribeAddressesCommand({}))
    expect(out.Addresses?.length).toBeGreaterThan(0)
  })
})

describe('start-up', () => {
  it('writes env.sh with the variables that point an SDK at it', () => {
    const text = readFileSync(join(dir, 'env.sh'), 'utf8')
    expect(text).toBe(
      [
        `export AWS_ENDPOINT_URL_EC2=${emulator.url}`,
        'export AWS_ACCESS_KEY_ID=AKIAIPMOVEEMULATOR01',
        'export AWS_SECRET_ACCESS_KEY=ipmove-emulator-secret-access-key-000001',
        'export AWS_REGION=eu-west-3',
        `export AWS_EC2_METADATA_SERVICE_ENDPOINT=${emulator.url}`,
        `export IPMOVE_EMULATOR_URL=${emulator.url}`,
        '',
      ].join('\n'),
    )
  })

  it('turns flags into options and refuses bad ones with exit 2', async () => {
    const fixtureFile = join(dir, 'fixture.json')
    await writeFile(fixtureFile, JSON.stringify(defaultEc2Fixture()))
    const options = await ec2EmulatorOptionsFromFlags({
      port: '0',
      pendingMs: '20',
      faults: ['path=/AssociateAddress,status=500,times=2'],
      fixtureFile,
    })
    expect(options).toMatchObject({
      port: 0,
      pendingMs: 20,
      faults: [{ path: '/AssociateAddress', times: 2 }],
    })
    expect(options.fixture?.instances).toHaveLength(6)

    const broken = defaultEc2Fixture()
    broken.addresses[0]!.networkInterfaceId = 'eni-00000000'
    await writeFile(fixtureFile, JSON.stringify(broken))
    for (const flags of [
      { port: '70000' },
      { pendingMs: 'soon' },
      { faults: ['path=/X,status=200'] },
      { thisHost: '$(reboot)' },
      { fixtureFile },
      { fixtureFile: join(dir, 'missing.json') },
    ]) {
      const error = await ec2EmulatorOptionsFromFlags(flags).catch((e: unknown) => e)
      expect(error, JSON.stringify(flags)).toBeInstanceOf(IpmoveError)
      expect((error as IpmoveError).kind).toBe('usage')
    }
    await expect(startEc2Emulator({ thisHost: 'twin' })).rejects.toThrow(/several instances/)
  })
})
