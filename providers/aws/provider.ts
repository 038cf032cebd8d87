/**
 * AWS EC2, in three modes — the jobs of ClusterLabs' awseip, awsvip and
 * aws-vpc-move-ip in one provider:
 * - eip: an Elastic IP, re-associated to the target (AssociateAddress with AllowReassociation);
 * - private: a secondary private IP, re-assigned to the target's interface in the same subnet
 *   (AssignPrivateIpAddresses with AllowReassignment);
 * - route: `IP/32` routes in one or more route tables pointed at the target's interface
 *   (ReplaceRoute, or CreateRoute where the route is missing).
 * EC2 answers writes synchronously but reads are eventually consistent, and two
 * concurrent writes can both succeed: after our write the engine re-reads until
 * the API shows the target, and exits 6 if it shows a third holder.
 *
 * The only module that loads the AWS SDK. Only the commands sent are imported,
 * so the bundle keeps just their schemas (see scripts/build.mjs).
 */

import { networkInterfaces } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  type Address,
  AssignPrivateIpAddressesCommand,
  AssociateAddressCommand,
  CreateRouteCommand,
  DescribeAddressesCommand,
  DescribeInstancesCommand,
  DescribeNetworkInterfacesCommand,
  DescribeRouteTablesCommand,
  EC2Client,
  type EC2ClientConfig,
  type Instance,
  type NetworkInterface,
  ReplaceRouteCommand,
  type Route,
  type RouteTable,
} from '@aws-sdk/client-ec2'
import type { IdCache } from '../../src/cache.js'
import type {
  Holder,
  IpState,
  Located,
  LocatedIp,
  LocateRequest,
  Provider,
  ProviderContext,
} from '../../src/core/provider.js'
import { describeHolder, sameHolder } from '../../src/core/provider.js'
import { IpmoveError, notFound, usageError } from '../../src/errors.js'
import { type Logger, registerSecret } from '../../src/output.js'
import { type IpBlock, parseIp } from '../../src/validate.js'
import { HttpClient, type HttpResponse, TransportError } from '../http.js'
import {
  ALLOCATION_ID,
  type AwsMode,
  type AwsSettings,
  checkAwsSetting,
  INSTANCE_ID,
  parseAwsSettings,
} from './settings.js'

const IMDS_IPV4 = 'http://169.254.169.254'
const IMDS_IPV6 = 'http://[fd00:ec2::254]'
/** Attempts per EC2 call, the first included; every wait stays inside the engine's signal. */
const MAX_ATTEMPTS = 5
/** Instance states a Name tag may resolve to: terminated instances keep their tags for a while. */
const LIVE_STATES = ['pending', 'running', 'stopping', 'stopped']
/** Errors that mean the request never reached EC2, so a failed write did not happen. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'])
/** Client errors that say "not now" rather than "never": the engine waits and decides again. */
const BUSY_CODES = new Set(['IncorrectState', 'IncorrectInstanceState', 'Resource.AlreadyAssociated'])
const AUTH_CODES = new Set([
  'AuthFailure',
  'UnauthorizedOperation',
  'OptInRequired',
  'Blocked',
  'SignatureDoesNotMatch',
])
const INPUT_CODES = new Set([
  'InvalidParameterValue',
  'InvalidParameterCombination',
  'InvalidParameter',
  'MissingParameter',
])

type RetryStrategyV2 = Extract<
  NonNullable<EC2ClientConfig['retryStrategy']>,
  { acquireInitialRetryToken: unknown }
>
type RetryToken = Awaited<ReturnType<RetryStrategyV2['acquireInitialRetryToken']>>
type RetryErrorInfo = Parameters<RetryStrategyV2['refreshRetryTokenForRetry']>[1]

/** What an EC2 call threw, as far as we read it. */
interface SdkError extends Error {
  code?: string
  $metadata?: { httpStatusCode?: number; attempts?: number }
}

/** A network interface, as far as moving an IP is concerned. */
interface Eni {
  id: string
  subnetId?: string
  vpcId?: string
  mac?: string
  deviceIndex: number
  sourceDestCheck?: boolean
  privateIps: string[]
}

interface TargetInstance {
  id: string
  name?: string
  state?: string
  enis: Eni[]
}

/** Where the API points the IP: an interface, its instance, its private address, or a gateway. */
interface Attachment {
  instanceId?: string
  eniId?: string
  privateIp?: string
  subnetId?: string
  /** Route targets that are no interface: igw-…, nat-…, tgw-…, pcx-… */
  other?: string
  blackhole?: boolean
}

/**
 * How precisely holders are compared. By default the instance holds the IP,
 * whichever of its interfaces carries it; `--eni` (and, for EIPs,
 * `--private-ip`) make the interface (and address) part of the identity.
 */
type Granularity = 'instance' | 'eni' | 'eni-ip'

type Location =
  | { mode: 'eip'; allocationId: string; current: Attachment | null }
  | { mode: 'private'; vpcId?: string; current: Attachment | null }
  | { mode: 'route'; tables: string[]; current: Map<string, Attachment | null> }

interface CallOptions {
  /** A write: when it fails without an answer, it may still have landed. */
  write?: boolean
  dryRun?: boolean
}

