/**
 * Who should hold the IP, as something other than ipmove's own probes says:
 * an election engine (keepalived's notify_fifo, a carp interface, ucarp's
 * scripts), a lease, or a command. A source only answers the question; the
 * watcher (src/watch/ip-watcher.ts) does the rest the same way for every
 * source: it reads the API on every answer that changes and every
 * api-interval, claims when the source says hold and the API routes the IP
 * elsewhere (a stale notify is repaired within api-interval), and yields
 * (drops the address, never touches the API) when the source says do not hold.
 *
 * `source = probes` (the default) is the other kind of answer: the probe
 * decider (src/watch/decide.ts) with its peer, self and witness checks.
 */

import type { Logger } from '../../output.js'
import type { IpBlock } from '../../validate.js'
import type { SectionReader } from '../section.js'

/**
 * hold: this node should hold the IP. release: it should not (drop the
 * address; the holder's own daemon moves the IP). unknown: the source cannot
 * say (not started yet, its engine is gone, a command timed out): nothing is
 * claimed, a held address stays while the API routes the IP here.
 */
export type Wish = 'hold' | 'release' | 'unknown'

export interface SourceAnswer {
  wish: Wish
  /** One line for the log and status: `keepalived: INSTANCE "VI_1" MASTER 100`. */
  why: string
  /** When the source learned it (epoch ms, src/probes/probe.ts `now`). */
  at: number
  /** Read the API now even if the wish did not change (keepalived's MASTER_RX_LOWER_PRI). */
  recheck?: boolean
}

/** What a running source is given. */
export interface SourceContext {
  /** The `[watch.NAME]` name. */
  name: string
  ip: IpBlock
  /** The interface the address goes on. */
  interface: string
  /** Tagged with the IP's name already. */
  log: Logger
}

/** One running source for one watched IP. */
export interface HoldSource {
  /**
   * Begin; call `report` with every answer, in the order learned (repeating
   * an unchanged answer is harmless). Until the first report the wish is
   * unknown. Called once.
   */
  start(report: (answer: SourceAnswer) => void): void
  /**
   * Stop: once this resolves, no report follows and nothing the source opened is left. Bounded.
   * `released`: the daemon dropped the address first (a lease may then be handed over at once).
   */
  stop(released?: boolean): Promise<void>
  /** What `ipmove status` shows of the source beyond its answer, as of now (a lease's holder and TTL left). */
  status?(): SourceStatus
  /**
   * Only for a source told from outside (`source = ucarp`): the wish an
   * engine's script sent through the control socket (`ipmove status --watch
   * --tell NAME=hold`). Sources that look for themselves leave it out, and the
   * daemon refuses to tell them.
   */
  tell?(wish: ToldWish): void
}

/** A source's own state for status: one line for people, the same as fields for --json. */
export interface SourceStatus {
  line: string
  fields: Readonly<Record<string, string | number | boolean | null>>
}

export type ToldWish = Exclude<Wish, 'unknown'>

/** Settings a source parsed from its keys: plain data (a reload compares them deeply). */
export type SourceSettings = Readonly<Record<string, string | number | boolean | readonly string[]>>

/** One kind of source, as the registry (./index.ts) lists it. */
export interface SourceDescriptor {
  /** The value of `source =` in `[watch.NAME]`. */
  kind: string
  /** Keys of `[watch.NAME]` this source reads (others' keys are refused as unknown). */
  keys: readonly string[]
  /** Keys of the probe decider this source reads too, with the same meaning (refused for other sources). */
  sharedKeys?: readonly string[]
  /** Read and check its keys; throw `r.fail(key, expected)` on bad input. */
  parse(r: SectionReader): SourceSettings
  /** The implementation, loaded only when an IP uses it (start-up stays flat). */
  load(): Promise<(settings: SourceSettings, context: SourceContext) => HoldSource>
}
