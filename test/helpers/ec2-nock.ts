import nock from 'nock'
import { Ec2Error, errorXml, responseXml, verifySigV4, type XmlValue } from '../../emulator/aws/server.js'
import { isolatedEnv } from './cli.js'

/** The real regional endpoint the SDK resolves: nock answers for it, nothing leaves the machine. */
export const REGION = 'eu-west-3'
export const ENDPOINT = `https://ec2.${REGION}.amazonaws.com`
export const IMDS = 'http://169.254.169.254'
export const ACCESS_KEY = 'AKIAIPMOVENOCKTEST01'
export const SECRET_KEY = 'ipmove-nock-test-secret-key-0123456789ab'

/** An environment with static keys, a region, an empty config and a private cache directory. */
export function awsTestEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return isolatedEnv({
    AWS_ACCESS_KEY_ID: ACCESS_KEY,
    AWS_SECRET_ACCESS_KEY: SECRET_KEY,
    AWS_REGION: REGION,
    ...extra,
  })
}

/** A non-200 answer: an EC2 error code (its HTTP status as EC2 sends it, unless given). */
export class Failure {
  readonly status: number
  constructor(
    readonly code: string,
    readonly message: string,
    status?: number,
  ) {
    this.status = status ?? new Ec2Error(code, message).status
  }
}

export const failure = (code: string, message = `${code} (test)`, status?: number) =>
  new Failure(code, message, status)

type Answer = Record<string, XmlValue> | Failure

/** What one expected call must carry: every listed parameter, exactly (`undefined`: absent). */
export type Expected = Record<string, string | undefined>

export interface Call {
  action: string
  params: Record<string, string>
}

/**
 * A nock scope for EC2's Query API. Each expectation matches one action and its
 * parameters, checks the SigV4 signature as EC2 would, and answers with EC2's
 * XML. `nock.pendingMocks()` then proves each expected call happened;
 * disableNetConnect (set in the tests) proves no other call did.
 */
export class Ec2Api {
  readonly scope = nock(ENDPOINT)
  /** Every call answered, in order. */
  readonly calls: Call[] = []

  /** Expect `action` with `expected` parameters `times` times, answering `answer`. */
  on(action: string, expected: Expected, answer: Answer, times = 1): this {
    const calls = this.calls
    this.scope
      .post('/', (body: unknown) => {
        const params = formOf(body)
        return params.Action === action && matches(params, expected)
      })
      .times(times)
      .reply(function (_uri, body) {
        const params = formOf(body)
        try {
          verifySigV4(
            this.req,
            Buffer.from(new URLSearchParams(params).toString()),
            [{ accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY, allow: ['*'] }],
            REGION,
          )
        } catch (error) {
          if (!(error instanceof Ec2Error)) throw error
          return [error.status, errorXml(error.code, error.message, 'test-request-id')]
        }
        calls.push({ action, params })
        if (answer instanceof Failure)
          return [answer.status, errorXml(answer.code, answer.message, 'test-request-id')]
        return [200, responseXml(action, answer), { 'Content-Type': 'text/xml;charset=UTF-8' }]
      })
    return this
  }

  /** The calls of one action, in order. */
  of(action: string): Call[] {
    return this.calls.filter((c) => c.action === action)
  }
}

/** nock hands a form body over parsed, or as text: take it as the flat `Name.N` map EC2 reads. */
function formOf(body: unknown): Record<string, string> {
  if (typeof body === 'string') return Object.fromEntries(new URLSearchParams(body))
  return Object.fromEntries(Object.entries(body as Record<string, unknown>).map(([k, v]) => [k, String(v)]))
}

function matches(params: Record<string, string>, expected: Expected): boolean {
  return Object.entries(expected).every(([key, value]) => params[key] === value)
}

/** The metadata service answering IMDSv2 for `instanceId`: a token first, then the id with it. */
export function imds(instanceId: string): nock.Scope {
  const token = 'test-imds-token'
  return nock(IMDS)
    .put('/latest/api/token')
    .matchHeader('x-aws-ec2-metadata-token-ttl-seconds', /^\d+$/)
    .reply(200, token)
    .get('/latest/meta-data/instance-id')
    .matchHeader('x-aws-ec2-metadata-token', token)
    .reply(200, instanceId)
}

// ---- EC2 shapes, in the XML element names of the API -------------------------------------

export interface EniSpec {
  id: string
  subnet?: string
  vpc?: string
  ips: string[]
  device?: number
  sourceDestCheck?: boolean
  instance?: string
  mac?: string
}

export const VPC = 'vpc-0c0c0c0c0c0c0c0c1'
export const SUBNET_A = 'subnet-0a0a0a0a0a0a0a0a1'
export const SUBNET_B = 'subnet-0b0b0b0b0b0b0b0b2'

function eniXml(eni: EniSpec, withInstance: boolean): Record<string, XmlValue> {
  return {
    networkInterfaceId: eni.id,
    subnetId: eni.subnet ?? SUBNET_A,
    vpcId: eni.vpc ?? VPC,
    macAddress: eni.mac ?? '02:00:00:00:00:01',
    privateIpAddress: eni.ips[0],
    sourceDestCheck: eni.sourceDestCheck ?? false,
    status: eni.instance ? 'in-use' : 'available',
    attachment: eni.instance
      ? {
          attachmentId: `eni-attach-${eni.id.slice(4)}`,
          instanceId: withInstance ? eni.instance : undefined,
          deviceIndex: eni.device ?? 0,
          status: 'attached',
        }
      : undefined,
    privateIpAddressesSet: eni.ips.map((ip, i) => ({ privateIpAddress: ip, primary: i === 0 })),
  }
}

export interface InstanceSpec {
  id: string
  name?: string
  state?: string
  enis: EniSpec[]
}

export function instances(...list: InstanceSpec[]): Record<string, XmlValue> {
  return {
    reservationSet: list.map((i) => ({
      reservationId: `r-${i.id.slice(2)}`,
      instancesSet: [
        {
          instanceId: i.id,
          instanceState: { code: 16, name: i.state ?? 'running' },
          tagSet: i.name ? [{ key: 'Name', value: i.name }] : [],
          networkInterfaceSet: i.enis.map((e) => eniXml({ ...e, instance: i.id }, false)),
        },
      ],
    })),
  }
}

export function interfaces(...list: EniSpec[]): Record<string, XmlValue> {
  return { networkInterfaceSet: list.map((e) => eniXml(e, true)) }
}

export function addresses(
  ...list: Array<{ ip: string; allocation: string; instance?: string; eni?: string; privateIp?: string }>
): Record<string, XmlValue> {
  return {
    addressesSet: list.map((a) => ({
      publicIp: a.ip,
      allocationId: a.allocation,
      domain: 'vpc',
      instanceId: a.instance,
      associationId: a.eni ? `eipassoc-${a.eni.slice(4)}` : undefined,
      networkInterfaceId: a.eni,
      privateIpAddress: a.privateIp,
    })),
  }
}

export function routeTables(
  ...list: Array<{
    id: string
    routes: Array<{ cidr: string; eni?: string; instance?: string; gateway?: string; state?: string }>
  }>
): Record<string, XmlValue> {
  return {
    routeTableSet: list.map((t) => ({
      routeTableId: t.id,
      vpcId: VPC,
      routeSet: t.routes.map((r) => ({
        destinationCidrBlock: r.cidr,
        gatewayId: r.gateway,
        instanceId: r.instance,
        networkInterfaceId: r.eni,
        state: r.state ?? 'active',
        origin: 'CreateRoute',
      })),
    })),
  }
}
