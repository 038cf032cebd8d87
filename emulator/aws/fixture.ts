/**
 * The account the EC2 emulator serves: credentials with their allowed IAM
 * actions, a VPC with two subnets, instances and their interfaces, Elastic IPs
 * and route tables. Addresses are documentation ones: 203.0.113.0/24 public,
 * 198.51.100.0/24 inside the VPC, 192.0.2.0/24 for route VIPs.
 */
import { isIP } from 'node:net'
import { usageError } from '../../src/errors.js'
import { shown } from '../../src/validate.js'

export interface Ec2FixtureCredential {
  accessKeyId: string
  secretAccessKey: string
  /** Temporary credentials (an instance role's) carry a session token. */
  sessionToken?: string
  /** IAM actions allowed, `ec2:Describe*` style; `*` allows everything. */
  allow: string[]
}

export interface Ec2FixtureSubnet {
  id: string
  vpcId: string
  cidr: string
  availabilityZone: string
}

export interface Ec2FixtureInstance {
  id: string
  name?: string
  state: 'pending' | 'running' | 'stopping' | 'stopped' | 'shutting-down' | 'terminated'
}

export interface Ec2FixtureInterface {
  id: string
  subnetId: string
  mac: string
  /** The first is the primary address. */
  privateIps: string[]
  sourceDestCheck: boolean
  /** Attached to this instance at `deviceIndex`; detached when absent. */
  instanceId?: string
  deviceIndex?: number
}

export interface Ec2FixtureAddress {
  allocationId: string
  publicIp: string
  /** Associated with this interface and private address; unassociated when absent. */
  networkInterfaceId?: string
  privateIp?: string
}

export interface Ec2FixtureRoute {
  destination: string
  /** An interface, or a gateway id (`local`, `igw-…`). */
  networkInterfaceId?: string
  gatewayId?: string
}

export interface Ec2FixtureRouteTable {
  id: string
  vpcId: string
  routes: Ec2FixtureRoute[]
}

export interface Ec2Fixture {
  region: string
  accountId: string
  credentials: Ec2FixtureCredential[]
  /** The instance role the metadata service hands out temporary credentials for. */
  instanceRole?: { name: string; credential: Ec2FixtureCredential }
  subnets: Ec2FixtureSubnet[]
  instances: Ec2FixtureInstance[]
  networkInterfaces: Ec2FixtureInterface[]
  addresses: Ec2FixtureAddress[]
  routeTables: Ec2FixtureRouteTable[]
}

/** `prefix-` and 17 hex digits made of one repeated digit and a trailing one: readable, and valid. */
const id = (prefix: string, digit: string, last: number) => `${prefix}-0${digit.repeat(15)}${last}`

export const EMULATOR_VPC = id('vpc', 'c', 1)
export const SUBNET_A = id('subnet', 'a', 1)
export const SUBNET_B = id('subnet', 'b', 2)
export const WEB1 = id('i', 'a', 1)
export const WEB2 = id('i', 'b', 2)
export const WEB3 = id('i', 'c', 3)
export const TWIN1 = id('i', 'd', 4)
export const TWIN2 = id('i', 'e', 5)
export const MULTI = id('i', 'f', 6)
export const ENI_WEB1 = id('eni', 'a', 1)
export const ENI_WEB2 = id('eni', 'b', 2)
export const ENI_WEB3 = id('eni', 'c', 3)
export const ENI_MULTI0 = id('eni', 'f', 6)
export const ENI_MULTI1 = id('eni', 'f', 7)
export const EIP_WEB = id('eipalloc', 'a', 1)
export const EIP_SPARE = id('eipalloc', 'b', 2)
export const RTB_MAIN = id('rtb', 'a', 1)
export const RTB_PRIVATE = id('rtb', 'b', 2)
export const RTB_SPARE = id('rtb', 'c', 3)

