/**
 * From probe results to up/down, with the timings heartbeat users know:
 *
 * - initdead: after start, how long a target may stay silent before it is
 *   declared dead the first time (links and neighbours take a moment);
 * - warntime: silence after which a late answer is logged, before anything
 *   is decided;
 * - deadtime: silence (no success at all) after which a target that was up is
 *   declared dead;
 * - rise: successes in a row needed to count a target as up again, so one
 *   lucky echo on a flapping link does not bring the IP back.
 *
 * Pure logic: time comes from an injectable clock, and the owner calls
 * `poll()` at `nextDeadline()` (a timer in the daemon, a fake clock in tests).
 *
 * Default timings, and why. Detection takes at most deadtime after the last
 * answer; the move itself (API, alias, announcement) takes tens of
 * milliseconds with the local provider, so deadtime 700 ms keeps the gap a
 * client sees under 1 s. Against false failovers: iputils ping sends a few
 * milliseconds later than asked (measured here: -i 0.04 every 46 ms, -i 0.035
 * every 41 ms), so the 30 ms ICMP interval sends about every 37 ms, and
 * 700 ms without an answer is about 19 echoes lost in a row. With 20 % loss
 * each way (36 % per round trip) that happens about once in 0.36^-19 ≈ 280
 * million echoes, months of probing; with 20 % per round trip, never in
 * practice. The seeded simulation in test/health.test.ts saw 3 false
 * failovers in 200 runs of 10 minutes at a 50 ms interval (14 in a row) and
 * none at 40 ms. Jitter does not count as loss until the 250 ms ICMP
 * timeout. Our own health decides whether this node yields, and a false
 * fault costs as much as a false failover while no client waits on it, so it
 * gets 2.5 s. The fast profile (15 ms echoes, sent about every 22 ms;
 * deadtime 140 ms: 6 in a row) is for a clean LAN only, and keeps the gap
 * under 0.25 s.
 */
import { usageError } from './errors.js'
import type { Probe, ProbeResult, Timing } from './probes/index.js'
import { now } from './probes/probe.js'

export interface HealthTimings {
  initdeadMs: number
  warntimeMs: number
  deadtimeMs: number
  rise: number
}

/** `pending` until the first verdict: rise successes (up) or initdead without them (down). */
export type Health = 'pending' | 'up' | 'down'

export type HealthEvent =
  | { type: 'up'; at: number }
  | { type: 'down'; at: number; silentMs: number; after: 'initdead' | 'deadtime' }
  /** No success for warntime: logged, nothing decided yet. */
  | { type: 'late'; at: number; silentMs: number }
  /** A success after a `late`: how long the silence lasted. */
  | { type: 'resumed'; at: number; gapMs: number }

/** The three questions a node asks per failover IP. */
export type CheckKind = 'peer' | 'self' | 'witness'

/** A probe kind's interval and timeout when the config gives none. */
export const PROBE_DEFAULTS = {
  icmp: { intervalMs: 30, timeoutMs: 250 },
  tcp: { intervalMs: 100, timeoutMs: 250 },
  // Two small reads, but through libuv's thread pool: a busy host must not fake a dead link.
  link: { intervalMs: 50, timeoutMs: 200 },
  http: { intervalMs: 500, timeoutMs: 1000 },
  command: { intervalMs: 1000, timeoutMs: 1000 },
} as const satisfies Record<string, Timing>

const NETWORK: HealthTimings = { initdeadMs: 3000, warntimeMs: 350, deadtimeMs: 700, rise: 3 }

export const HEALTH_DEFAULTS: Record<CheckKind, HealthTimings> = {
  peer: NETWORK,
  witness: NETWORK,
  self: { initdeadMs: 3000, warntimeMs: 1000, deadtimeMs: 2500, rise: 3 },
}

/** `profile fast`: for a clean LAN, a gap under 0.25 s. */
export const FAST_PROFILE = {
  icmp: { intervalMs: 15, timeoutMs: 100 },
  health: { initdeadMs: 1000, warntimeMs: 60, deadtimeMs: 140, rise: 3 } satisfies HealthTimings,
}

