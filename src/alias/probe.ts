import type { IpBlock } from '../validate.js'
import { type ArpingFlavour, detectArping } from './announce.js'
import { firstLine, localError, runCommand } from './driver.js'

/**
 * Who else answers for an address on the LAN: duplicate address detection on
 * demand, before the local provider claims an address and for its `status`.
 * Node has no raw sockets, so packaged tools send the probe and print the answers:
 * - IPv4: arping. iputils and busybox (`-D`: a request from 0.0.0.0, as RFC 5227
 *   probes, quitting at the first reply) take their deadline in whole seconds,
 *   so the runner stops them early; Thomas Habets' arping (`-0`, `-C 1`, `-w`
 *   in fractional seconds) stops itself.
 * - IPv6: ndisc6 (Debian package ndisc6) solicits the address from our own
 *   address and prints the first advertisement's target link-layer address.
 *   ipv6toolkit's ns6 and na6 send but do not listen.
 * None of them prints to stderr when nobody answers, only on failure.
 */
export type ProbeTool = ArpingFlavour | 'ndisc6'

export interface ProbeResult {
  /** For reports: "arping (iputils)" or "ndisc6". */
  tool: string
  /** The link-layer addresses that answered for the address, lower case, in the order heard. */
  macs: string[]
  /** How long the probe took, for the debug log. */
  ms: number
}

/** The exit code each tool gives when nobody answered. */
const SILENT_EXIT: Record<ProbeTool, number> = { iputils: 0, busybox: 0, habets: 1, ndisc6: 2 }

/** Allowance for a tool that ends itself at its deadline (start-up, libpcap) before the runner stops it. */
const SELF_STOP_SLACK_MS = 1000

export function probeArgv(tool: ProbeTool, iface: string, address: string, waitMs: number): string[] {
  switch (tool) {
    case 'iputils':
    case 'busybox':
      return [
        'arping',
        '-D',
        '-c',
        '1',
        '-w',
        String(Math.max(1, Math.ceil(waitMs / 1000))),
        '-I',
        iface,
        address,
      ]
    case 'habets':
      return ['arping', '-0', '-C', '1', '-c', '1', '-w', String(waitMs / 1000), '-i', iface, address]
    case 'ndisc6':
      return ['ndisc6', '-n', '-1', '-r', '1', '-w', String(waitMs), address, iface]
  }
}

/** `2:0:0:0:0:A` (glibc's ether_ntoa, as busybox prints) and `02:00:00:00:00:0A` become `02:00:00:00:00:0a`. */
function normalMac(text: string): string {
  return text
    .split(':')
    .map((octet) => octet.padStart(2, '0'))
    .join(':')
    .toLowerCase()
}

const MAC = '[0-9A-Fa-f]{1,2}(?::[0-9A-Fa-f]{1,2}){5}'

/** The MACs a probe's output says answered for `address` (canonical text), first heard first. */
export function parseProbeAnswers(tool: ProbeTool, address: string, output: string): string[] {
  const found: string[] = []
  const add = (mac: string) => {
    const normal = normalMac(mac)
    if (!found.includes(normal)) found.push(normal)
  }
  if (tool === 'ndisc6') {
    // "Target link-layer address: 02:00:00:00:00:0A\n from 2001:db8::50": it solicited only `address`.
    for (const m of output.matchAll(new RegExp(`^Target link-layer address: (${MAC})$`, 'gm'))) add(m[1]!)
  } else if (tool === 'habets') {
    // "42 bytes from 02:00:00:00:00:0a (192.0.2.50): index=0 time=8.172 usec"
    for (const m of output.matchAll(new RegExp(`bytes from (${MAC}) \\(([^)]+)\\)`, 'g'))) {
      if (m[2] === address) add(m[1]!)
    }
  } else {
    // iputils: "Unicast reply from 192.0.2.50 [02:00:00:00:00:0A]  0.523ms"; busybox likewise, lower case.
    for (const m of output.matchAll(
      new RegExp(`(?:Unicast|Broadcast) reply from (\\S+) \\[(${MAC})\\]`, 'g'),
    )) {
      if (m[1] === address) add(m[2]!)
    }
  }
  return found
}

function toolName(tool: ProbeTool): string {
  return tool === 'ndisc6' ? 'ndisc6' : `arping (${tool})`
}

/** Turn a probe's complaint into the one-line message an operator needs. */
function probeFailure(tool: ProbeTool, iface: string, code: number, stderr: string): Error {
  const name = toolName(tool)
  if (/Operation not permitted|Permission denied|CAP_NET_RAW|run as root/i.test(stderr)) {
    return localError(`${name} needs root (CAP_NET_RAW) to probe ${iface}`)
  }
  if (/No such device|not available|not found/i.test(stderr)) {
    return localError(`interface ${iface} does not exist`, { interface: iface })
  }
  return localError(`${name} failed probing ${iface}: ${firstLine(stderr) || `exit code ${code}`}`)
}

/**
 * Ask the LAN who answers for `ip` on `iface`, waiting at most about `waitMs`.
 * Our own kernel never answers our probe, so a MAC heard is another host's.
 */
export async function probeAddress(ip: IpBlock, iface: string, waitMs: number): Promise<ProbeResult> {
  const tool: ProbeTool = ip.version === 6 ? 'ndisc6' : await detectArping()
  const selfStopping = tool === 'habets' || tool === 'ndisc6'
  const started = Date.now()
  const result = await runCommand(probeArgv(tool, iface, ip.address, waitMs), {
    stopAfterMs: selfStopping ? waitMs + SELF_STOP_SLACK_MS : waitMs,
  })
  const ms = Date.now() - started
  const macs = parseProbeAnswers(tool, ip.address, result.stdout)
  if (macs.length > 0) return { tool: toolName(tool), macs, ms }
  if (result.stderr.trim() || (!result.stopped && result.code !== SILENT_EXIT[tool])) {
    throw probeFailure(tool, iface, result.code, result.stderr)
  }
  return { tool: toolName(tool), macs, ms }
}