/** One read's answer, in the mode's terms. */
interface RawState {
  addresses?: Address[]
  interfaces?: NetworkInterface[]
  tables?: RouteTable[]
}

interface Write {
  action: string
  send(signal: AbortSignal): Promise<void>
}

/**
 * The SDK's standard strategy, tuned for a hook: throttling, 5xx and network
 * failures are retried with jittered exponential backoff, at most MAX_ATTEMPTS
 * in all. The backoff ends with the engine's signal (the SDK's middleware only
 * races its own sleep against it, leaving the timer to hold the process up).
 */
class HookRetryStrategy implements RetryStrategyV2 {
  readonly mode = 'standard'
  /** The engine's signal: one per run, bounding every call. */
  signal: AbortSignal | undefined

  constructor(private readonly log: Logger) {}

  async acquireInitialRetryToken(): Promise<RetryToken> {
    return retryToken(0)
  }

  async refreshRetryTokenForRetry(token: RetryToken, info: RetryErrorInfo): Promise<RetryToken> {
    const retryable = ['THROTTLING', 'TRANSIENT', 'SERVER_ERROR'].includes(info.errorType)
    const next = token.getRetryCount() + 1
    if (!retryable || next >= MAX_ATTEMPTS) throw info.error ?? new Error(info.errorType)
    const throttled = info.errorType === 'THROTTLING'
    const ceiling = Math.min(throttled ? 8_000 : 4_000, (throttled ? 500 : 250) * 2 ** (next - 1))
    let delay = ceiling / 2 + (Math.random() * ceiling) / 2
    if (info.retryAfterHint)
      delay = Math.max(delay, Math.min(info.retryAfterHint.getTime() - Date.now(), 8_000))
    this.log.debug(
      `aws: ${info.error?.name ?? info.errorType}; attempt ${next + 1} of ${MAX_ATTEMPTS} in ${Math.round(delay)} ms`,
    )
    await sleep(delay, undefined, { signal: this.signal }).catch(() => {})
    return retryToken(next)
  }

  recordSuccess(): void {}
}

function retryToken(count: number): RetryToken {
  return { getRetryCount: () => count, getRetryDelay: () => 0 }
}

export class AwsProvider implements Provider {
  readonly name = 'aws'
  readonly hasCloudApi = true
  private readonly client: EC2Client
  private readonly retry: HookRetryStrategy
  /** The metadata service, asked only when --instance is omitted. */
  private readonly imds: HttpClient
  private location: Location | undefined
  private target: TargetInstance | undefined
  private granularity: Granularity = 'instance'
  /** The MAC of this host's --interface, when this host is the target: it names the ENI to use. */
  private interfaceMac: string | undefined
  /** The interface (and address) --eni / --private-ip pin, once resolved on the target. */
  private pinned: { eni: Eni; privateIp?: string } | undefined
  /** The IP, from --ip or, for an EIP given by --ip-id, from the API. */
  private ip: IpBlock | undefined
  /** --ip-id: an Elastic IP's allocation id. */
  private allocationId: string | undefined
  private region = '?'
  /** The holder when we wrote; after a write, a state in between is "settling", not someone else's. */
  private wroteFrom: { holder: Holder | null } | undefined
  private readonly names = new Map<string, string>()
  private attempts = 0
  private rounds = 0
  private inFlight = 0

  private constructor(
    private readonly settings: AwsSettings,
    config: EC2ClientConfig,
    private readonly cache: IdCache,
    private readonly log: Logger,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    this.retry = config.retryStrategy as HookRetryStrategy
    this.client = new EC2Client(config)
    // Per attempt (the deserialize step runs inside the retry loop): requests and round trips.
    this.client.middlewareStack.add(
      (next) => async (args) => {
        this.attempts++
        if (this.inFlight++ === 0) this.rounds++
        try {
          return await next(args)
        } finally {
          this.inFlight--
        }
      },
      { step: 'deserialize', name: 'ipmoveRequestCounter', priority: 'low' },
    )
    this.imds = new HttpClient({
      log,
      requestTimeoutMs: 2_000,
      retries: 2,
      minBackoffMs: 100,
      maxBackoffMs: 400,
    })
  }