const MAX_MS = 3_600_000

export function checkHealthTimings(what: string, t: HealthTimings): HealthTimings {
  for (const key of ['initdeadMs', 'warntimeMs', 'deadtimeMs'] as const) {
    const ms = t[key]
    if (!Number.isFinite(ms) || ms <= 0 || ms > MAX_MS) {
      throw usageError(`${what}: ${key.slice(0, -2)} must be above 0 and at most 1 hour`)
    }
  }
  if (!Number.isInteger(t.rise) || t.rise < 1 || t.rise > 100) {
    throw usageError(`${what}: rise must be a whole number from 1 to 100`)
  }
  return t
}

/** One target's health, from one probe's stream of results. */
export class HealthTracker {
  private health: Health = 'pending'
  private readonly startedAt: number
  private lastOk: number | undefined
  private inARow = 0
  private late = false

  constructor(
    private readonly timings: HealthTimings,
    private readonly clock: () => number = now,
  ) {
    this.startedAt = clock()
  }

  get state(): Health {
    return this.health
  }

  /** When the last success came, if any. */
  get lastSuccess(): number | undefined {
    return this.lastOk
  }

  /** Apply what time alone decides (late, dead). */
  poll(): HealthEvent[] {
    const at = this.clock()
    const { warntimeMs, deadtimeMs, initdeadMs } = this.timings
    if (this.health === 'pending' && at >= this.startedAt + initdeadMs) {
      return [this.fall(at, at - (this.lastOk ?? this.startedAt), 'initdead')]
    }
    if (this.health !== 'up' || this.lastOk === undefined) return []
    const silentMs = at - this.lastOk
    if (silentMs >= deadtimeMs) return [this.fall(at, silentMs, 'deadtime')]
    if (silentMs >= warntimeMs && !this.late) {
      this.late = true
      return [{ type: 'late', at, silentMs }]
    }
    return []
  }

  /** Take one probe result (at the clock's current time). */
  observe(ok: boolean): HealthEvent[] {
    const events = this.poll()
    const at = this.clock()
    if (!ok) {
      this.inARow = 0
      return events
    }
    if (this.late && this.lastOk !== undefined) events.push({ type: 'resumed', at, gapMs: at - this.lastOk })
    this.late = false
    this.lastOk = at
    this.inARow += 1
    if (this.health !== 'up' && this.inARow >= this.timings.rise) {
      this.health = 'up'
      events.push({ type: 'up', at })
    }
    return events
  }

  /** The next time `poll()` may change something; undefined while down (only results can). */
  nextDeadline(): number | undefined {
    const { warntimeMs, deadtimeMs, initdeadMs } = this.timings
    if (this.health === 'pending') return this.startedAt + initdeadMs
    if (this.health === 'down' || this.lastOk === undefined) return undefined
    return this.lastOk + (this.late ? deadtimeMs : Math.min(warntimeMs, deadtimeMs))
  }

  private fall(at: number, silentMs: number, after: 'initdead' | 'deadtime'): HealthEvent {
    this.health = 'down'
    this.inARow = 0
    this.late = false
    return { type: 'down', at, silentMs, after }
  }
}

/**
 * How a check's probes combine. The peer and the witness are alive if any
 * path answers (a lost path is not a lost peer); this node is healthy only if
 * all its probes are (links, upstream witness, local service).
 */
const NEEDS: Record<CheckKind, 'any' | 'all'> = { peer: 'any', self: 'all', witness: 'any' }

export type CheckEvent =
  /** Something about one probe's target, for the log. */
  | { type: 'probe'; probe: string; event: HealthEvent }
  /** The check's own verdict changed: what the decision acts on. */
  | { type: 'check'; check: CheckKind; state: Health; at: number }

/**
 * One of the three checks of a failover IP: the trackers of its probes and
 * their combined verdict. For the witness, anything but `down` vetoes a
 * takeover: the service still answers at the failover IP, so what broke may
 * be the path to the peer, not the peer.
 */
export class Check {
  private readonly trackers: Map<string, HealthTracker>
  private verdict: Health = 'pending'

