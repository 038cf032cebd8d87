/**
 * Link state of one interface, read from sysfs (Linux). Reading two small
 * files costs no process and no socket, so it can run every few milliseconds;
 * `ip -j link` would fork per probe, and an `ip monitor` process would add a
 * parser for a text stream to save at most one interval. The kernel's
 * operstate is what `ip link` shows as `state` (RFC 2863).
 */
import { readFile } from 'node:fs/promises'
import { validateInterface } from '../validate.js'
import { type Probe, periodicProbe, type Timing } from './probe.js'

export interface LinkSpec extends Timing {
  interface: string
}

/** Where the kernel publishes each interface's state (per network namespace, as `ip netns exec` mounts it). */
const SYS_NET = '/sys/class/net'

async function read(path: string, signal: AbortSignal): Promise<string | undefined> {
  try {
    return (await readFile(path, { encoding: 'utf8', signal })).trim()
  } catch (error) {
    // `carrier` of an interface that is administratively down cannot be read (EINVAL).
    if ((error as NodeJS.ErrnoException).code === 'EINVAL') return undefined
    throw error
  }
}

/**
 * Up when the kernel says `up`. `unknown` is what drivers that do not track
 * operstate report (loopback, some tunnels): then the carrier decides.
 * `dormant` (802.1X not yet authorised), `lowerlayerdown` (a veth whose peer
 * is down, a VLAN whose parent is) and `down` all fail.
 */
export function linkHealthy(operstate: string, carrier: string | undefined): boolean {
  return operstate === 'up' || (operstate === 'unknown' && carrier === '1')
}

export function linkProbe(spec: LinkSpec): Probe {
  const iface = validateInterface(spec.interface, 'link probe interface')
  return periodicProbe(`link ${iface}`, spec, async (signal) => {
    let operstate: string | undefined
    try {
      operstate = await read(`${SYS_NET}/${iface}/operstate`, signal)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT')
        return { ok: false, detail: `no interface ${iface}` }
      throw error
    }
    const carrier = await read(`${SYS_NET}/${iface}/carrier`, signal).catch(() => undefined)
    const ok = linkHealthy(operstate ?? '', carrier)
    return { ok, detail: `operstate ${operstate}, carrier ${carrier ?? 'none'}` }
  })
}
