import type { ServerResponse } from 'node:http'
import { usageError } from '../src/errors.js'
import { shown } from '../src/validate.js'

/**
 * Fault injection shared by the API emulators: a fault matches requests by
 * method and path and, instead of the normal answer, sends an error status or
 * a chosen body, drops the connection (before or after carrying the request
 * out), never answers, answers late or byte by byte, floods, or lets the change
 * a write starts stay pending longer. Only `task` knows about a particular API
 * (OVH's move tasks); the emulator renders error bodies in
 * its API's format through `sendStatus`.
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
  /** Answer this status (200 unless given) with exactly this body, not the API's. */
  | { type: 'body'; status: number; text: string }
  /** Answer 200 with a body of `mib` MiB (JSON whitespace), streamed as fast as the client reads. */
  | { type: 'size'; mib: number }
  /** Answer normally, but send the answer's body one byte every `ms` milliseconds. */
  | { type: 'drip'; ms: number }
  /** Carry the request out (a write is applied), then drop the connection instead of answering. */
  | { type: 'reset-after' }
  /** OVH /ip/{block}/move only: accept the move, and let its task end in this status (`todo`: stay there). */
  | { type: 'task'; status: TaskEnd }
  /** Carry the request out, but the change it starts stays pending `ms` (instead of --pending-ms). */
  | { type: 'pending'; ms: number }

/** How a faulted OVH move task can end; `todo` never ends. */
export const TASK_ENDS = ['todo', 'cancelled', 'customerError', 'ovhError'] as const
export type TaskEnd = (typeof TASK_ENDS)[number]

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

/** What a fault does when it matches. */
const ACTIONS = [
  'status',
  'body',
  'reset',
  'reset-after',
  'hang',
  'slow',
  'drip',
  'size',
  'task',
  'pending',
] as const
/** Every item of a fault: what it matches, what it does, and how long it lasts. */
const KEYS = ['path', 'method', ...ACTIONS, 'retry-after', 'times'] as const
const FLAGS = new Set(['reset', 'reset-after', 'hang'])
const MAX_DELAY_MS = 3_600_000
const MAX_SIZE_MIB = 4096
const MAX_BODY_TEXT = 65_536

function integer(spec: string, item: string, value: string, min: number, max: number): number {
  if (!/^\d{1,10}$/.test(value) || Number(value) < min || Number(value) > max) {
    throw usageError(`fault ${shown(spec)}: ${shown(item)} needs a whole number from ${min} to ${max}`)
  }
  return Number(value)
}

/**
 * Parse `path=/cloud/project/*\/ip/failover/*\/attach,method=POST,status=503,times=2`.
 * A `body=` value is percent-decoded, so that it can hold commas (`%2C`).
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
    const flag = FLAGS.has(key)
    if (flag && value !== undefined) throw usageError(`fault ${shown(spec)}: ${shown(item)} takes no value`)
    // body= may be empty (an empty answer); every other valued item needs a value.
    if (!flag && (value === undefined || (value === '' && key !== 'body')))
      throw usageError(`fault ${shown(spec)}: ${shown(item)} needs a value (${key}=…)`)
    seen.set(key, value ?? '')
  }

  // status=CODE may go with body=TEXT: that is one action, the body's.
  const actions = ACTIONS.filter((k) => seen.has(k) && !(k === 'status' && seen.has('body')))
  if (actions.length !== 1) {
    throw usageError(
      `fault ${shown(spec)}: give exactly one of status=CODE, body=TEXT, reset, reset-after, hang, slow=MS, drip=MS, size=MIB, task=STATUS, pending=MS`,
    )
  }
  let action: FaultAction
  const value = (key: string) => seen.get(key) ?? ''
  const item = (key: string) => `${key}=${value(key)}`
  switch (actions[0]) {
    case 'body': {
      let text: string
      try {
        text = decodeURIComponent(value('body'))
      } catch {
        throw usageError(`fault ${shown(spec)}: ${shown(item('body'))} is not percent-encoded text`)
      }
      if (text.length > MAX_BODY_TEXT)
        throw usageError(`fault ${shown(spec)}: body=… is longer than ${MAX_BODY_TEXT} characters`)
      const status = seen.has('status') ? integer(spec, item('status'), value('status'), 200, 599) : 200
      action = { type: 'body', status, text }
      break
    }
    case 'drip':
      action = { type: 'drip', ms: integer(spec, item('drip'), value('drip'), 0, MAX_DELAY_MS) }
      break
    case 'size':
      action = { type: 'size', mib: integer(spec, item('size'), value('size'), 1, MAX_SIZE_MIB) }
      break
    case 'task': {
      const status = value('task')
      if (!(TASK_ENDS as readonly string[]).includes(status)) {
        throw usageError(
          `fault ${shown(spec)}: ${shown(item('task'))} must be one of ${TASK_ENDS.join(', ')}`,
        )
      }
      action = { type: 'task', status: status as TaskEnd }
      break
    }
    case 'reset-after':
      action = { type: 'reset-after' }
      break
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
    case 'pending':
      action = { type: 'pending', ms: integer(spec, item('pending'), value('pending'), 0, MAX_DELAY_MS) }
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
  if (
    (a.type === 'slow' || a.type === 'drip' || a.type === 'pending') &&
    !(Number.isInteger(a.ms) && a.ms >= 0 && a.ms <= MAX_DELAY_MS)
  ) {
    throw usageError(`fault ${a.type} must be from 0 to ${MAX_DELAY_MS} ms, got ${a.ms}`)
  }
  if (a.type === 'body' && !(Number.isInteger(a.status) && a.status >= 200 && a.status <= 599)) {
    throw usageError(`fault body status must be from 200 to 599, got ${a.status}`)
  }
  if (a.type === 'size' && !(Number.isInteger(a.mib) && a.mib >= 1 && a.mib <= MAX_SIZE_MIB)) {
    throw usageError(`fault size must be from 1 to ${MAX_SIZE_MIB} MiB, got ${a.mib}`)
  }
  if (a.type === 'task' && !(TASK_ENDS as readonly string[]).includes(a.status)) {
    throw usageError(`fault task must be one of ${TASK_ENDS.join(', ')}, got ${a.status}`)
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
  } else if (a.type === 'body') {
    if (a.status !== 200) items.push(`status=${a.status}`)
    items.push(`body=${encodeURIComponent(a.text)}`)
  } else if (a.type === 'slow' || a.type === 'drip' || a.type === 'pending') items.push(`${a.type}=${a.ms}`)
  else if (a.type === 'size') items.push(`size=${a.mib}`)
  else if (a.type === 'task') items.push(`task=${a.status}`)
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

  /** Drop every fault: from now on, requests get their normal answers. */
  clear(): void {
    this.faults.length = 0
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
 * was sent); 'proceed' means the emulator should answer normally now (for `drip`
 * and `reset-after`, `res` then delivers that answer the fault's way; for `task`,
 * the emulator reads the fault itself).
 */