/** The default account: web-1 holds every VIP; web-2 is the usual target. */
export function defaultEc2Fixture(): Ec2Fixture {
  const eni = (
    eniId: string,
    instanceId: string | undefined,
    subnetId: string,
    n: number,
    privateIps: string[],
    deviceIndex = 0,
    sourceDestCheck = false,
  ): Ec2FixtureInterface => ({
    id: eniId,
    subnetId,
    mac: `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`,
    privateIps,
    sourceDestCheck,
    ...(instanceId ? { instanceId, deviceIndex } : {}),
  })
  return {
    region: 'eu-west-3',
    accountId: '123456789012',
    credentials: [
      {
        accessKeyId: 'AKIAIPMOVEEMULATOR01',
        secretAccessKey: 'ipmove-emulator-secret-access-key-000001',
        allow: ['*'],
      },
      {
        accessKeyId: 'AKIAIPMOVEREADONLY01',
        secretAccessKey: 'ipmove-emulator-readonly-secret-key-00001',
        allow: ['ec2:Describe*'],
      },
    ],
    instanceRole: {
      name: 'ipmove-emulator-role',
      credential: {
        accessKeyId: 'ASIAIPMOVEROLE000001',
        secretAccessKey: 'ipmove-emulator-role-secret-key-0000001',
        sessionToken: 'ipmove-emulator-role-session-token-0000000000000001',
        allow: [
          'ec2:Describe*',
          'ec2:AssociateAddress',
          'ec2:AssignPrivateIpAddresses',
          'ec2:ReplaceRoute',
          'ec2:CreateRoute',
        ],
      },
    },
    subnets: [
      { id: SUBNET_A, vpcId: EMULATOR_VPC, cidr: '198.51.100.0/25', availabilityZone: 'eu-west-3a' },
      { id: SUBNET_B, vpcId: EMULATOR_VPC, cidr: '198.51.100.128/25', availabilityZone: 'eu-west-3b' },
    ],
    instances: [
      { id: WEB1, name: 'web-1', state: 'running' },
      { id: WEB2, name: 'web-2', state: 'running' },
      { id: WEB3, name: 'web-3', state: 'running' },
      { id: TWIN1, name: 'twin', state: 'running' },
      { id: TWIN2, name: 'twin', state: 'stopped' },
      { id: MULTI, name: 'multi', state: 'running' },
    ],
    networkInterfaces: [
      // 198.51.100.50 is web-1's secondary address: the private VIP.
      eni(ENI_WEB1, WEB1, SUBNET_A, 1, ['198.51.100.10', '198.51.100.50']),
      eni(ENI_WEB2, WEB2, SUBNET_A, 2, ['198.51.100.11']),
      eni(ENI_WEB3, WEB3, SUBNET_B, 3, ['198.51.100.140'], 0, true),
      eni(id('eni', 'd', 4), TWIN1, SUBNET_A, 4, ['198.51.100.20']),
      eni(id('eni', 'e', 5), TWIN2, SUBNET_B, 5, ['198.51.100.150']),
      eni(ENI_MULTI0, MULTI, SUBNET_A, 6, ['198.51.100.30']),
      eni(ENI_MULTI1, MULTI, SUBNET_B, 7, ['198.51.100.160', '198.51.100.161'], 1),
    ],
    addresses: [
      {
        allocationId: EIP_WEB,
        publicIp: '203.0.113.5',
        networkInterfaceId: ENI_WEB1,
        privateIp: '198.51.100.10',
      },
      { allocationId: EIP_SPARE, publicIp: '203.0.113.6' },
    ],
    routeTables: [
      {
        id: RTB_MAIN,
        vpcId: EMULATOR_VPC,
        routes: [
          { destination: '198.51.100.0/24', gatewayId: 'local' },
          { destination: '0.0.0.0/0', gatewayId: id('igw', 'a', 1) },
          { destination: '192.0.2.10/32', networkInterfaceId: ENI_WEB1 },
        ],
      },
      {
        id: RTB_PRIVATE,
        vpcId: EMULATOR_VPC,
        routes: [
          { destination: '198.51.100.0/24', gatewayId: 'local' },
          { destination: '192.0.2.10/32', networkInterfaceId: ENI_WEB1 },
        ],
      },
      {
        id: RTB_SPARE,
        vpcId: EMULATOR_VPC,
        routes: [{ destination: '198.51.100.0/24', gatewayId: 'local' }],
      },
    ],
  }
}

// ---- checking a --fixture file ------------------------------------------------------------

type Json = Record<string, unknown>

function fail(where: string, message: string): never {
  throw usageError(`${where}: ${message}`)
}

