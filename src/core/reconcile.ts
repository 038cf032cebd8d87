import { setTimeout as sleep } from 'node:timers/promises'
import { IpmoveError } from '../errors.js'
import type { Logger } from '../output.js'
import {
  describeHolder,
  type Holder,
  type IpState,
  type LocatedIp,
  type Provider,
  sameHolder,
} from './provider.js'

export interface ReconcileOptions {
  /** Where the IP must end up. */
  target: Holder
  /** Return right after the API accepted the write. */
  wait: boolean
  /** Resolve and read, never write. */
  dryRun: boolean
  /** Fires when --timeout runs out; bounds every wait and request. */
  signal: AbortSignal
  /** First and largest pause between polls. */
  pollMs?: { first: number; max: number }
  /**
   * Fires when a newer call (or the daemon's source) wants something else of
   * the IP: stop now and throw StoodDown. Nothing more is written; a request in
   * flight is cut short (an API that does not answer must not hold the stop
   * up), and when a write of ours may have reached the API, the IP is read
   * once more, within STOP_REREAD_MS, so the report says where it stands.
   */
  stop?: AbortSignal
}

export type Outcome = 'in-place' | 'moved' | 'accepted' | 'would-move'

export interface ReconcileResult {
  outcome: Outcome
  from: Holder | null
  to: Holder
  /** The last state read. */
  state: IpState
  /** Writes sent (0 or 1, 2 only after a re-read showed the first had no effect). */
  writes: number
}

/** The one read after a stop, when a write of ours may have landed: bounded, as the API may be gone. */
export const STOP_REREAD_MS = 3000

/** Thrown by reconcile when `stop` fired: what it left behind, for the report. */
export class StoodDown extends Error {
  constructor(
    /** Writes sent; a write of ours was accepted or may have landed when `wrote`. */
    readonly writes: number,
    readonly wrote: boolean,
    /** The API answered our write (else it may or may not have landed). */
    readonly accepted: boolean,
    /** The holder our write asked for; absent when the stop came before the IP was located. */
    readonly to?: Holder,
    /** The state last read (after a write of ours, read after `stop` fired, when it answered). */
    readonly state?: IpState,
  ) {
    super('stood down for a newer call')
    this.name = 'StoodDown'
  }
}

/**
 * Writes per run, at most: the second only after a write failed (no answer, a 5xx,
 * "busy") and a re-read showed it had no effect. A third failure would not be
 * different; the hook's next run, or the operator, decides then.
 */
export const MAX_WRITES = 2

/**
 * OVH moves take a few seconds; polling at most every 2 s notices the end
 * promptly while staying well under the API's rate limits (about 60/min).
 */
export const DEFAULT_POLL = { first: 250, max: 2_000 }

/**
 * Make the API's holder match the desired holder, writing once (twice at most):
 * - already there and settled: nothing to write;
 * - an operation pending (anyone's): wait for it, then decide again;
 * - otherwise write, then poll until the API says done, backing off.
 * A write that failed ambiguously (reset, timeout) is re-read before anything
 * else, and sent again only if the API shows it had no effect.
 */
