import type { Socket } from 'node:net'
import { usageError } from '../src/errors.js'
import { shown } from '../src/validate.js'

/**
 * Fault injection shared by the API emulators: a fault matches requests by
 * method and path and, instead of the normal answer, sends an error status,
 * drops the connection, never answers, or answers late. Nothing here knows
 * about a particular cloud: the emulator renders error bodies in its API's
 * format through `sendStatus`.
 */

export type FaultAction =
  /** Answer this status, with the API's error body and an optional Retry-After (seconds). */
  | { type: 'status'; status: number; retryAfter?: number }
  /** Drop the connection without an answer. */
  | { type: 'reset' }
  /** Never answer (until the client gives up or the emulator closes). */
  | { type: 'hang' }
  /** Answer normally, `ms` milliseconds late. */
  | { type: 'slow'; ms: number }

export interface FaultSpec {
  /**
   * Glob over the request path without the API version prefix, segment by segment:
   * `*` is one whole segment or part of one, `**` any number of segments. Default `/**` (every path).
   * Segments are URL-decoded one by one, so `/ip/*` matches `/ip/198.51.100.7%2F32`.
   */
  path?: string
  /** Only this HTTP method; any when absent. */
  method?: string
  action: FaultAction
  /** How many requests the fault takes; 0 means every one, forever. Default 1. */
  times?: number
}

const KEYS = ['path', 'method', 'status', 'retry-after', 'reset', 'hang', 'slow', 'times'] as const
const MAX_DELAY_MS = 3_600_000

function integer(spec: string, item: string, value: string, min: number, max: number): number {
  if (!/^\d{1,10}$/.test(value) || Number(value) < min || Number(value) > max) {
    throw usageError(`fault ${shown(spec)}: ${shown(item)} needs a whole number from ${min} to ${max}`)
  }
  return Number(value)
}

/**
 * Parse `path=/cloud/project/*\/ip/failover/*\/attach,method=POST,status=503,times=2`.
 * Errors name the item at fault and exit 2.
 */
export function parseFaultSpec(spec: string): FaultSpec {
  if (spec.trim() === '') throw usageError('fault spec is empty')
  const seen = new Map<string, string>()
  for (const item of spec.split(',')) {
    const eq = item.indexOf('=')
    const key = (eq < 0 ? item : item.slice(0, eq)).trim().toLowerCase()
    const value = eq < 0 ? undefined : item.slice(eq + 1).trim()
    if (!(KEYS as readonly string[]).includes(key)) {
      throw usageError(`fault ${shown(spec)}: unknown item ${shown(item)} (known: ${KEYS.join(', ')})`)
    }
    if (seen.has(key)) throw usageError(`fault ${shown(spec)}: ${shown(key)} is given twice`)
    const flag = key === 'reset' || key === 'hang'
    if (flag && value !== undefined) throw usageError(`fault ${shown(spec)}: ${shown(item)} takes no value`)
    if (!flag && !value) throw usageError(`fault ${shown(spec)}: ${shown(item)} needs a value (${key}=…)`)
    seen.set(key, value ?? '')
  }

  const actions = ['status', 'reset', 'hang', 'slow'].filter((k) => seen.has(k))
  if (actions.length !== 1) {
    throw usageError(`fault ${shown(spec)}: give exactly one of status=CODE, reset, hang, slow=MS`)
  }
  let action: FaultAction
  const value = (key: string) => seen.get(key) ?? ''
  const item = (key: string) => `${key}=${value(key)}`
  switch (actions[0]) {
    case 'status': {
      const status = integer(spec, item('status'), value('status'), 400, 599)
      action = { type: 'status', status }
      if (seen.has('retry-after')) {
        action.retryAfter = integer(spec, item('retry-after'), value('retry-after'), 0, 86_400)
      }
      break
    }
    case 'slow':
      action = { type: 'slow', ms: integer(spec, item('slow'), value('slow'), 0, MAX_DELAY_MS) }
      break
    case 'reset':
      action = { type: 'reset' }
      break
    default:
      action = { type: 'hang' }
  }
  if (seen.has('retry-after') && action.type !== 'status') {
    throw usageError(`fault ${shown(spec)}: retry-after only goes with status=CODE`)
  }

  const fault: FaultSpec = {
    action,
    times: seen.has('times') ? integer(spec, item('times'), value('times'), 0, 1e9) : 1,
  }
  if (seen.has('path')) {
    const path = value('path')
    if (!path.startsWith('/') || /\s/.test(path)) {
      throw usageError(`fault ${shown(spec)}: ${shown(item('path'))} must be a path starting with /`)
    }
    fault.path = path
  }
  if (seen.has('method')) {
    const method = value('method').toUpperCase()
    if (!/^[A-Z]{3,7}$/.test(method))
      throw usageError(`fault ${shown(spec)}: ${shown(item('method'))} is not an HTTP method`)
    fault.method = method
  }
  return fault
}