  /** Validate settings and environment (exit 2 before any call) and build the client. */
  static async create(context: ProviderContext): Promise<AwsProvider> {
    const { env, log } = context
    const settings = parseAwsSettings(context.settings)
    // The SDK warns on stderr about its future Node support: noise in a hook's log.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
    const endpoint = settings.endpoint ?? endpointFromEnv(env)
    const profile = settings.profile ?? (env.AWS_PROFILE || undefined)
    if (settings.profile === undefined && profile) checkAwsSetting('profile', profile, 'AWS_PROFILE')
    let region = settings.region
    if (!region) {
      const [name, value] = env.AWS_REGION
        ? ['AWS_REGION', env.AWS_REGION]
        : ['AWS_DEFAULT_REGION', env.AWS_DEFAULT_REGION]
      if (value) {
        checkAwsSetting('region', value, name)
        region = value
      }
    }
    // Static keys from the environment we were given (tests pass their own); otherwise the
    // SDK's default chain: a profile, SSO, a credential process, web identity, the instance role.
    const useEnvKeys = !profile && Boolean(env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY)
    const credentials = useEnvKeys
      ? {
          accessKeyId: env.AWS_ACCESS_KEY_ID!,
          secretAccessKey: env.AWS_SECRET_ACCESS_KEY!,
          sessionToken: env.AWS_SESSION_TOKEN || undefined,
        }
      : undefined
    registerSecret(credentials?.secretAccessKey)
    registerSecret(credentials?.sessionToken)
    const config: EC2ClientConfig = {
      region,
      profile,
      endpoint,
      credentials,
      retryStrategy: new HookRetryStrategy(log),
      maxAttempts: MAX_ATTEMPTS,
      requestHandler: { connectionTimeout: 3_000, requestTimeout: 10_000 },
    }
    log.debug(
      `aws: ${settings.mode} mode, region ${region ?? '(from the profile or IMDS)'}, endpoint ${endpoint ?? '(default)'}, credentials ${useEnvKeys ? 'from AWS_ACCESS_KEY_ID' : profile ? `of profile ${profile}` : 'from the SDK default chain'}`,
    )
    return new AwsProvider(settings, config, context.cache, log, env)
  }

  get requests(): number {
    return this.attempts
  }

  get roundTrips(): number {
    return this.rounds
  }

  close(): void {
    this.cache.save()
    this.client.destroy()
    this.imds.close()
  }

  // ---- the Provider interface -------------------------------------------------

  async locate(request: LocateRequest, signal: AbortSignal): Promise<LocatedIp> {
    const { mode } = this.settings
    this.ip = request.ip && checkIp(request.ip, mode)
    this.allocationId = request.ipId && checkIpId(request.ipId, mode)
    if (request.project) this.log.debug(`aws: --project ${request.project} means nothing to AWS; ignored`)
    this.ignoredSettings(mode)
    this.region = await this.resolveRegion()
    const { eni, privateIp } = this.settings
    this.granularity = mode === 'eip' && privateIp ? 'eni-ip' : eni ? 'eni' : 'instance'

    // This host's id comes from the link-local metadata service (a millisecond); then the
    // target and the IP's state are independent look-ups, sent side by side.
    const instance = request.needTarget ? (request.instance ?? (await this.thisInstance(signal))) : undefined
    if (request.needTarget && !request.instance && request.interface) {
      this.interfaceMac = macOf(request.interface)
    }
    const target = instance === undefined ? undefined : this.resolveTarget(instance, signal)
    target?.catch(() => {}) // awaited below; avoid an unhandled rejection meanwhile
    const found = this.findIp(signal)
    found.catch(() => {})
    if (target) this.target = await target
    const raw = await found
    if (this.target) this.pinTarget(this.target)
    this.location = this.locationOf(raw)
    const state = this.stateOf(this.location)
    const located: Located = { ip: this.ip!, kind: mode, state, hostCarries: mode !== 'eip' }
    if (this.target) {
      located.target = this.targetHolder()
      if (!sameHolder(state.holder, located.target)) this.checkMovable(this.location)
      if (mode === 'route') this.warnSourceDestCheck(this.location)
      if (this.settings.dryRun) await this.preflight(this.location, signal)
    }
    return { ...located, read: (s) => this.read(s), write: (t, s) => this.write(t, s) }
  }

  private async read(signal: AbortSignal): Promise<IpState> {
    const location = this.requireLocation()
    const raw = await this.findIp(signal, location)
    this.location = this.locationOf(raw)
    return this.stateOf(this.location)
  }

  private async write(target: Holder, signal: AbortSignal): Promise<undefined> {
    const location = this.requireLocation()
    if (!this.target || target.id !== this.targetHolder().id)
      throw new Error('AwsProvider: write() to a target locate() did not resolve')
    this.wroteFrom = { holder: this.stateOf(location).holder }
    await Promise.all(this.writes(location, false).map((w) => w.send(signal)))
    // Two concurrent associates can both succeed: only a re-read tells who won.
    return undefined
  }

  // ---- locating ----------------------------------------------------------------

  private requireLocation(): Location {
    if (!this.location) throw new Error('AwsProvider: locate() must come first')
    return this.location
  }

  private ignoredSettings(mode: AwsMode): void {
    if (this.settings.routeTables.length > 0 && mode !== 'route')
      this.log.debug('aws: route-table ignored outside route mode')
    if (this.settings.privateIp && mode !== 'eip') this.log.debug('aws: private-ip ignored outside eip mode')
  }

  private async resolveRegion(): Promise<string> {
    try {
      return await this.client.config.region()
    } catch {
      throw usageError('no AWS region: pass --region, set AWS_REGION, or give the profile a region')
    }
  }