export async function reconcile(
  provider: Provider,
  located: LocatedIp,
  options: ReconcileOptions,
  log: Logger,
): Promise<ReconcileResult> {
  const { target, signal } = options
  const poll = options.pollMs ?? DEFAULT_POLL
  let state = located.state
  /** The holder we moved the IP away from: the one at the time of our write. */
  let from = state.holder
  let writes = 0
  /** A write of ours was accepted or may have landed; a refused ("busy") one had no effect. */
  let wrote = false
  let accepted = false
  /** A write is owed: none yet, or the last one may not have reached the API. */
  let mayWrite = true
  let delay = poll.first
  let waitedOnOthers = false
  const { stop } = options
  /** Requests and pauses end when this fires: the timeout, or a stop. */
  const live = stop ? AbortSignal.any([signal, stop]) : signal
  let rereadForStop = false
  /** The API showed our write at work (pending, or on the target): from then on, any other holder is someone else's doing. */
  let sawOurs = false

  for (;;) {
    if (!state.pending && sameHolder(state.holder, target)) {
      return { outcome: wrote ? 'moved' : 'in-place', from, to: target, state, writes }
    }
    if (wrote && (state.pending || sameHolder(state.holder, target))) sawOurs = true
    if (stop?.aborted) {
      // A write of ours may be under way: see where it stands before leaving,
      // so the report (and the log) says what the API is doing with it.
      if (wrote && !rereadForStop) {
        rereadForStop = true
        try {
          state = await located.read(AbortSignal.any([signal, AbortSignal.timeout(STOP_REREAD_MS)]))
        } catch {
          // No answer: the report keeps the last state read.
        }
        continue
      }
      throw new StoodDown(writes, wrote, accepted, target, state)
    }
    if (state.pending) {
      if (writes === 0 && !waitedOnOthers) {
        log.info(`an operation is already pending (${state.note ?? 'in progress'}); waiting for it first`)
        waitedOnOthers = true
      }
      log.progress(`waiting for ${provider.name}: ${describeState(state)}`)
    } else if (wrote && (sawOurs || !sameHolder(state.holder, from))) {
      // Elsewhere once ours showed (pending, or on the target), back where it came from too: waiting longer changes nothing.
      throw new IpmoveError(
        'superseded',
        `another operation moved the IP to ${describeHolder(state.holder)} while ours ran`,
        { holder: state.holder },
      )
    } else if (mayWrite) {
      if (options.dryRun) return { outcome: 'would-move', from, to: target, state, writes }
      mayWrite = false
      from = state.holder
      writes++
      try {
        const answered = await located.write(target, live)
        wrote = true
        accepted = true
        if (answered) state = answered
        if (!options.wait) return { outcome: 'accepted', from, to: target, state, writes }
        // A synchronous API may already show the end state: no poll needed.
        if (answered && !answered.pending && sameHolder(answered.holder, target)) continue
      } catch (error) {
        if (stop?.aborted && !signal.aborted) {
          // Cut short by the stop: the write may have reached the API.
          wrote = true
          mayWrite = false
          continue
        }
        if (!(error instanceof IpmoveError)) throw error
        const busy = error.kind === 'busy'
        if (!busy && error.kind !== 'unreachable' && error.kind !== 'ambiguous-write') throw error
        if (writes >= MAX_WRITES) {
          throw new IpmoveError(
            error.kind,
            `${error.message}; gave up after ${writes} move requests, the most ipmove sends in one run`,
            { ...error.details, writes },
          )
        }
        if (busy) {
          // The API saw an operation we did not: wait for it and decide again.
          log.info(`the API says the IP is busy (${error.message}); waiting`)
        } else {
          // No answer or a 5xx: the write may have landed. A 429/503 was not processed.
          if (error.kind === 'ambiguous-write') wrote = true
          log.warn(
            `the move request failed or may not have reached ${provider.name} (${error.message}); checking`,
          )
        }
        mayWrite = true
      }
    }
    try {
      await sleep(delay * (0.8 + Math.random() * 0.4), undefined, { signal: live })
    } catch {
      if (signal.aborted) throw timedOut(state, target)
      continue // a newer call's stop: handled at the top
    }
    delay = Math.min(delay * 1.5, poll.max)
    try {
      state = await readOrTimeout(located, live, state, target)
    } catch (error) {
      if (!stop?.aborted || signal.aborted) throw error
      continue // cut short by the stop: handled at the top
    }
    if (mayWrite && wrote && (state.pending || sameHolder(state.holder, target))) {
      // The ambiguous write did land after all.
      mayWrite = false
    }
  }
}

async function readOrTimeout(located: LocatedIp, signal: AbortSignal, last: IpState, target: Holder) {
  try {
    return await located.read(signal)
  } catch (error) {
    if (signal.aborted) throw timedOut(last, target)
    throw error
  }
}

function describeState(state: IpState): string {
  const parts = [state.note ?? (state.pending ? 'pending' : 'settled')]
  if (state.progress !== undefined) parts.push(`${state.progress}%`)
  parts.push(`routed to ${describeHolder(state.holder)}`)
  return parts.join(', ')
}

function timedOut(state: IpState, target: Holder): IpmoveError {
  return new IpmoveError(
    'timeout',
    `timed out before the IP reached ${describeHolder(target)}; last seen: ${describeState(state)}`,
    { lastState: state },
  )
}
