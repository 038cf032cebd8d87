import { IpmoveError, usageError } from '../errors.js'
import { type IpBlock, parseIp, shown, validateInterface } from '../validate.js'
import { type AnnounceSettings, type AnnounceTool, announceBurst, findAnnounceTool } from './announce.js'
import { type AddressDriver, type AddressEntry, findAddress, localError } from './driver.js'
import { pickDriver } from './platform.js'

export interface AddAliasOptions {
  /** `192.0.2.50`, `2001:db8::50` or a block; a bare address becomes /32 or /128. */
  ip: string | IpBlock
  interface: string
  /** Linux IPv4 label: `vip` (or `eth0:vip`) becomes `eth0:vip`. */
  label?: string
  announce: AnnounceSettings | false
  /** IPv6: skip duplicate address detection (Linux), so the address is usable at once. */
  nodad?: boolean
  /** The platform's driver by default. */
  driver?: AddressDriver
}

export interface AliasTarget {
  ip: string | IpBlock
  interface: string
  /** The platform's driver by default. */
  driver?: AddressDriver
}

export type Announced =
  | { tool: string; count: number; intervalMs: number }
  /** Announcing was asked for but makes no sense here (loopback, no link-layer address). */
  | { skipped: string }
  | false

export interface AliasResult {
  /** The block as configured, e.g. `192.0.2.50/32`. */
  ip: string
  interface: string
  /** False when the address was already there (add) or already absent (remove). */
  changed: boolean
}

export interface AddAliasResult extends AliasResult {
  label?: string
  announced: Announced
}

export interface ShowAliasesOptions {
  interface?: string
}

const LABEL = /^[A-Za-z0-9_.-]+$/
const MAX_COUNT = 100
const MAX_INTERVAL_MS = 60_000

function toBlock(ip: string | IpBlock): IpBlock {
  return typeof ip === 'string' ? parseIp(ip) : ip
}

/** Linux labels are `IF:LABEL`, at most 15 bytes in all (IFNAMSIZ - 1). */
export function checkLabel(label: string, iface: string, ip: IpBlock): string {
  const bare = label.startsWith(`${iface}:`) ? label.slice(iface.length + 1) : label
  if (!LABEL.test(bare)) {
    throw usageError(`--label ${shown(label)} may hold only letters, digits, _ . -`)
  }
  if (iface.length + 1 + bare.length > 15) {
    throw usageError(`--label ${shown(`${iface}:${bare}`)} is longer than 15 characters`)
  }
  if (ip.version !== 4) throw usageError('--label applies to IPv4 addresses only')
  return bare
}

export function checkAnnounce(settings: AnnounceSettings | false): AnnounceSettings | false {
  if (!settings) return false
  const { count, intervalMs } = settings
  if (!Number.isInteger(count) || count < 1 || count > MAX_COUNT) {
    throw usageError(`--count must be a whole number from 1 to ${MAX_COUNT}`)
  }
  if (!Number.isInteger(intervalMs) || intervalMs < 1 || intervalMs > MAX_INTERVAL_MS) {
    throw usageError(`--interval must be a whole number of milliseconds from 1 to ${MAX_INTERVAL_MS}`)
  }
  return settings
}

/** Loopback and interfaces without a MAC (tun, wireguard) have no neighbours to tell. */
export function hasNeighbours(mac: string | undefined): mac is string {
  return Boolean(mac && !/^(00:)+00$/.test(mac))
}

/**
 * One address on one interface, checked and ready: input, driver and the
 * announcing tool are all settled before anything changes, so `move` can fail
 * on a missing arping before it asks the cloud for anything.
 */
export class LocalAddress {
  private constructor(
    readonly ip: IpBlock,
    readonly iface: string,
    private readonly label: string | undefined,
    private readonly settings: AnnounceSettings | false,
    private readonly nodad: boolean | undefined,
    private readonly driver: AddressDriver,
    private readonly tool: AnnounceTool | undefined,
  ) {}

  static async prepare(options: AddAliasOptions): Promise<LocalAddress> {
    const ip = toBlock(options.ip)
    const iface = validateInterface(options.interface)
    const label = options.label === undefined ? undefined : checkLabel(options.label, iface, ip)
    const announce = checkAnnounce(options.announce)
    const driver = options.driver ?? (await pickDriver())
    await driver.list(iface) // a missing interface fails here, before anything changes
    const tool = announce ? await findAnnounceTool(ip.version) : undefined
    return new LocalAddress(ip, iface, label, announce, options.nodad, driver, tool)
  }

  /** Configure the address; false when it was already there. */
  add(): Promise<boolean> {
    return this.driver.add({ ip: this.ip, iface: this.iface, label: this.label, nodad: this.nodad })
  }

  remove(): Promise<boolean> {
    return this.driver.remove({ ip: this.ip, iface: this.iface })
  }

  /** Tell the LAN the address's new MAC: the kernel sends nothing when an address is added. */
  async announce(): Promise<Announced> {
    const { ip, iface, settings, tool } = this
    if (!settings || !tool) return false
    // Read after adding: an interface may carry no address, hence no MAC in the listing, before.
    const mac = findAddress(await this.driver.list(iface), ip, iface)?.mac
    if (!hasNeighbours(mac)) return { skipped: `${iface} has no link-layer neighbours to tell` }
    await announceBurst(tool, { ip, iface, mac }, settings).catch((error: unknown) => {
      if (!(error instanceof IpmoveError)) throw error
      throw localError(`${ip.block} is on ${iface} but announcing it failed: ${error.message}`, {
        configured: true,
      })
    })
    return { tool: tool.name, count: settings.count, intervalMs: settings.intervalMs }
  }

  /** What commands report about it. */
  describe(changed: boolean, announced: Announced): AddAliasResult {
    const result: AddAliasResult = { ip: this.ip.block, interface: this.iface, changed, announced }
    if (this.label) result.label = `${this.iface}:${this.label}`
    return result
  }
}

/**
 * Put an address on an interface and tell the LAN. Idempotent: an address that
 * is already there (whatever its prefix) is left alone, and announced again.
 */
export async function addAlias(options: AddAliasOptions): Promise<AddAliasResult> {
  const address = await LocalAddress.prepare(options)
  const changed = await address.add()
  return address.describe(changed, await address.announce())
}

/** Take an address off an interface. Removing an absent address is success, with changed: false. */
export async function removeAlias(options: AliasTarget): Promise<AliasResult> {
  const ip = toBlock(options.ip)
  const iface = validateInterface(options.interface)
  const driver = options.driver ?? (await pickDriver())
  const changed = await driver.remove({ ip, iface })
  return { ip: ip.block, interface: iface, changed }
}

/** Every address of one interface, or of all. */
export async function showAliases(options: ShowAliasesOptions = {}): Promise<AddressEntry[]> {
  const iface = options.interface === undefined ? undefined : validateInterface(options.interface)
  const driver = await pickDriver()
  return driver.list(iface)
}