  /** --instance as an id or a Name tag (ambiguity refused). */
  private async resolveTarget(ref: string, signal: AbortSignal): Promise<TargetInstance> {
    const byId = INSTANCE_ID.test(ref)
    const output = await this.call(
      'DescribeInstances',
      (o) =>
        this.client.send(
          new DescribeInstancesCommand(
            byId
              ? { InstanceIds: [ref] }
              : {
                  Filters: [
                    { Name: 'tag:Name', Values: [ref] },
                    { Name: 'instance-state-name', Values: LIVE_STATES },
                  ],
                },
          ),
          o,
        ),
      signal,
    )
    const instances = (output.Reservations ?? [])
      .flatMap((r) => r.Instances ?? [])
      .map((i) => this.remember(i))
    if (instances.length > 1) {
      throw notFound(
        `instance name ${JSON.stringify(ref)} is ambiguous in ${this.region}: ${instances.map((i) => `${i.id} (${i.state ?? '?'})`).join(', ')}; pass the id`,
      )
    }
    const [match] = instances
    if (!match) throw notFound(`no instance ${byId ? ref : `named ${JSON.stringify(ref)}`} in ${this.region}`)
    if (match.state === 'terminated' || match.state === 'shutting-down') {
      throw notFound(`instance ${describeHolder(match)} is ${match.state}`)
    }
    if (match.state !== 'running')
      this.log.warn(`instance ${describeHolder(match)} is ${match.state ?? 'in an unknown state'}`)
    return match
  }

  private remember(instance: Instance): TargetInstance {
    const id = instance.InstanceId ?? '?'
    const name = instance.Tags?.find((t) => t.Key === 'Name')?.Value || undefined
    if (name) {
      this.names.set(id, name)
      this.cache.set(`name:${id}`, name)
    }
    const enis = (instance.NetworkInterfaces ?? []).map((ni) => ({
      id: ni.NetworkInterfaceId ?? '?',
      subnetId: ni.SubnetId,
      vpcId: ni.VpcId,
      mac: ni.MacAddress?.toLowerCase(),
      deviceIndex: ni.Attachment?.DeviceIndex ?? 0,
      sourceDestCheck: ni.SourceDestCheck,
      privateIps: (ni.PrivateIpAddresses ?? []).flatMap((p) =>
        p.PrivateIpAddress ? [p.PrivateIpAddress] : [],
      ),
    }))
    enis.sort((a, b) => a.deviceIndex - b.deviceIndex)
    return { id, name, state: instance.State?.Name, enis }
  }

  /** This host's instance id, from IMDSv2: a session token first, then the id. */
  private async thisInstance(signal: AbortSignal): Promise<string> {
    if (/^true$/i.test(this.env.AWS_EC2_METADATA_DISABLED ?? '')) {
      throw usageError(
        '--instance was omitted and AWS_EC2_METADATA_DISABLED forbids asking the metadata service',
      )
    }
    const base =
      this.env.AWS_EC2_METADATA_SERVICE_ENDPOINT ||
      (/^ipv6$/i.test(this.env.AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE ?? '') ? IMDS_IPV6 : IMDS_IPV4)
    let origin: URL
    try {
      origin = new URL(base)
    } catch {
      throw usageError(`AWS_EC2_METADATA_SERVICE_ENDPOINT ${JSON.stringify(base)} is not a URL`)
    }
    const ask = async (method: 'PUT' | 'GET', path: string, headers: Record<string, string>) => {
      let response: HttpResponse
      try {
        response = await this.imds.send({ method, url: new URL(path, origin), headers }, signal)
      } catch (error) {
        if (error instanceof TransportError) {
          throw usageError(
            `--instance was omitted and the metadata service (${origin.host}) did not answer: ${error.message}`,
          )
        }
        throw error
      }
      if (response.status !== 200) {
        throw usageError(
          `--instance was omitted and the metadata service answered ${path} with HTTP ${response.status}`,
        )
      }
      return response.text.trim()
    }
    // A short-lived token: it is used once, right away.
    const token = await ask('PUT', '/latest/api/token', { 'X-aws-ec2-metadata-token-ttl-seconds': '60' })
    const id = await ask('GET', '/latest/meta-data/instance-id', { 'X-aws-ec2-metadata-token': token })
    if (!INSTANCE_ID.test(id)) {
      throw usageError(`the metadata service gave ${JSON.stringify(id.slice(0, 40))}, not an instance id`)
    }
    this.log.debug(`aws: this host is ${id} (IMDSv2)`)
    return id
  }

  /** Resolve --eni / --private-ip on the target: they must be its own. */
  private pinTarget(target: TargetInstance): void {
    const { eni: eniId, privateIp } = this.settings
    const mode = this.settings.mode
    if (!eniId && !(mode === 'eip' && privateIp)) return
    const list = target.enis.map((e) => e.id).join(', ') || 'none'
    let eni = eniId ? target.enis.find((e) => e.id === eniId) : undefined
    if (eniId && !eni)
      throw notFound(`${eniId} is not attached to ${describeHolder(target)} (its interfaces: ${list})`)
    if (mode === 'eip' && privateIp) {
      const owner = target.enis.find((e) => e.privateIps.includes(privateIp))
      if (!owner || (eni && owner !== eni)) {
        throw notFound(`${privateIp} is not a private address of ${eni?.id ?? describeHolder(target)}`)
      }
      eni = owner
    }
    this.pinned = { eni: eni!, privateIp: mode === 'eip' ? privateIp : undefined }
  }

