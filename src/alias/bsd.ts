import { usageError } from '../errors.js'
import {
  type AddRequest,
  type AddressDriver,
  type AddressEntry,
  addOnce,
  canonical,
  findAddress,
  localError,
  type RemoveRequest,
  type Runner,
  runCommand,
  scopeOf,
  type ToolComplaints,
  toolFailure,
} from './driver.js'

export type BsdFlavour = 'openbsd' | 'freebsd'

function bitsOfMask(mask: string): number | undefined {
  let value: number
  if (/^0x[0-9a-f]{1,8}$/i.test(mask)) value = Number.parseInt(mask.slice(2), 16)
  else if (/^\d{1,3}(\.\d{1,3}){3}$/.test(mask))
    value = mask.split('.').reduce((acc, part) => acc * 256 + Number(part), 0)
  else return undefined
  let bits = 0
  for (let bit = 31; bit >= 0; bit--) {
    if (Math.floor(value / 2 ** bit) % 2 === 1) bits++
    else break
  }
  return bits
}

export function maskOfPrefix(prefix: number): string {
  const value = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 255).join('.')
}

/**
 * Parse the text `ifconfig` prints on OpenBSD and FreeBSD: a header line per
 * interface (`vio0: flags=…`), then tab-indented lines, among them
 * `lladdr`/`ether`, `inet A netmask 0xffffff00 …` and
 * `inet6 A[%zone] prefixlen N [tentative] [duplicated] … [scopeid 0x1]`.
 * FreeBSD's `-f inet:cidr`/`inet6:cidr` forms (`inet A/N`) are read too.
 */
export function parseIfconfig(text: string): AddressEntry[] {
  const entries: AddressEntry[] = []
  let iface: string | undefined
  let mac: string | undefined
  const pending: AddressEntry[] = []
  const flush = () => {
    for (const entry of pending) entries.push(mac ? { ...entry, mac } : entry)
    pending.length = 0
  }
  for (const line of text.split('\n')) {
    const header = /^([^\s:]+): flags=/.exec(line)
    if (header) {
      flush()
      iface = header[1]
      mac = undefined
      continue
    }
    if (!iface || !/^\s/.test(line)) continue
    const words = line.trim().split(/\s+/)
    const [kind, first] = words
    if ((kind === 'lladdr' || kind === 'ether') && first) {
      mac = first.toLowerCase()
      continue
    }
    if ((kind !== 'inet' && kind !== 'inet6') || !first) continue
    const version = kind === 'inet' ? 4 : 6
    const [text, cidr] = first.split('/')
    let prefix: number | undefined = cidr !== undefined ? Number(cidr) : undefined
    const maskAt = words.indexOf(version === 4 ? 'netmask' : 'prefixlen')
    if (prefix === undefined && maskAt > 0) {
      const value = words[maskAt + 1] ?? ''
      prefix = version === 4 ? bitsOfMask(value) : /^\d+$/.test(value) ? Number(value) : undefined
    }
    if (!text || prefix === undefined || Number.isNaN(prefix)) continue
    let address: string
    try {
      address = canonical(text)
    } catch {
      continue
    }
    pending.push({
      iface,
      address,
      prefix,
      version,
      scope: scopeOf(address),
      state: words.includes('duplicated') ? 'dadfailed' : words.includes('tentative') ? 'tentative' : 'ready',
    })
  }
  flush()
  return entries
}

const IFCONFIG: ToolComplaints = {
  tool: 'ifconfig',
  missing: /does not exist|no such interface|Device not configured/i,
  denied: /Operation not permitted|permission denied/i,
  needs: 'root',
  exists: /File exists/i,
}

/**
 * OpenBSD and FreeBSD through ifconfig(8). Neither has address labels, and
 * neither can skip duplicate address detection for one address, so `nodad` is
 * ignored there: the driver waits DAD out like any IPv6 add.
 */
export class BsdDriver implements AddressDriver {
  constructor(
    private readonly flavour: BsdFlavour,
    /** Injectable so that argv and parsing can be checked on Linux against recorded output. */
    private readonly run: Runner = runCommand,
  ) {}

  async list(iface?: string): Promise<AddressEntry[]> {
    // OpenBSD's -a shows only the first IPv4 address of each interface; -A shows all.
    const argv = iface ? ['ifconfig', iface] : ['ifconfig', this.flavour === 'openbsd' ? '-A' : '-a']
    const result = await this.run(argv)
    if (result.code !== 0) {
      throw toolFailure(IFCONFIG, result, iface ?? 'all', `listing addresses of ${iface ?? 'all interfaces'}`)
    }
    const entries = parseIfconfig(result.stdout)
    if (!iface) return entries
    // OpenBSD reads a name without a unit number as a group or a driver and prints several interfaces.
    if (!new RegExp(`^${iface.replace(/\./g, '\\.')}: flags=`, 'm').test(result.stdout)) {
      throw localError(`interface ${iface} does not exist`, { interface: iface })
    }
    return entries.filter((e) => e.iface === iface)
  }

  addArgv({ ip, iface }: AddRequest): string[] {
    if (ip.version === 6)
      return ['ifconfig', iface, 'inet6', ip.address, 'prefixlen', String(ip.prefix), 'alias']
    if (this.flavour === 'openbsd') {
      return ['ifconfig', iface, 'inet', 'alias', ip.address, 'netmask', maskOfPrefix(ip.prefix)]
    }
    return ['ifconfig', iface, 'inet', `${ip.address}/${ip.prefix}`, 'alias']
  }

  removeArgv({ ip, iface }: RemoveRequest): string[] {
    return ['ifconfig', iface, ip.version === 4 ? 'inet' : 'inet6', ip.address, '-alias']
  }

  async add(request: AddRequest): Promise<boolean> {
    if (request.label) throw usageError('--label exists only on Linux: BSD interfaces have no address labels')
    return addOnce(this, request, IFCONFIG, () => this.run(this.addArgv(request)))
  }

  async remove(request: RemoveRequest): Promise<boolean> {
    const { ip, iface } = request
    if (!findAddress(await this.list(iface), ip, iface)) return false
    const result = await this.run(this.removeArgv(request))
    if (result.code === 0) return true
    if (/Can't assign requested address/i.test(result.stderr)) return false
    throw toolFailure(IFCONFIG, result, iface, `removing ${ip.block} from ${iface}`)
  }
}