export async function applyFault(
  fault: FaultSpec,
  res: ServerResponse,
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
    case 'body':
      res.writeHead(action.status, { 'Content-Type': contentTypeOf(action.text) })
      res.end(action.text)
      return 'answered'
    case 'size':
      await flood(res, action.mib)
      return 'answered'
    case 'reset':
      reset(res)
      return 'answered'
    case 'reset-after':
      // The emulator still carries the request out; only its answer is lost.
      res.end = ((..._args: unknown[]) => {
        reset(res)
        return res
      }) as ServerResponse['end']
      return 'proceed'
    case 'drip':
      drip(res, injector, action.ms)
      return 'proceed'
    case 'hang':
      return 'answered'
    case 'slow':
      return (await injector.sleep(action.ms)) ? 'proceed' : 'answered'
    case 'task':
    case 'pending':
      return 'proceed'
  }
}

/** A TCP RST where the socket allows it, so the client sees ECONNRESET rather than a clean close. */
function reset(res: ServerResponse): void {
  const socket = res.socket
  try {
    socket?.resetAndDestroy()
  } catch {
    // TLS sockets may refuse; destroying still gives "socket hang up".
  }
  socket?.destroy()
}

function contentTypeOf(text: string): string {
  const start = text.trimStart()
  if (start.startsWith('<?xml')) return 'text/xml;charset=UTF-8'
  if (start.startsWith('<')) return 'text/html; charset=utf-8'
  return 'application/json; charset=utf-8'
}

/** `mib` MiB of JSON whitespace, written as fast as the client reads, until it leaves. */
async function flood(res: ServerResponse, mib: number): Promise<void> {
  res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8' })
  const chunk = Buffer.alloc(64 * 1024, ' ')
  for (let sent = 0; sent < mib * 1024 * 1024 && !res.destroyed; sent += chunk.length) {
    if (!res.write(chunk)) {
      await new Promise<void>((resolve) => {
        res.once('drain', resolve)
        res.once('close', resolve)
      })
    }
  }
  if (!res.destroyed) res.end()
}

/** Make `res.end(body)` send its headers at once, then the body one byte every `ms`. */
function drip(res: ServerResponse, injector: FaultInjector, ms: number): void {
  const end = res.end.bind(res) as (chunk?: unknown) => ServerResponse
  res.end = ((chunk?: unknown) => {
    const body = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.isBuffer(chunk) ? chunk : undefined
    res.flushHeaders()
    void (async () => {
      for (const byte of body ?? []) {
        if (!(await injector.sleep(ms)) || res.destroyed) return void res.destroy()
        res.write(Buffer.of(byte))
      }
      end()
    })()
    return res
  }) as ServerResponse['end']
}