  // ---- reading ------------------------------------------------------------------

  /** One read of the IP's state, in the mode's terms. */
  private async findIp(signal: AbortSignal, location?: Location): Promise<RawState> {
    switch (this.settings.mode) {
      case 'eip': {
        const allocationId = location?.mode === 'eip' ? location.allocationId : this.allocationId
        const input = allocationId
          ? { AllocationIds: [allocationId] }
          : { Filters: [{ Name: 'public-ip', Values: [this.ip!.address] }] }
        const output = await this.call(
          'DescribeAddresses',
          (o) => this.client.send(new DescribeAddressesCommand(input), o),
          signal,
        )
        return { addresses: output.Addresses ?? [] }
      }
      case 'private': {
        const vpcId = location?.mode === 'private' ? location.vpcId : undefined
        const filters = [{ Name: 'addresses.private-ip-address', Values: [this.ip!.address] }]
        if (vpcId) filters.push({ Name: 'vpc-id', Values: [vpcId] })
        const output = await this.call(
          'DescribeNetworkInterfaces',
          (o) => this.client.send(new DescribeNetworkInterfacesCommand({ Filters: filters }), o),
          signal,
        )
        return { interfaces: output.NetworkInterfaces ?? [] }
      }
      case 'route': {
        const ids = location?.mode === 'route' ? location.tables : this.settings.routeTables
        const output = await this.call(
          'DescribeRouteTables',
          (o) =>
            this.client.send(
              new DescribeRouteTablesCommand(
                ids.length > 0
                  ? { RouteTableIds: ids }
                  : { Filters: [{ Name: 'route.destination-cidr-block', Values: [this.ip!.block] }] },
              ),
              o,
            ),
          signal,
        )
        return { tables: output.RouteTables ?? [] }
      }
    }
  }

  private locationOf(raw: RawState): Location {
    switch (this.settings.mode) {
      case 'eip': {
        const ip = this.ip
        const address = raw.addresses?.find(
          (a) =>
            (!ip || a.PublicIp === ip.address) &&
            (!this.allocationId || a.AllocationId === this.allocationId),
        )
        if (!address?.AllocationId || !address.PublicIp) {
          const what = [ip?.address, this.allocationId].filter(Boolean).join(' with allocation id ')
          throw notFound(`${what} is not an Elastic IP of this account in ${this.region}`)
        }
        this.ip ??= parseIp(address.PublicIp, 'the Elastic IP')
        const current =
          address.NetworkInterfaceId || address.InstanceId
            ? {
                instanceId: address.InstanceId,
                eniId: address.NetworkInterfaceId,
                privateIp: address.PrivateIpAddress,
              }
            : null
        return { mode: 'eip', allocationId: address.AllocationId, current }
      }
      case 'private':
        return this.privateLocation(raw.interfaces ?? [])
      case 'route':
        return this.routeLocation(raw.tables ?? [])
    }
  }

  private privateLocation(interfaces: NetworkInterface[]): Location {
    const ip = this.ip!
    const targetVpc = this.target?.enis[0]?.vpcId
    let holders = interfaces.filter((ni) =>
      ni.PrivateIpAddresses?.some((p) => p.PrivateIpAddress === ip.address),
    )
    if (targetVpc) holders = holders.filter((ni) => ni.VpcId === targetVpc)
    if (holders.length > 1) {
      throw notFound(
        `${ip.address} is on interfaces of several VPCs (${holders.map((ni) => `${ni.NetworkInterfaceId} in ${ni.VpcId}`).join(', ')}); pass --instance`,
      )
    }
    const [ni] = holders
    const previous = this.location?.mode === 'private' ? this.location.vpcId : undefined
    const vpcId = targetVpc ?? ni?.VpcId ?? previous
    if (!ni) return { mode: 'private', vpcId, current: null }
    const primary = ni.PrivateIpAddresses?.find((p) => p.PrivateIpAddress === ip.address)?.Primary === true
    return {
      mode: 'private',
      vpcId,
      current: {
        instanceId: ni.Attachment?.InstanceId,
        eniId: ni.NetworkInterfaceId,
        subnetId: ni.SubnetId,
        privateIp: primary ? 'primary' : undefined,
      },
    }
  }

  private routeLocation(tables: RouteTable[]): Location {
    const ip = this.ip!
    if (tables.length === 0) {
      throw notFound(
        `no route table in ${this.region} has a route for ${ip.block}; pass --route-table to create one`,
      )
    }
    const current = new Map<string, Attachment | null>()
    for (const table of tables) {
      const route = table.Routes?.find((r) => r.DestinationCidrBlock === ip.block)
      current.set(table.RouteTableId ?? '?', route ? routeAttachment(route) : null)
    }
    return { mode: 'route', tables: [...current.keys()], current }
  }

  // ---- state ------------------------------------------------------------------------

