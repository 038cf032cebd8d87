/**
 * `source = carp`: follow the carp(4) state of a vhid, as `ifconfig IFACE`
 * prints it on OpenBSD and FreeBSD, every `carp-interval` (ifstated itself
 * reads carp0's link state; a poll is its portable equivalent):
 *
 *   MASTER                 hold
 *   BACKUP, INIT           do not hold (INIT: the carp interface or its
 *                          carpdev is down, e.g. `ifconfig carp0 down` to
 *                          hand over: the other node is master)
 *   anything else          unknown, which changes nothing: ifconfig failed,
 *                          the interface has no carp line, or several vhids
 *                          and no `carp-vhid` says which
 *
 * What ifconfig prints (OpenBSD sbin/ifconfig/ifconfig.c rev 1.472
 * carp_status; FreeBSD sbin/ifconfig/carp.c carp_status):
 *
 *   OpenBSD, one vhid    carp: MASTER carpdev vio2 vhid 1 advbase 1 advskew 50
 *   OpenBSD, balancing   carp: carpdev em0 advbase 1 balancing ip
 *                                state MASTER vhid 1 advskew 0
 *                                state BACKUP vhid 2 advskew 100
 *   FreeBSD (per vhid)   carp: MASTER vhid 1 advbase 1 advskew 0
 *                              peer 224.0.0.18 peer6 ff02::12   (13 and later)
 *
 * The argv is `ifconfig IFACE`, without a shell; stop waits for a run in
 * progress, which ends within IFCONFIG_TIMEOUT_MS.
 */
import { setTimeout as delay } from 'node:timers/promises'
import { runCommand } from '../../alias/driver.js'
import { now } from '../../probes/probe.js'
import { shown } from '../../validate.js'
import type { HoldSource, SourceAnswer, SourceContext, SourceSettings, Wish } from './source.js'

export interface CarpSourceSettings {
  /** OpenBSD: the carp interface (carp0); FreeBSD: the interface that carries the vhid (em0). */
  interface: string
  /** Which vhid, when the interface has several; 0: the only one there is. */
  vhid: number
  intervalMs: number
}

export type CarpState = 'INIT' | 'BACKUP' | 'MASTER'

export interface CarpVhid {
  vhid: number
  state: CarpState
}

const STATES: readonly string[] = ['INIT', 'BACKUP', 'MASTER']
/** ifconfig answers in milliseconds; one that hangs longer is reported, not waited for. */
const IFCONFIG_TIMEOUT_MS = 2000

/** The vhids and their states in what `ifconfig IFACE` printed, in order; [] when it shows no carp. */
export function parseCarp(output: string): CarpVhid[] {
  const found: CarpVhid[] = []
  for (const line of output.split('\n')) {
    const words = line.trim().split(/\s+/)
    // `carp: STATE … vhid N …` (OpenBSD with one vhid, FreeBSD), or OpenBSD balancing's `state STATE vhid N …`.
    const state = words[0] === 'carp:' ? words[1] : words[0] === 'state' ? words[1] : undefined
    if (state === undefined || !STATES.includes(state)) continue
    const at = words.indexOf('vhid')
    const vhid = at > 0 ? Number(words[at + 1]) : Number.NaN
    if (Number.isInteger(vhid) && vhid >= 1 && vhid <= 255) found.push({ vhid, state: state as CarpState })
  }
  return found
}

/** What carp says of this node for the settings' vhid: the wish and the one line that says why. */
export function carpAnswer(output: string, settings: CarpSourceSettings): { wish: Wish; why: string } {
  const where = `carp on ${settings.interface}`
  const vhids = parseCarp(output)
  if (vhids.length === 0) return { wish: 'unknown', why: `${where}: ifconfig shows no carp state` }
  let chosen: CarpVhid | undefined
  if (settings.vhid === 0) {
    if (vhids.length > 1) {
      const listed = vhids.map((v) => v.vhid).join(', ')
      return { wish: 'unknown', why: `${where}: vhids ${listed}; set carp-vhid to say which one` }
    }
    chosen = vhids[0]
  } else {
    chosen = vhids.find((v) => v.vhid === settings.vhid)
    if (!chosen) return { wish: 'unknown', why: `${where}: no vhid ${settings.vhid}` }
  }
  const { vhid, state } = chosen!
  return { wish: state === 'MASTER' ? 'hold' : 'release', why: `${where}: ${state} vhid ${vhid}` }
}

export function carpSource(settings: SourceSettings, context: SourceContext): HoldSource {
  const carp = settings as unknown as CarpSourceSettings
  const stopping = new AbortController()
  let loop: Promise<void> | undefined

  async function look(): Promise<{ wish: Wish; why: string }> {
    try {
      const run = await runCommand(['ifconfig', carp.interface], { timeoutMs: IFCONFIG_TIMEOUT_MS })
      if (run.code !== 0) {
        const said = run.stderr.trim().split('\n')[0] ?? ''
        return { wish: 'unknown', why: `ifconfig ${carp.interface}: exit ${run.code} ${shown(said)}` }
      }
      return carpAnswer(run.stdout, carp)
    } catch (error) {
      return { wish: 'unknown', why: (error as Error).message }
    }
  }

  async function run(report: (answer: SourceAnswer) => void): Promise<void> {
    while (!stopping.signal.aborted) {
      const started = now()
      const answer = await look()
      if (stopping.signal.aborted) return
      report({ ...answer, at: now() })
      const wait = started + carp.intervalMs - now()
      // An abort (stop) ends the pause early; the loop then ends.
      if (wait > 0) await delay(wait, undefined, { signal: stopping.signal }).catch(() => {})
    }
  }

  return {
    start(report) {
      const which = carp.vhid === 0 ? 'its vhid' : `vhid ${carp.vhid}`
      context.log.debug(`following carp on ${carp.interface} (${which}) every ${carp.intervalMs} ms`)
      loop = run(report)
    },
    async stop() {
      stopping.abort()
      await loop
    },
  }
}
