import {
  type AddRequest,
  type AddressDriver,
  type AddressEntry,
  canonical,
  findAddress,
  firstLine,
  localError,
  type RemoveRequest,
  type RunResult,
  runCommand,
  scopeOf,
  settle,
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

/** Turn iproute2's complaint into the one-line message an operator needs. */
function ipFailure(result: RunResult, iface: string, doing: string): Error {
  const text = `${result.stderr}\n${result.stdout}`
  if (/Cannot find device|does not exist/i.test(text)) {
    return localError(`interface ${iface} does not exist`, { interface: iface })
  }
  if (/Operation not permitted|Permission denied/i.test(text)) {
    return localError(`${doing} needs root (CAP_NET_ADMIN)`, { interface: iface })
  }
  return localError(`${doing} failed: ${firstLine(text) || `ip exited with ${result.code}`}`, {
    interface: iface,
  })
}

/** Linux through iproute2. Addresses are added as /32 or /128 unless the IP is a block. */
export class LinuxDriver implements AddressDriver {
  async list(iface?: string): Promise<AddressEntry[]> {
    const argv = ['ip', '-j', 'addr', 'show']
    if (iface) argv.push('dev', iface)
    const result = await runCommand(argv)
    if (result.code !== 0) {
      throw ipFailure(result, iface ?? 'all', `listing addresses of ${iface ?? 'all interfaces'}`)
    }
    return parseIpAddrJson(result.stdout || '[]')
  }

  async add({ ip, iface, label, nodad }: AddRequest): Promise<boolean> {
    const present = findAddress(await this.list(iface), ip, iface)
    if (present?.state === 'dadfailed') {
      // Left over from an earlier conflict: try again, DAD decides afresh.
      await this.remove({ ip, iface })
    } else if (present) {
      await settle(this, ip, iface)
      return false
    }
    const argv = ['ip', 'addr', 'add', ip.block, 'dev', iface]
    if (label && ip.version === 4) argv.push('label', `${iface}:${label}`)
    if (nodad && ip.version === 6) argv.push('nodad')
    const result = await runCommand(argv)
    // Another process may have added it between our look and our add.
    if (result.code !== 0 && !/already assigned|File exists/i.test(result.stderr)) {
      throw ipFailure(result, iface, `adding ${ip.block} to ${iface}`)
    }
    await settle(this, ip, iface)
    return result.code === 0
  }

  async remove({ ip, iface }: RemoveRequest): Promise<boolean> {
    const present = findAddress(await this.list(iface), ip, iface)
    if (!present) return false
    // The kernel matches the prefix on delete: use the one the address carries.
    const block = `${present.address}/${present.prefix}`
    const result = await runCommand(['ip', 'addr', 'del', block, 'dev', iface])
    if (result.code === 0) return true
    if (/not found|Cannot assign requested address/i.test(result.stderr)) return false
    throw ipFailure(result, iface, `removing ${block} from ${iface}`)
  }
}