  private stateOf(location: Location): IpState {
    if (location.mode !== 'route')
      return this.settling({ holder: this.holderOf(location.current), pending: false })
    const entries = [...location.current.entries()].map(([table, attachment]) => ({
      table,
      holder: this.holderOf(attachment),
      blackhole: attachment?.blackhole,
    }))
    const first = entries[0]!
    const blackholes = entries.filter((e) => e.blackhole).map((e) => e.table)
    const blackholeNote = blackholes.length ? `blackhole in ${blackholes.join(', ')}` : undefined
    if (entries.every((e) => sameHolder(e.holder, first.holder) || (!e.holder && !first.holder))) {
      return this.settling({ holder: first.holder, pending: false, note: blackholeNote })
    }
    const target = this.target ? this.targetHolder() : undefined
    const from = this.wroteFrom?.holder
    const updated = entries.filter((e) => sameHolder(e.holder, target)).length
    if (
      this.wroteFrom &&
      entries.every((e) => sameHolder(e.holder, target) || !e.holder || sameHolder(e.holder, from))
    ) {
      return {
        holder: from ?? null,
        pending: true,
        note: `${updated} of ${entries.length} route tables updated`,
      }
    }
    const odd = entries.find((e) => !sameHolder(e.holder, target)) ?? first
    return {
      holder: odd.holder,
      pending: false,
      note: `route tables disagree: ${entries.map((e) => `${e.table} → ${describeHolder(e.holder)}`).join(', ')}`,
    }
  }

  /** After our write, "held by nobody" is the move in flight, not someone else's doing. */
  private settling(state: IpState): IpState {
    if (this.wroteFrom && !state.holder && this.wroteFrom.holder) {
      return { ...state, pending: true, note: 'settling after our write' }
    }
    return state
  }

  private holderOf(attachment: Attachment | null): Holder | null {
    if (!attachment) return null
    const name = attachment.instanceId ? this.nameOf(attachment.instanceId) : undefined
    if (this.granularity === 'instance' || !attachment.eniId) {
      const id = attachment.instanceId ?? attachment.eniId ?? attachment.other
      return id ? { id, name } : null
    }
    const id =
      this.granularity === 'eni-ip' && attachment.privateIp
        ? `${attachment.eniId}/${attachment.privateIp}`
        : attachment.eniId
    return { id, name: name ?? attachment.instanceId }
  }

  private nameOf(instanceId: string): string | undefined {
    const known = this.names.get(instanceId) ?? this.cache.get(`name:${instanceId}`)
    if (known) this.names.set(instanceId, known)
    return known
  }

  private targetHolder(): Holder {
    const target = this.target!
    if (this.granularity === 'instance' || !this.pinned) return { id: target.id, name: target.name }
    const { eni, privateIp } = this.pinned
    const id = this.granularity === 'eni-ip' && privateIp ? `${eni.id}/${privateIp}` : eni.id
    return { id, name: target.name ?? target.id }
  }

  /**
   * The target's interface to write to: the pinned one; else, when this host is the
   * target, the one behind --interface (same MAC); else one of the target's
   * interfaces that already carries the IP; in private mode, one in the holder's
   * subnet (a private IP never leaves its subnet); else the primary interface.
   */
  private targetEni(current: Attachment | null | undefined): Eni {
    const target = this.target!
    if (this.pinned) return this.pinned.eni
    const local = this.interfaceMac ? target.enis.find((e) => e.mac === this.interfaceMac) : undefined
    if (local) return local
    const own = target.enis.find((e) => e.id === current?.eniId)
    if (own) return own
    if (this.settings.mode === 'private' && current?.subnetId) {
      const sameSubnet = target.enis.find((e) => e.subnetId === current.subnetId)
      if (!sameSubnet) {
        throw notFound(
          `${describeHolder(target)} has no interface in ${current.subnetId}, where ${this.ip!.address} lives (a private IP moves only within its subnet)`,
        )
      }
      return sameSubnet
    }
    const primary = target.enis[0]
    if (!primary) throw notFound(`${describeHolder(target)} has no network interface`)
    return primary
  }

  /** Refuse, before any write, what EC2 would refuse or what cannot be what the user meant. */
  private checkMovable(location: Location): void {
    if (location.mode === 'private' && location.current?.privateIp === 'primary') {
      throw usageError(
        `${this.ip!.address} is the primary address of ${location.current.eniId} (${describeHolder(this.holderOf(location.current))}); only secondary addresses can move`,
      )
    }
    if (location.mode === 'private') this.targetEni(location.current)
  }

  private warnSourceDestCheck(location: Location): void {
    if (location.mode !== 'route') return
    const eni = this.targetEni(this.currentOnTarget(location))
    if (eni.sourceDestCheck !== false) {
      this.log.warn(
        `source/destination check is on for ${eni.id}: the instance will drop traffic for ${this.ip!.block} until it is turned off`,
      )
    }
  }

  /** In route mode: a table's current attachment that is already one of the target's interfaces, if any. */
  private currentOnTarget(location: Extract<Location, { mode: 'route' }>): Attachment | null {
    const enis = new Set(this.target?.enis.map((e) => e.id))
    return [...location.current.values()].find((a) => a?.eniId && enis.has(a.eniId)) ?? null
  }

  // ---- writing ------------------------------------------------------------------------