function object(value: unknown, where: string): Json {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(where, 'must be an object')
  return value as Json
}

function array(value: unknown, where: string): unknown[] {
  if (!Array.isArray(value)) fail(where, 'must be an array')
  return value
}

function text(value: unknown, where: string, pattern?: RegExp): string {
  if (typeof value !== 'string' || value === '') fail(where, 'must be a non-empty string')
  if (pattern && !pattern.test(value)) fail(where, `${shown(value)} does not look like ${pattern.source}`)
  return value
}

function optionalText(value: unknown, where: string, pattern?: RegExp): string | undefined {
  return value === undefined ? undefined : text(value, where, pattern)
}

function ipv4(value: unknown, where: string): string {
  const ip = text(value, where)
  if (isIP(ip) !== 4) fail(where, `${shown(ip)} is not an IPv4 address`)
  return ip
}

function cidr(value: unknown, where: string): string {
  const block = text(value, where)
  const [address, prefix, ...rest] = block.split('/')
  if (rest.length || isIP(address ?? '') !== 4 || !/^\d{1,2}$/.test(prefix ?? '') || Number(prefix) > 32) {
    fail(where, `${shown(block)} is not an IPv4 CIDR block`)
  }
  return block
}

const hex = (prefix: string) => new RegExp(`^${prefix}-(?:[0-9a-f]{8}|[0-9a-f]{17})$`)
const STATES = ['pending', 'running', 'stopping', 'stopped', 'shutting-down', 'terminated'] as const

