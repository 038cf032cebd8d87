/**
 * The one interface every probe kind implements, and the runner shared by the
 * kinds that answer one question per run (TCP, HTTP, command, link). ICMP
 * streams its answers from one long-lived `ping` instead (see icmp.ts).
 */
import { usageError } from '../errors.js'

/** One probe's answer: did the target respond in time, and how it looked. */
export interface ProbeResult {
  ok: boolean
  /** When the answer became known, epoch milliseconds from a monotonic clock (see `now`). */
  at: number
  /** How long the answer took: round trip, connect, request or run time. */
  ms: number
  /** One line for a log or `ipmove status`: `rtt 0.05 ms`, `HTTP 503`, `exit 1: …`, `operstate down`. */
  detail: string
}

export interface Probe {
  /** What is probed, for logs: `icmp 192.0.2.11`, `http https://203.0.113.5/`. */
  readonly label: string
  readonly intervalMs: number
  readonly timeoutMs: number
  /** Begin probing; every answer goes to `onResult`, in order. A probe starts once. */
  start(onResult: (result: ProbeResult) => void): void
  /**
   * Stop probing. Once this resolves no result follows and no process or
   * socket the probe opened is left.
   */
  stop(): Promise<void>
}

export interface Timing {
  /** Time between the starts of two probes. */
  intervalMs: number
  /** The longest an answer may take to count as a success. */
  timeoutMs: number
}

/**
 * Epoch milliseconds that never go backwards (a wall clock step would fake a
 * dead peer), yet still comparable with Date.now() in another process.
 */
export function now(): number {
  return performance.timeOrigin + performance.now()
}

const MIN_INTERVAL_MS = 10
const MAX_MS = 3_600_000

export function checkTiming(label: string, timing: Timing): Timing {
  const { intervalMs, timeoutMs } = timing
  if (!Number.isFinite(intervalMs) || intervalMs < MIN_INTERVAL_MS || intervalMs > MAX_MS) {
    throw usageError(`${label}: interval must be between ${MIN_INTERVAL_MS} ms and 1 hour`)
  }
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > MAX_MS) {
    throw usageError(`${label}: timeout must be above 0 and at most 1 hour`)
  }
  return timing
}

/** One run of a one-question probe: resolve with the answer; give up promptly once `signal` aborts. */
export type Ask = (signal: AbortSignal) => Promise<{ ok: boolean; detail: string }>

/**
 * A probe that asks `ask` every `intervalMs` (counted from start to start).
 * Runs never overlap: a run that outlasts the interval delays the next one,
 * so a slow target cannot pile up sockets or processes. A run that has not
 * answered within `timeoutMs` is aborted and counts as a failure.
 */
export function periodicProbe(label: string, timing: Timing, ask: Ask): Probe {
  const { intervalMs, timeoutMs } = checkTiming(label, timing)
  const stopping = new AbortController()
  let loop: Promise<void> | undefined

  async function run(onResult: (result: ProbeResult) => void): Promise<void> {
    while (!stopping.signal.aborted) {
      const started = now()
      const result = await askOnce(started)
      if (stopping.signal.aborted) return
      onResult(result)
      await pause(started + intervalMs - now())
    }
  }

  async function askOnce(started: number): Promise<ProbeResult> {
    const run = new AbortController()
    const onStop = () => run.abort()
    stopping.signal.addEventListener('abort', onStop)
    const timer = setTimeout(() => run.abort(), timeoutMs)
    try {
      const answer = await ask(run.signal).catch((error: unknown) => ({ ok: false, detail: reason(error) }))
      const at = now()
      // An answer that only came because the run was aborted is the timeout's.
      if (run.signal.aborted)
        return { ok: false, at, ms: at - started, detail: `no answer within ${timeoutMs} ms` }
      return { ...answer, at, ms: at - started }
    } finally {
      clearTimeout(timer)
      stopping.signal.removeEventListener('abort', onStop)
    }
  }

  function pause(ms: number): Promise<void> {
    if (ms <= 0 || stopping.signal.aborted) return Promise.resolve()
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        stopping.signal.removeEventListener('abort', done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      stopping.signal.addEventListener('abort', done)
    })
  }

  return {
    label,
    intervalMs,
    timeoutMs,
    start(onResult) {
      if (loop) throw new Error(`${label} already started`)
      loop = run(onResult)
    },
    async stop() {
      stopping.abort()
      await loop
    },
  }
}

/** A one-line message from anything thrown by a socket or a child process. */
export function reason(error: unknown): string {
  const e = error as NodeJS.ErrnoException
  return (e?.code && !String(e.message).includes(e.code) ? `${e.code}: ` : '') + String(e?.message ?? e)
}