  /** The writes that move the IP to the target, each ready to send (or to dry-run). */
  private writes(location: Location, dryRun: boolean): Write[] {
    const target = this.target!
    const DryRun = dryRun || undefined
    switch (location.mode) {
      case 'eip': {
        const input: ConstructorParameters<typeof AssociateAddressCommand>[0] = {
          AllocationId: location.allocationId,
          AllowReassociation: true,
          DryRun,
        }
        if (this.pinned) {
          input.NetworkInterfaceId = this.pinned.eni.id
          input.PrivateIpAddress = this.pinned.privateIp
        } else if (target.enis.length > 1) {
          // EC2 refuses InstanceId for an instance with several interfaces.
          input.NetworkInterfaceId = this.targetEni(location.current).id
        } else {
          input.InstanceId = target.id
        }
        return [
          {
            action: 'AssociateAddress',
            send: (signal) =>
              this.sendWrite(
                'AssociateAddress',
                (o) => this.client.send(new AssociateAddressCommand(input), o),
                signal,
                dryRun,
              ),
          },
        ]
      }
      case 'private': {
        const eni = this.targetEni(location.current)
        const input = {
          NetworkInterfaceId: eni.id,
          PrivateIpAddresses: [this.ip!.address],
          AllowReassignment: true,
        }
        return [
          {
            action: 'AssignPrivateIpAddresses',
            send: (signal) =>
              this.sendWrite(
                'AssignPrivateIpAddresses',
                (o) => this.client.send(new AssignPrivateIpAddressesCommand(input), o),
                signal,
                dryRun,
              ),
          },
        ]
      }
      case 'route': {
        const eni = this.targetEni(this.currentOnTarget(location))
        const block = this.ip!.block
        return [...location.current.entries()]
          .filter(([, attachment]) => dryRun || attachment?.eniId !== eni.id)
          .map(([table, attachment]) => {
            const input = {
              RouteTableId: table,
              DestinationCidrBlock: block,
              NetworkInterfaceId: eni.id,
              DryRun,
            }
            const replace = (signal: AbortSignal) =>
              this.sendWrite(
                'ReplaceRoute',
                (o) => this.client.send(new ReplaceRouteCommand(input), o),
                signal,
                dryRun,
              )
            const create = (signal: AbortSignal) =>
              this.sendWrite(
                'CreateRoute',
                (o) => this.client.send(new CreateRouteCommand(input), o),
                signal,
                dryRun,
              )
            return {
              action: attachment ? 'ReplaceRoute' : 'CreateRoute',
              // The route may have appeared or vanished since we read: fall over to the other call.
              send: (signal: AbortSignal) =>
                (attachment ? replace(signal) : create(signal)).catch((error: unknown) => {
                  const code = (error as IpmoveError).details?.awsCode
                  if (attachment && code === 'InvalidRoute.NotFound') return create(signal)
                  if (!attachment && code === 'RouteAlreadyExists') return replace(signal)
                  throw error
                }),
            }
          })
      }
    }
  }

  /**
   * `--dry-run`: send every write with EC2's DryRun, a real permission check that
   * names a missing IAM action (exit 3) and writes nothing. AssignPrivateIpAddresses
   * has no DryRun in the EC2 API, so private mode cannot be checked that way.
   */
  private async preflight(location: Location, signal: AbortSignal): Promise<void> {
    if (location.mode === 'private') {
      this.log.info(
        'dry run: ec2:AssignPrivateIpAddresses has no DryRun in the EC2 API; its permission is not checked',
      )
      return
    }
    const writes = this.writes(location, true)
    await Promise.all(writes.map((w) => w.send(signal)))
    const actions = [...new Set(writes.map((w) => `ec2:${w.action}`))]
    this.log.info(`dry run: EC2 would allow ${actions.join(', ')} (DryRunOperation)`)
  }

  // ---- calling EC2 --------------------------------------------------------------------

  private async call<Output>(
    action: string,
    send: (options: { abortSignal: AbortSignal }) => Promise<Output>,
    signal: AbortSignal,
    options: CallOptions = {},
  ): Promise<Output> {
    this.retry.signal = signal
    try {
      return await send({ abortSignal: signal })
    } catch (error) {
      throw this.apiError(action, error as SdkError, signal, options)
    }
  }

  /** A write, or with `dryRun` its permission check: EC2 answers DryRunOperation when it would be allowed. */
  private async sendWrite(
    action: string,
    send: (options: { abortSignal: AbortSignal }) => Promise<unknown>,
    signal: AbortSignal,
    dryRun: boolean,
  ): Promise<void> {
    try {
      await this.call(action, send, signal, { write: !dryRun, dryRun })
    } catch (error) {
      if (dryRun && error instanceof IpmoveError && error.details?.awsCode === 'DryRunOperation') return
      throw error
    }
  }