/** Check a programmatic spec as strictly as a parsed one. */
function checkFaultSpec(spec: FaultSpec): FaultSpec {
  const times = spec.times ?? 1
  if (!Number.isInteger(times) || times < 0)
    throw usageError(`fault times must be a whole number >= 0, got ${times}`)
  if (spec.path !== undefined && !spec.path.startsWith('/'))
    throw usageError(`fault path ${shown(spec.path)} must start with /`)
  const a = spec.action
  if (a.type === 'status' && !(Number.isInteger(a.status) && a.status >= 400 && a.status <= 599)) {
    throw usageError(`fault status must be from 400 to 599, got ${a.status}`)
  }
  if (a.type === 'slow' && !(Number.isInteger(a.ms) && a.ms >= 0 && a.ms <= MAX_DELAY_MS)) {
    throw usageError(`fault slow must be from 0 to ${MAX_DELAY_MS} ms, got ${a.ms}`)
  }
  return { ...spec, method: spec.method?.toUpperCase(), times }
}

/** Segment-wise glob match: `*` within one segment, `**` across any number of them. */
export function matchPathGlob(glob: string, segments: readonly string[]): boolean {
  const parts = glob.split('/').slice(1)
  const memo = new Map<string, boolean>()
  const segmentMatches = (pattern: string, segment: string) => {
    const re = new RegExp(`^${pattern.split('*').map(escapeRegExp).join('.*')}$`, 's')
    return re.test(segment)
  }
  const match = (p: number, s: number): boolean => {
    const key = `${p},${s}`
    const known = memo.get(key)
    if (known !== undefined) return known
    let result: boolean
    if (p === parts.length) result = s === segments.length
    else if (parts[p] === '**') result = match(p + 1, s) || (s < segments.length && match(p, s + 1))
    else result = s < segments.length && segmentMatches(parts[p]!, segments[s]!) && match(p + 1, s + 1)
    memo.set(key, result)
    return result
  }
  return match(0, 0)
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** One added fault and how many requests it may still take (Infinity for times=0). */
export interface ActiveFault {
  spec: FaultSpec
  left: number
}

/** Describe a fault in the spec syntax, for logs and state dumps. */
export function describeFault(spec: FaultSpec): string {
  const items = [`path=${spec.path ?? '/**'}`]
  if (spec.method) items.push(`method=${spec.method}`)
  const a = spec.action
  if (a.type === 'status') {
    items.push(`status=${a.status}`)
    if (a.retryAfter !== undefined) items.push(`retry-after=${a.retryAfter}`)
  } else if (a.type === 'slow') items.push(`slow=${a.ms}`)
  else items.push(a.type)
  items.push(`times=${spec.times ?? 1}`)
  return items.join(',')
}

/**
 * The faults of one emulator, in the order added. Also owns the timers of slow
 * answers, so that closing the emulator never waits for one.
 */
export class FaultInjector {
  readonly faults: ActiveFault[] = []
  private readonly sleepers = new Set<{ timer: NodeJS.Timeout; wake: (slept: boolean) => void }>()
  private closed = false

  constructor(specs: ReadonlyArray<FaultSpec | string> = []) {
    for (const spec of specs) this.add(spec)
  }

  add(spec: FaultSpec | string): void {
    const checked = typeof spec === 'string' ? parseFaultSpec(spec) : checkFaultSpec(spec)
    this.faults.push({
      spec: checked,
      left: checked.times === 0 ? Number.POSITIVE_INFINITY : (checked.times ?? 1),
    })
  }

  /** The first fault with uses left that matches this request; it consumes one use. */
  take(method: string, segments: readonly string[]): FaultSpec | undefined {
    for (const fault of this.faults) {
      if (fault.left <= 0) continue
      if (fault.spec.method && fault.spec.method !== method.toUpperCase()) continue
      if (!matchPathGlob(fault.spec.path ?? '/**', segments)) continue
      fault.left -= 1
      return fault.spec
    }
    return undefined
  }

  /** Resolves true after `ms`, or false at once if the injector closes first. */
  sleep(ms: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(false)
    return new Promise((resolve) => {
      const sleeper = {
        timer: setTimeout(() => {
          this.sleepers.delete(sleeper)
          resolve(true)
        }, ms),
        wake: resolve,
      }
      this.sleepers.add(sleeper)
    })
  }

  close(): void {
    this.closed = true
    for (const sleeper of this.sleepers) {
      clearTimeout(sleeper.timer)
      sleeper.wake(false)
    }
    this.sleepers.clear()
  }
}

export type FaultOutcome = 'answered' | 'proceed'

/**
 * Carry out a fault. 'answered' means the request is dealt with (even if no byte
 * was sent); 'proceed' means the emulator should answer normally now.
 */
export async function applyFault(
  fault: FaultSpec,
  socket: Socket,
  injector: FaultInjector,
  sendStatus: (status: number, headers: Record<string, string>) => void,
): Promise<FaultOutcome> {
  const action = fault.action
  switch (action.type) {
    case 'status':
      sendStatus(
        action.status,
        action.retryAfter === undefined ? {} : { 'Retry-After': String(action.retryAfter) },
      )
      return 'answered'
    case 'reset': {
      // A TCP RST where the socket allows it, so the client sees ECONNRESET rather than a clean close.
      try {
        socket.resetAndDestroy()
      } catch {
        // TLS sockets may refuse; destroying still gives "socket hang up".
      }
      socket.destroy()
      return 'answered'
    }
    case 'hang':
      return 'answered'
    case 'slow':
      return (await injector.sleep(action.ms)) ? 'proceed' : 'answered'
  }
}
