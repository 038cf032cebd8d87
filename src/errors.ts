/**
 * What went wrong, as a kind the engine can steer on: a long-running process
 * retries `busy`, waits out `unreachable`, stops claiming on `superseded`, and
 * never retries `usage`. Only the CLI edge (src/exit-codes.ts) turns kinds
 * into the documented exit numbers.
 */
export const ERROR_KINDS = [
  /** Bad input or setup, found before any API call. */
  'usage',
  /** The API refused the credentials or the permission. */
  'auth',
  /** A project, IP or instance does not exist, or a name is ambiguous. */
  'not-found',
  /** The time given (--timeout) ran out. */
  'timeout',
  /** Another operation holds the IP now: wait and decide again. */
  'busy',
  /** Another holder took the IP while our move ran: someone else decided, do not fight it. */
  'superseded',
  /** Configuring or announcing the address on this host failed. */
  'local',
  /** The API could not be reached, even after retries; nothing was written. */
  'unreachable',
  /** A write failed without an answer: it may or may not have landed, so re-read before writing again. */
  'ambiguous-write',
  /** The API answered something ipmove cannot use: malformed, of the wrong shape, or too large. */
  'unexpected',
  /** The API answered with a failure it gives no better kind for (an error status, a failed task). */
  'provider-failed',
  /** A bug in ipmove. */
  'internal',
] as const

export type ErrorKind = (typeof ERROR_KINDS)[number]

/**
 * An error whose message is fit for a one-line report to an operator. Anything
 * thrown that is not an IpmoveError is a bug.
 */
export class IpmoveError extends Error {
  readonly kind: ErrorKind
  /** Extra machine-readable facts for --json (never secrets). */
  readonly details: Record<string, unknown> | undefined

  constructor(kind: ErrorKind, message: string, details?: Record<string, unknown>) {
    super(message)
    this.name = 'IpmoveError'
    this.kind = kind
    this.details = details
  }
}

/** Whether `error` is an IpmoveError of one of `kinds`. */
export function isKind(error: unknown, ...kinds: ErrorKind[]): error is IpmoveError {
  return error instanceof IpmoveError && kinds.includes(error.kind)
}

export const usageError = (message: string, details?: Record<string, unknown>) =>
  new IpmoveError('usage', message, details)
export const notFound = (message: string, details?: Record<string, unknown>) =>
  new IpmoveError('not-found', message, details)

/** At most this many items of a list a message names (a message stays one readable line). */
const LISTED_AT_MOST = 10

/**
 * `items` for a message that names what was searched: `prefix`, the first LISTED_AT_MOST
 * items and how many more, then `suffix`; nothing at all when there are none.
 */
export function listed(items: readonly string[], prefix: string, suffix = ''): string {
  if (items.length === 0) return ''
  const more = items.length - LISTED_AT_MOST
  return `${prefix}${items.slice(0, LISTED_AT_MOST).join(', ')}${more > 0 ? ` and ${more} more` : ''}${suffix}`
}