  constructor(
    readonly kind: CheckKind,
    probes: ReadonlyArray<Pick<Probe, 'label' | 'intervalMs'>>,
    timings: HealthTimings,
    private readonly clock: () => number = now,
  ) {
    checkHealthTimings(`${kind} check`, timings)
    if (probes.length === 0) throw usageError(`${kind} check: no probe`)
    for (const probe of probes) {
      // One lost answer must never be enough to declare a target dead.
      if (timings.deadtimeMs < 2 * probe.intervalMs) {
        throw usageError(
          `${kind} check: deadtime ${timings.deadtimeMs} ms is under twice the interval of ${probe.label} (${probe.intervalMs} ms)`,
        )
      }
    }
    this.trackers = new Map(probes.map((p) => [p.label, new HealthTracker(timings, clock)]))
    if (this.trackers.size < probes.length) throw usageError(`${kind} check: the same probe is listed twice`)
  }

  get state(): Health {
    return this.verdict
  }

  /** Each probe's state and last success, for `ipmove status`. */
  get probes(): Array<{ probe: string; state: Health; lastSuccess: number | undefined }> {
    return [...this.trackers].map(([probe, t]) => ({ probe, state: t.state, lastSuccess: t.lastSuccess }))
  }

  observe(probe: string, ok: boolean): CheckEvent[] {
    const tracker = this.trackers.get(probe)
    if (!tracker) throw new Error(`${this.kind} check has no probe ${probe}`)
    const events = this.pollAllBut(tracker)
    return this.settle([...events, ...this.tag(probe, tracker.observe(ok))])
  }

  poll(): CheckEvent[] {
    return this.settle(this.pollAllBut(undefined))
  }

  nextDeadline(): number | undefined {
    const deadlines = [...this.trackers.values()].map((t) => t.nextDeadline()).filter((d) => d !== undefined)
    return deadlines.length > 0 ? Math.min(...deadlines) : undefined
  }

  private pollAllBut(skip: HealthTracker | undefined): CheckEvent[] {
    return [...this.trackers].flatMap(([probe, t]) => (t === skip ? [] : this.tag(probe, t.poll())))
  }

  private tag(probe: string, events: HealthEvent[]): CheckEvent[] {
    return events.map((event) => ({ type: 'probe', probe, event }))
  }

  private settle(events: CheckEvent[]): CheckEvent[] {
    const states = [...this.trackers.values()].map((t) => t.state)
    const combined = NEEDS[this.kind] === 'any' ? anyOf(states) : allOf(states)
    if (combined !== this.verdict) {
      this.verdict = combined
      events.push({ type: 'check', check: this.kind, state: combined, at: this.clock() })
    }
    return events
  }
}

function anyOf(states: Health[]): Health {
  if (states.includes('up')) return 'up'
  return states.every((s) => s === 'down') ? 'down' : 'pending'
}

function allOf(states: Health[]): Health {
  if (states.includes('down')) return 'down'
  return states.every((s) => s === 'up') ? 'up' : 'pending'
}

/**
 * Run a check for real: start its probes, feed it their results, wake it at
 * its deadlines. `onEvent` gets every event; `onResult` every raw result
 * (for status and loss counts).
 */
export function runCheck(
  check: Check,
  probes: readonly Probe[],
  onEvent: (event: CheckEvent) => void,
  onResult?: (probe: string, result: ProbeResult) => void,
): { stop(): Promise<void> } {
  let timer: NodeJS.Timeout | undefined
  let stopped = false
  const deliver = (events: CheckEvent[]) => {
    for (const event of events) onEvent(event)
    clearTimeout(timer)
    const next = check.nextDeadline()
    if (next !== undefined && !stopped)
      timer = setTimeout(() => deliver(check.poll()), Math.max(0, next - now()))
  }
  for (const probe of probes) {
    probe.start((result) => {
      if (stopped) return
      onResult?.(probe.label, result)
      deliver(check.observe(probe.label, result.ok))
    })
  }
  deliver(check.poll())
  return {
    async stop() {
      stopped = true
      clearTimeout(timer)
      await Promise.all(probes.map((p) => p.stop()))
    },
  }
}
