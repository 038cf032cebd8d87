import { setTimeout as sleep } from 'node:timers/promises'
import { usageError } from '../errors.js'
import type { IpBlock } from '../validate.js'
import { firstLine, localError, runCommand } from './driver.js'

/**
 * Neighbours learn a moved address only when told: the Linux kernel sends no
 * gratuitous ARP or unsolicited neighbour advertisement when an address is
 * added. We send a burst, as Pacemaker's IPaddr2 does (arp_count=5,
 * arp_interval=200 ms), so one lost frame does not leave a stale cache.
 *
 * Node has no raw sockets, so frames go out through packaged tools, one frame
 * per process on our own clock (the iputils arping of Debian 12 takes whole
 * seconds as its interval):
 * - IPv4: arping in unsolicited mode. iputils/busybox (`-U -I IF IP`) and
 *   Thomas Habets' arping (`-U -i IF -S IP IP`) differ; `arping -V` tells which.
 * - IPv6: na6 from ipv6toolkit, an unsolicited advertisement to ff02::1 with
 *   the Override flag and our MAC as target link-layer address (RFC 4861 7.2.6).
 *   ndisc6 only solicits, and iputils has no sender for it.
 */
export interface AnnounceSettings {
  count: number
  intervalMs: number
}

export const DEFAULT_ANNOUNCE: AnnounceSettings = { count: 5, intervalMs: 200 }

export interface AnnounceTarget {
  ip: IpBlock
  iface: string
  /** The interface's link-layer address; required for IPv6. */
  mac?: string
}

export type ArpingFlavour = 'iputils' | 'habets' | 'busybox'

/** Which arping answered `arping -V` (or its usage text, for those without -V). */
export function arpingFlavour(output: string): ArpingFlavour | undefined {
  if (/Habets/i.test(output)) return 'habets'
  if (/iputils/i.test(output)) return 'iputils'
  if (/BusyBox/.test(output)) return 'busybox'
  return undefined
}

export function arpingArgv(flavour: ArpingFlavour, iface: string, address: string): string[] {
  if (flavour === 'habets') {
    // -W 0: exit as soon as the frame is out instead of waiting a second for replies.
    return ['arping', '-q', '-U', '-c', '1', '-W', '0', '-i', iface, '-S', address, address]
  }
  return ['arping', '-q', '-U', '-c', '1', '-I', iface, address]
}

export function na6Argv(iface: string, address: string, mac: string): string[] {
  // na6 randomises every field it is not given: pin source, link source and target LLA.
  return ['na6', '-i', iface, '-s', address, '-d', 'ff02::1', '-t', address, '-o', '-S', mac, '-E', mac]
}

/** A packaged tool that sends one announcement frame per run. */
export interface AnnounceTool {
  /** For reports: "arping (iputils)" or "na6". */
  readonly name: string
  argv(target: AnnounceTarget): string[]
  /** Habets' arping and busybox exit 1 when nobody replies, which is normal for an unsolicited ARP. */
  readonly quietExit1: boolean
}

async function sendOne(tool: AnnounceTool, target: AnnounceTarget): Promise<void> {
  const result = await runCommand(tool.argv(target))
  if (result.code === 0 || (tool.quietExit1 && result.code === 1 && !result.stderr.trim())) return
  const text = `${result.stderr}\n${result.stdout}`
  if (/root privileges|Operation not permitted|Permission denied/i.test(text)) {
    throw localError(`${tool.name} needs root (CAP_NET_RAW)`)
  }
  throw localError(`${tool.name} failed: ${firstLine(text) || `exit code ${result.code}`}`)
}

let detected: Promise<ArpingFlavour> | undefined

/** Which arping is installed, asked once per process (the announcer and the probe share it). */
export function detectArping(): Promise<ArpingFlavour> {
  detected ??= runCommand(['arping', '-V'], { timeoutMs: 3000 }).then((result) => {
    const output = `${result.stdout}\n${result.stderr}`
    const flavour = arpingFlavour(output)
    if (!flavour) {
      throw localError(`unrecognised arping (${firstLine(output)}): install iputils-arping or arping`)
    }
    return flavour
  })
  // A failed look is not remembered: the next call looks again.
  detected.catch(() => {
    detected = undefined
  })
  return detected
}

/**
 * Find the tool for this address family, so that a missing one fails the
 * command before anything is changed.
 */
export async function findAnnounceTool(version: 4 | 6): Promise<AnnounceTool> {
  if (version === 4) {
    const flavour = await detectArping()
    return {
      name: `arping (${flavour})`,
      argv: ({ ip, iface }) => arpingArgv(flavour, iface, ip.address),
      quietExit1: flavour !== 'iputils',
    }
  }
  // `na6 -h` only proves na6 is installed; the runner names the package when it is not.
  await runCommand(['na6', '-h'], { timeoutMs: 3000 })
  return {
    name: 'na6',
    argv: ({ ip, iface, mac }) => {
      if (!mac) throw localError(`${iface} has no link-layer address to advertise ${ip.address} with`)
      return na6Argv(iface, ip.address, mac)
    },
    quietExit1: false,
  }
}

/**
 * Send `count` announcements, the first at once and then one every
 * `intervalMs` on a fixed schedule (a slow frame does not delay the next).
 * Resolves when every sender has finished; a failure stops the burst and is thrown.
 */
export async function announceBurst(
  tool: AnnounceTool,
  target: AnnounceTarget,
  settings: AnnounceSettings,
): Promise<void> {
  const start = Date.now()
  const sends: Promise<void>[] = []
  let failure: unknown
  for (let i = 0; i < settings.count && failure === undefined; i++) {
    const wait = start + i * settings.intervalMs - Date.now()
    if (wait > 0) await sleep(wait)
    if (failure !== undefined) break
    const send = sendOne(tool, target)
    send.catch((error: unknown) => {
      failure ??= error
    })
    sends.push(send)
  }
  await Promise.allSettled(sends)
  if (failure !== undefined) throw failure
}

export interface Refresh {
  stop(): void
}

/**
 * Re-announce every `everyMs` until stopped, for a process that keeps an
 * address for long (stale caches after a split brain heal this way). Errors go
 * to `onError`; the refresh keeps going. Bursts are not awaited before the
 * next one starts: Debian 12's iputils arping lingers a second after sending.
 */
export function startRefresh(
  tool: AnnounceTool,
  target: AnnounceTarget,
  everyMs: number,
  settings: AnnounceSettings,
  onError: (error: unknown) => void,
): Refresh {
  if (everyMs <= (settings.count - 1) * settings.intervalMs) {
    throw usageError('the refresh period must be longer than one announcement burst')
  }
  const timer = setInterval(() => {
    announceBurst(tool, target, settings).catch(onError)
  }, everyMs)
  timer.unref()
  return { stop: () => clearInterval(timer) }
}
