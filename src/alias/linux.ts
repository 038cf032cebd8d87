import {
  type AddRequest,
  type AddressDriver,
  type AddressEntry,
  addOnce,
  canonical,
  findAddress,
  localError,
  type RemoveRequest,
  runCommand,
  scopeOf,
  type ToolComplaints,
  toolFailure,
} from './driver.js'

/** The parts of `ip -j addr show` that ipmove reads. */
interface IpLink {
  ifname?: string
  address?: string
  addr_info?: Array<{
    family?: string
    local?: string
    prefixlen?: number
    label?: string
    tentative?: boolean
    dadfailed?: boolean
  }>
}

export function parseIpAddrJson(json: string): AddressEntry[] {
  let links: IpLink[]
  try {
    links = JSON.parse(json) as IpLink[]
  } catch {
    throw localError('ip -j addr show printed something that is not JSON (is iproute2 older than 4.13?)')
  }
  const entries: AddressEntry[] = []
  for (const link of links) {
    if (!link.ifname) continue
    for (const info of link.addr_info ?? []) {
      if (
        (info.family !== 'inet' && info.family !== 'inet6') ||
        !info.local ||
        info.prefixlen === undefined
      ) {
        continue
      }
      const address = canonical(info.local)
      const entry: AddressEntry = {
        iface: link.ifname,
        address,
        prefix: info.prefixlen,
        version: info.family === 'inet' ? 4 : 6,
        scope: scopeOf(address),
        state: info.dadfailed ? 'dadfailed' : info.tentative ? 'tentative' : 'ready',
      }
      if (info.label && info.label !== link.ifname) entry.label = info.label
      if (link.address) entry.mac = link.address
      entries.push(entry)
    }
  }
  return entries
}

const IPROUTE2: ToolComplaints = {
  tool: 'ip',
  missing: /Cannot find device|does not exist/i,
  denied: /Operation not permitted|Permission denied/i,
  needs: 'root (CAP_NET_ADMIN)',
  exists: /already assigned|File exists/i,
}

/** Linux through iproute2. Addresses are added as /32 or /128 unless the IP is a block. */
export class LinuxDriver implements AddressDriver {
  async list(iface?: string): Promise<AddressEntry[]> {
    const argv = ['ip', '-j', 'addr', 'show']
    if (iface) argv.push('dev', iface)
    const result = await runCommand(argv)
    if (result.code !== 0) {
      throw toolFailure(IPROUTE2, result, iface ?? 'all', `listing addresses of ${iface ?? 'all interfaces'}`)
    }
    return parseIpAddrJson(result.stdout || '[]')
  }

  add(request: AddRequest): Promise<boolean> {
    const { ip, iface, label, nodad } = request
    const argv = ['ip', 'addr', 'add', ip.block, 'dev', iface]
    if (label && ip.version === 4) argv.push('label', `${iface}:${label}`)
    if (nodad && ip.version === 6) argv.push('nodad')
    return addOnce(this, request, IPROUTE2, () => runCommand(argv))
  }

  async remove({ ip, iface }: RemoveRequest): Promise<boolean> {
    const present = findAddress(await this.list(iface), ip, iface)
    if (!present) return false
    // The kernel matches the prefix on delete: use the one the address carries.
    const block = `${present.address}/${present.prefix}`
    const result = await runCommand(['ip', 'addr', 'del', block, 'dev', iface])
    if (result.code === 0) return true
    if (/not found|Cannot assign requested address/i.test(result.stderr)) return false
    throw toolFailure(IPROUTE2, result, iface, `removing ${block} from ${iface}`)
  }
}