  /** Map an SDK failure to ipmove's exit codes, naming the EC2 action (and the IAM action refused). */
  private apiError(action: string, error: SdkError, signal: AbortSignal, options: CallOptions): IpmoveError {
    if (error instanceof IpmoveError) return error
    const name = error.name
    const status = error.$metadata?.httpStatusCode
    const attempts = error.$metadata?.attempts
    const dry = options.dryRun ? 'dry run: ' : ''
    const [message, encoded] = splitEncoded(error.message)
    const details: Record<string, unknown> = { awsCode: name, httpStatus: status, action: `ec2:${action}` }
    if (encoded) details.encodedAuthorizationMessage = encoded
    if (signal.aborted) {
      return new IpmoveError('timeout', `timed out waiting for EC2 ${action}`, {
        ...details,
        ambiguous: options.write,
      })
    }
    if (name === 'CredentialsProviderError') {
      return new IpmoveError('auth', `no usable AWS credentials: ${message}`, details)
    }
    if (AUTH_CODES.has(name) || name.endsWith('.UnauthorizedOperation')) {
      const what =
        name === 'AuthFailure' || name === 'SignatureDoesNotMatch'
          ? 'EC2 refused the credentials for'
          : 'IAM does not allow'
      return new IpmoveError('auth', `${dry}${what} ec2:${action} (${name}): ${message}`, details)
    }
    if (name.endsWith('.NotFound'))
      return new IpmoveError('not-found', `EC2 ${action}: ${name}: ${message}`, details)
    if (BUSY_CODES.has(name)) return new IpmoveError('busy', `EC2 ${action}: ${name}: ${message}`, details)
    if (INPUT_CODES.has(name) || name.endsWith('.Malformed')) {
      return new IpmoveError(
        'usage',
        `${dry}EC2 ${action} refused the request (${name}): ${message}`,
        details,
      )
    }
    const throttled = /Throttl|LimitExceeded|SlowDown/.test(name) || status === 429
    const network =
      NOT_SENT.has(error.code ?? '') ||
      ['ECONNRESET', 'ETIMEDOUT', 'EPIPE'].includes(error.code ?? '') ||
      name === 'TimeoutError'
    if (throttled || network || (status !== undefined && status >= 500)) {
      // Throttled or never sent: nothing was written. Otherwise a write may have landed.
      const ambiguous = Boolean(options.write) && !throttled && !NOT_SENT.has(error.code ?? '')
      const after = attempts ? ` after ${attempts} attempts` : ''
      return new IpmoveError(
        ambiguous ? 'ambiguous-write' : 'unreachable',
        `EC2 ${action} failed${after}: ${status ? `HTTP ${status} ` : ''}${error.code ?? name}${message && message !== name ? `: ${message}` : ''}`,
        { ...details, ambiguous },
      )
    }
    if (/Region is missing/i.test(message)) {
      return usageError('no AWS region: pass --region, set AWS_REGION, or give the profile a region')
    }
    return new IpmoveError('provider-failed', `EC2 ${action}: ${name}: ${message}`, details)
  }
}

// ---- helpers ---------------------------------------------------------------------------

/** A local interface's hardware address; loopback and tunnels have none worth matching. */
function macOf(name: string): string | undefined {
  const mac = networkInterfaces()[name]?.find((a) => a.mac && a.mac !== '00:00:00:00:00:00')?.mac
  return mac?.toLowerCase()
}

function routeAttachment(route: Route): Attachment {
  return {
    instanceId: route.InstanceId,
    eniId: route.NetworkInterfaceId,
    other:
      route.GatewayId ??
      route.NatGatewayId ??
      route.TransitGatewayId ??
      route.VpcPeeringConnectionId ??
      route.LocalGatewayId ??
      route.CarrierGatewayId ??
      route.EgressOnlyInternetGatewayId ??
      route.CoreNetworkArn,
    blackhole: route.State === 'blackhole',
  }
}

/** --ip-id is what AWS calls an Elastic IP: its allocation id. */
function checkIpId(id: string, mode: AwsMode): string {
  if (mode !== 'eip') throw usageError(`--ip-id names an Elastic IP (eipalloc-…); --mode ${mode} needs --ip`)
  if (!ALLOCATION_ID.test(id))
    throw usageError(`--ip-id ${JSON.stringify(id)} is not an allocation id (eipalloc-…)`)
  return id
}

/** EIPs and secondary private IPs are single IPv4 addresses; routes take any IPv4 block. */
function checkIp(ip: IpBlock, mode: AwsMode): IpBlock {
  if (ip.version !== 4) throw usageError(`--mode ${mode} moves IPv4 addresses; ${ip.block} is IPv6`)
  if (mode !== 'route' && ip.prefix !== 32)
    throw usageError(`--mode ${mode} moves one address, not the block ${ip.block}`)
  return ip
}

/** The SDK's own endpoint variables, read from the environment we were given. */
function endpointFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  if (/^true$/i.test(env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS ?? '')) return undefined
  for (const name of ['AWS_ENDPOINT_URL_EC2', 'AWS_ENDPOINT_URL']) {
    const value = env[name]
    if (value) {
      checkAwsSetting('endpoint', value, name)
      return value
    }
  }
  return undefined
}

/** IAM's refusals end with a long encoded blob (for `aws sts decode-authorization-message`): keep it out of the one-line error. */
function splitEncoded(message: string): [string, string | undefined] {
  const at = message.indexOf(' Encoded authorization failure message:')
  if (at < 0) return [message, undefined]
  return [
    message.slice(0, at).trim(),
    message.slice(at).replace(/^ Encoded authorization failure message:\s*/, ''),
  ]
}