/** Check a fixture read from JSON: shapes, id formats and every cross-reference. */
export function parseEc2Fixture(input: unknown, where: string): Ec2Fixture {
  const root = object(input, where)
  const at = (key: string) => `${where}: ${key}`
  const list = <T>(key: string, each: (item: Json, w: string) => T): T[] =>
    array(root[key], at(key)).map((item, i) => each(object(item, `${at(key)}[${i}]`), `${at(key)}[${i}]`))
  const credential = (c: Json, w: string): Ec2FixtureCredential => ({
    accessKeyId: text(c.accessKeyId, `${w}.accessKeyId`, /^[A-Z0-9]{16,128}$/),
    secretAccessKey: text(c.secretAccessKey, `${w}.secretAccessKey`),
    sessionToken: optionalText(c.sessionToken, `${w}.sessionToken`),
    allow: array(c.allow, `${w}.allow`).map((a, i) => text(a, `${w}.allow[${i}]`, /^(?:\*|ec2:[A-Za-z*]+)$/)),
  })
  const fixture: Ec2Fixture = {
    region: text(root.region, at('region'), /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/),
    accountId: text(root.accountId, at('accountId'), /^\d{12}$/),
    credentials: list('credentials', credential),
    subnets: list('subnets', (s, w) => ({
      id: text(s.id, `${w}.id`, hex('subnet')),
      vpcId: text(s.vpcId, `${w}.vpcId`, hex('vpc')),
      cidr: cidr(s.cidr, `${w}.cidr`),
      availabilityZone: text(s.availabilityZone, `${w}.availabilityZone`),
    })),
    instances: list('instances', (i, w) => {
      const state = text(i.state, `${w}.state`)
      if (!(STATES as readonly string[]).includes(state))
        fail(`${w}.state`, `must be one of ${STATES.join(', ')}`)
      return {
        id: text(i.id, `${w}.id`, hex('i')),
        name: optionalText(i.name, `${w}.name`),
        state: state as Ec2FixtureInstance['state'],
      }
    }),
    networkInterfaces: list('networkInterfaces', (n, w) => ({
      id: text(n.id, `${w}.id`, hex('eni')),
      subnetId: text(n.subnetId, `${w}.subnetId`),
      mac: text(n.mac, `${w}.mac`, /^(?:[0-9a-f]{2}:){5}[0-9a-f]{2}$/),
      privateIps: array(n.privateIps, `${w}.privateIps`).map((ip, i) => ipv4(ip, `${w}.privateIps[${i}]`)),
      sourceDestCheck: n.sourceDestCheck !== false,
      instanceId: optionalText(n.instanceId, `${w}.instanceId`),
      deviceIndex: n.deviceIndex === undefined ? undefined : Number(n.deviceIndex),
    })),
    addresses: list('addresses', (a, w) => ({
      allocationId: text(a.allocationId, `${w}.allocationId`, hex('eipalloc')),
      publicIp: ipv4(a.publicIp, `${w}.publicIp`),
      networkInterfaceId: optionalText(a.networkInterfaceId, `${w}.networkInterfaceId`),
      privateIp: a.privateIp === undefined ? undefined : ipv4(a.privateIp, `${w}.privateIp`),
    })),
    routeTables: list('routeTables', (t, w) => ({
      id: text(t.id, `${w}.id`, hex('rtb')),
      vpcId: text(t.vpcId, `${w}.vpcId`),
      routes: array(t.routes, `${w}.routes`).map((r, i) => {
        const route = object(r, `${w}.routes[${i}]`)
        return {
          destination: cidr(route.destination, `${w}.routes[${i}].destination`),
          networkInterfaceId: optionalText(route.networkInterfaceId, `${w}.routes[${i}].networkInterfaceId`),
          gatewayId: optionalText(route.gatewayId, `${w}.routes[${i}].gatewayId`),
        }
      }),
    })),
  }
  if (root.instanceRole !== undefined) {
    const role = object(root.instanceRole, at('instanceRole'))
    fixture.instanceRole = {
      name: text(role.name, at('instanceRole.name'), /^[\w+=,.@-]{1,64}$/),
      credential: credential(
        object(role.credential, at('instanceRole.credential')),
        at('instanceRole.credential'),
      ),
    }
    if (!fixture.instanceRole.credential.sessionToken)
      fail(at('instanceRole.credential'), 'needs a sessionToken')
  }

  const subnets = new Set(fixture.subnets.map((s) => s.id))
  const vpcs = new Set(fixture.subnets.map((s) => s.vpcId))
  const instances = new Set(fixture.instances.map((i) => i.id))
  const interfaces = new Map(fixture.networkInterfaces.map((n) => [n.id, n]))
  const unique = (what: string, ids: string[]) => {
    const seen = new Set<string>()
    for (const value of ids) {
      if (seen.has(value)) fail(where, `${what} ${value} appears twice`)
      seen.add(value)
    }
  }
  unique('instance', [...instances])
  unique('network interface', [...fixture.networkInterfaces.map((n) => n.id)])
  unique(
    'private IP',
    fixture.networkInterfaces.flatMap((n) => n.privateIps),
  )
  unique(
    'allocation',
    fixture.addresses.map((a) => a.allocationId),
  )
  unique(
    'public IP',
    fixture.addresses.map((a) => a.publicIp),
  )
  unique(
    'access key',
    [...fixture.credentials, ...(fixture.instanceRole ? [fixture.instanceRole.credential] : [])].map(
      (c) => c.accessKeyId,
    ),
  )
  for (const n of fixture.networkInterfaces) {
    if (!subnets.has(n.subnetId)) fail(where, `interface ${n.id}: no subnet ${n.subnetId}`)
    if (n.privateIps.length === 0) fail(where, `interface ${n.id} needs a primary private IP`)
    if (n.instanceId && !instances.has(n.instanceId))
      fail(where, `interface ${n.id}: no instance ${n.instanceId}`)
  }
  for (const a of fixture.addresses) {
    if (!a.networkInterfaceId) continue
    const n = interfaces.get(a.networkInterfaceId)
    if (!n) fail(where, `address ${a.publicIp}: no interface ${a.networkInterfaceId}`)
    if (a.privateIp && !n.privateIps.includes(a.privateIp)) {
      fail(where, `address ${a.publicIp}: ${a.privateIp} is not an address of ${n.id}`)
    }
  }
  for (const t of fixture.routeTables) {
    if (!vpcs.has(t.vpcId)) fail(where, `route table ${t.id}: no VPC ${t.vpcId}`)
    for (const r of t.routes) {
      if (Boolean(r.networkInterfaceId) === Boolean(r.gatewayId)) {
        fail(where, `route table ${t.id}: route ${r.destination} needs one of networkInterfaceId, gatewayId`)
      }
      if (r.networkInterfaceId && !interfaces.has(r.networkInterfaceId)) {
        fail(where, `route table ${t.id}: no interface ${r.networkInterfaceId}`)
      }
    }
  }
  return fixture
}
