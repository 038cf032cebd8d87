/**
 * AWS EC2, in three modes — the jobs of ClusterLabs' awseip, awsvip and
 * aws-vpc-move-ip, one module each under modes/:
 * - eip: an Elastic IP, re-associated to the target;
 * - private: a secondary private IP, re-assigned to the target's interface in the same subnet;
 * - route: routes for the IP in one or more route tables, pointed at the target's interface.
 * EC2 answers writes synchronously but reads are eventually consistent, and two
 * concurrent writes can both succeed: after our write the engine re-reads until
 * the API shows the target, and stops (superseded) if it shows a third holder.
 *
 * This module, client.ts, instances.ts and the modes load the AWS SDK; only the
 * commands sent are imported, so the bundle keeps just their schemas (see
 * scripts/build.mjs). The registry (index.ts) loads them lazily.
 */
import type { IdCache } from '../../src/cache.js'
import type {
  Holder,
  IpState,
  ListedIp,
  Located,
  LocatedIp,
  LocateRequest,
  Provider,
  ProviderContext,
} from '../../src/core/provider.js'
import { sameHolder } from '../../src/core/provider.js'
import { IpmoveError } from '../../src/errors.js'
import type { Logger } from '../../src/output.js'
import { Ec2 } from './client.js'
import { findInstance, InstanceNames, macOf } from './instances.js'
import { listElasticIps } from './list.js'
import { AwsIp } from './located.js'
import { eip } from './modes/eip.js'
import type { ModeModule, ModeOps } from './modes/mode.js'
import { privateIp } from './modes/private.js'
import { route } from './modes/route.js'
import { AWS_MODE_ACTIONS, type AwsMode, type AwsSettings, parseAwsSettings } from './settings.js'

/** The ways of moving an IP; settings.ts lists their names and EC2 actions without loading the SDK. */
const MODES: Record<AwsMode, ModeModule> = { eip, private: privateIp, route }

export class AwsProvider implements Provider {
  readonly name = 'aws'
  readonly hasCloudApi = true
  private readonly names: InstanceNames
  private readonly mode: ModeModule

  private constructor(
    private readonly settings: AwsSettings,
    private readonly ec2: Ec2,
    private readonly cache: IdCache,
    private readonly log: Logger,
  ) {
    this.names = new InstanceNames(cache)
    this.mode = MODES[settings.mode]
  }

  /** Validate settings and environment (exit 2 before any call) and build the client. */
  static async create(context: ProviderContext): Promise<AwsProvider> {
    const settings = parseAwsSettings(context.settings)
    const ec2 = Ec2.create(settings, context.env, context.log)
    return new AwsProvider(settings, ec2, context.cache, context.log)
  }

  get requests(): number {
    return this.ec2.attempts
  }

  get roundTrips(): number {
    return this.ec2.rounds
  }

  close(): void {
    this.cache.save()
    this.ec2.close()
  }

  async locate(request: LocateRequest, signal: AbortSignal): Promise<LocatedIp> {
    const { mode, settings, ec2, log } = this
    mode.checkRequest(request.ip, request.ipId)
    if (request.project) log.debug(`aws: --project ${request.project} means nothing to AWS; ignored`)
    if (settings.routeTables.length > 0 && mode.name !== 'route')
      log.debug('aws: route-table ignored outside route mode')
    if (settings.privateIp && mode.name !== 'eip') log.debug('aws: private-ip ignored outside eip mode')
    const region = await ec2.region()

    // This host's id comes from the link-local metadata service (a millisecond); then the
    // target and the IP's state are independent look-ups, sent side by side.
    const instance = request.needTarget ? (request.instance ?? (await ec2.thisInstance(signal))) : undefined
    const interfaceMac =
      request.needTarget && !request.instance && request.interface ? macOf(request.interface) : undefined
    const ip = new AwsIp(ec2, settings, region, this.names, log, request.ip, request.ipId, interfaceMac)
    const ops: ModeOps<unknown, unknown> = mode.open(ip)
    const target =
      instance === undefined
        ? undefined
        : findInstance(ec2, instance, { region, names: this.names, log }, signal)
    target?.catch(() => {}) // awaited below; avoid an unhandled rejection meanwhile
    const found = ops.fetch(signal)
    found.catch(() => {})
    if (target) ip.target = await target
    const raw = await found
    if (ip.target) ip.pinTarget()
    let location = ops.locate(raw)
    const state = ops.state(location)
    const located: Located = { ip: ip.ip!, kind: mode.name, state, hostCarries: mode.hostCarries }
    if (ip.target) {
      located.target = ip.targetHolder()
      ops.check(location, sameHolder(state.holder, located.target))
      if (settings.dryRun) await this.preflight(ops, location, signal)
    }

    const read = async (s: AbortSignal): Promise<IpState> => {
      location = ops.locate(await ops.fetch(s, location), location)
      return ops.state(location)
    }
    const write = async (to: Holder, s: AbortSignal): Promise<undefined> => {
      if (!ip.target || to.id !== ip.targetHolder().id)
        throw new IpmoveError('internal', `aws: asked to write to ${to.id}, which locate() did not resolve`)
      ip.wroteFrom = { holder: ops.state(location).holder }
      ip.unwritten.clear()
      const writes = ops.writes(location, false)
      const results = await Promise.allSettled(writes.map((w) => w.send(s)))
      results.forEach((result, i) => {
        const table = writes[i]?.table
        if (result.status === 'rejected' && table) ip.unwritten.add(table)
      })
      const failed = results.find((r) => r.status === 'rejected')
      if (failed) throw failed.reason
      // Two concurrent associates can both succeed: only a re-read tells who won.
      return undefined
    }
    return { ...located, read, write }
  }

  /** `ipmove list`: the region's Elastic IPs, whatever --mode says (the other modes move private addresses). */
  async list(_request: unknown, signal: AbortSignal): Promise<ListedIp[]> {
    return listElasticIps(this.ec2, this.names, signal)
  }

  /**
   * `--dry-run`: send every write with EC2's DryRun, a real permission check that
   * names a missing IAM action (exit 3) and writes nothing. Where the EC2 API has
   * no DryRun for the write (AssignPrivateIpAddresses), its permission cannot be checked.
   */
  private async preflight(
    ops: ModeOps<unknown, unknown>,
    location: unknown,
    signal: AbortSignal,
  ): Promise<void> {
    if (!this.mode.dryRunnable) {
      const actions = AWS_MODE_ACTIONS[this.mode.name].writes.map((action) => `ec2:${action}`)
      this.log.info(
        `dry run: ${actions.join(', ')} has no DryRun in the EC2 API; its permission is not checked`,
      )
      return
    }
    const writes = ops.writes(location, true)
    await Promise.all(writes.map((w) => w.send(signal)))
    const actions = [...new Set(writes.map((w) => `ec2:${w.action}`))]
    this.log.info(`dry run: EC2 would allow ${actions.join(', ')} (DryRunOperation)`)
  }
}
