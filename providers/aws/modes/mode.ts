/**
 * One way of moving an IP on AWS, as ClusterLabs' awseip, awsvip and
 * aws-vpc-move-ip are three agents. A mode reads where EC2 points the IP and
 * writes it to the target; what holders are, and the EC2 client, it gets from
 * the located IP (../located.ts). A new mode is a module here, a line in
 * MODES (../provider.ts), and its name and EC2 actions in ../settings.ts (for
 * the flags and `ipmove aws policy`, which must not load the SDK).
 */
import type { IpState } from '../../../src/core/provider.js'
import { usageError } from '../../../src/errors.js'
import type { IpBlock } from '../../../src/validate.js'
import type { AwsIp } from '../located.js'
import type { AwsMode } from '../settings.js'

/** One EC2 write, ready to send (or to dry-run). */
export interface Write {
  action: string
  send(signal: AbortSignal): Promise<void>
}

/**
 * A mode's reads and writes for one located IP. A read is two steps, so that
 * locating can resolve the target side by side with the call: `fetch` asks
 * EC2 (`R` is its answer), `locate` makes sense of it once the target is known
 * (`L`). `previous` is the last read's location, to keep reading the same thing.
 */
export interface ModeOps<R, L> {
  fetch(signal: AbortSignal, previous?: L): Promise<R>
  locate(raw: R, previous?: L): L
  state(location: L): IpState
  /**
   * Before any write, refuse what EC2 would refuse or what cannot be what the
   * user meant (`inPlace`: the IP is already on the target), and warn about
   * what would keep the move from working.
   */
  check(location: L, inPlace: boolean): void
  writes(location: L, dryRun: boolean): Write[]
}

export interface ModeModule {
  readonly name: AwsMode
  /** False when the cloud maps the IP onto an address the host already has (an EIP is NATed). */
  readonly hostCarries: boolean
  /** False where EC2 has no DryRun for the mode's write, so `--dry-run` cannot check its permission. */
  readonly dryRunnable: boolean
  /** Refuse, before any call, an IP or `--ip-id` the mode cannot move (exit 2). */
  checkRequest(ip: IpBlock | undefined, ipId: string | undefined): void
  // biome-ignore lint/suspicious/noExplicitAny: each mode has its own location type, opaque to the caller
  open(ip: AwsIp): ModeOps<any, any>
}

/** Every mode moves IPv4 only; EIPs and private IPs are single addresses, routes take any block. */
export function checkIpv4(ip: IpBlock | undefined, mode: AwsMode, single: boolean): void {
  if (!ip) return
  if (ip.version !== 4) throw usageError(`--mode ${mode} moves IPv4 addresses; ${ip.block} is IPv6`)
  if (single && ip.prefix !== 32)
    throw usageError(`--mode ${mode} moves one address, not the block ${ip.block}`)
}

/** Only Elastic IPs have an id of their own (the allocation id). */
export function refuseIpId(ipId: string | undefined, mode: AwsMode): void {
  if (ipId !== undefined)
    throw usageError(`--ip-id names an Elastic IP (eipalloc-…); --mode ${mode} needs --ip`)
}
