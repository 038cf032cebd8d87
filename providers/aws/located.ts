/**
 * One located AWS IP: who the target is, how holders are told apart, and what
 * our write changed. The modes read and write through it; the engine sees it
 * as a LocatedIp handle, so two located IPs never share state.
 */
import type { Holder, IpState } from '../../src/core/provider.js'
import { describeHolder } from '../../src/core/provider.js'
import { notFound } from '../../src/errors.js'
import type { Logger } from '../../src/output.js'
import type { IpBlock } from '../../src/validate.js'
import type { Ec2 } from './client.js'
import type { Eni, InstanceNames, TargetInstance } from './instances.js'
import type { AwsSettings } from './settings.js'

/** Where the API points the IP: an interface, its instance, its private address, or a gateway. */
export interface Attachment {
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

export class AwsIp {
  /** The target, once resolved (absent for `status`). */
  target: TargetInstance | undefined
  /** The holder when we wrote; after a write, a state in between is "settling", not someone else's. */
  wroteFrom: { holder: Holder | null } | undefined
  private readonly granularity: Granularity
  /** The interface (and address) --eni / --private-ip pin, once resolved on the target. */
  private pinned: { eni: Eni; privateIp?: string } | undefined

  constructor(
    readonly ec2: Ec2,
    readonly settings: AwsSettings,
    readonly region: string,
    readonly names: InstanceNames,
    readonly log: Logger,
    /** The IP, from --ip or, for an EIP given by --ip-id, from the API. */
    public ip: IpBlock | undefined,
    /** --ip-id: an Elastic IP's allocation id. */
    readonly allocationId: string | undefined,
    /** The MAC of this host's --interface, when this host is the target: it names the ENI to use. */
    private readonly interfaceMac: string | undefined,
  ) {
    const { mode, eni, privateIp } = settings
    this.granularity = mode === 'eip' && privateIp ? 'eni-ip' : eni ? 'eni' : 'instance'
  }

  /** Resolve --eni / --private-ip on the target: they must be its own. */
  pinTarget(): void {
    const target = this.target!
    const { eni: eniId, privateIp, mode } = this.settings
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

  /** The interface (and EIP private address) --eni / --private-ip pinned on the target. */
  get pin(): { eni: Eni; privateIp?: string } | undefined {
    return this.pinned
  }

  holderOf(attachment: Attachment | null): Holder | null {
    if (!attachment) return null
    const name = attachment.instanceId ? this.names.get(attachment.instanceId) : undefined
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

  targetHolder(): Holder {
    const target = this.target!
    if (this.granularity === 'instance' || !this.pinned) return { id: target.id, name: target.name }
    const { eni, privateIp } = this.pinned
    const id = this.granularity === 'eni-ip' && privateIp ? `${eni.id}/${privateIp}` : eni.id
    return { id, name: target.name ?? target.id }
  }

  /**
   * The target's interface to write to: the pinned one; else, when this host is the
   * target, the one behind --interface (same MAC); else one of the target's
   * interfaces that already carries the IP; for a private IP, one in the holder's
   * subnet (a private IP never leaves its subnet); else the primary interface.
   */
  targetEni(current: Attachment | null | undefined): Eni {
    const target = this.target!
    if (this.pinned) return this.pinned.eni
    const local = this.interfaceMac ? target.enis.find((e) => e.mac === this.interfaceMac) : undefined
    if (local) return local
    const own = target.enis.find((e) => e.id === current?.eniId)
    if (own) return own
    if (current?.subnetId) {
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

  /** After our write, "held by nobody" is the move in flight, not someone else's doing. */
  settling(state: IpState): IpState {
    if (this.wroteFrom && !state.holder && this.wroteFrom.holder) {
      return { ...state, pending: true, note: 'settling after our write' }
    }
    return state
  }
}
