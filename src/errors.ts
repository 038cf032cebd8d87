/**
 * Exit codes are a public contract: hooks and scripts branch on them, and the
 * README documents each one. Never renumber; only append.
 */
export const ExitCode = {
  /** Moved, or already in place. */
  OK: 0,
  /** Unexpected internal error (a bug). */
  INTERNAL: 1,
  /** Usage or invalid input, detected before any API call. */
  USAGE: 2,
  /** Authentication or permission refused by the API. */
  AUTH: 3,
  /** Project, IP or instance not found, or a name is ambiguous. */
  NOT_FOUND: 4,
  /** Timed out waiting for the API to finish. */
  TIMEOUT: 5,
  /** Another operation holds the IP. */
  BUSY: 6,
  /** Configuring the address on this host failed. */
  LOCAL: 7,
  /** The API could not be reached, even after retries. */
  UNREACHABLE: 8,
  /** The API answered something ipmove cannot use: malformed, of the wrong shape, or too large. */
  UNEXPECTED: 9,
} as const

export type ExitCodeName = keyof typeof ExitCode
export type ExitCodeValue = (typeof ExitCode)[ExitCodeName]

const NAMES = Object.fromEntries(Object.entries(ExitCode).map(([k, v]) => [v, k])) as Record<
  ExitCodeValue,
  ExitCodeName
>

/**
 * An error whose message is fit for a one-line report to an operator. Anything
 * thrown that is not an IpmoveError is a bug and exits 1.
 */
export class IpmoveError extends Error {
  readonly exitCode: ExitCodeValue
  /** Extra machine-readable facts for --json (never secrets). */
  readonly details: Record<string, unknown> | undefined

  constructor(exitCode: ExitCodeValue, message: string, details?: Record<string, unknown>) {
    super(message)
    this.name = 'IpmoveError'
    this.exitCode = exitCode
    this.details = details
  }

  get code(): ExitCodeName {
    return NAMES[this.exitCode]
  }
}

export const usageError = (message: string, details?: Record<string, unknown>) =>
  new IpmoveError(ExitCode.USAGE, message, details)
export const notFound = (message: string, details?: Record<string, unknown>) =>
  new IpmoveError(ExitCode.NOT_FOUND, message, details)

export function exitCodeName(code: number): string {
  return NAMES[code as ExitCodeValue] ?? 'INTERNAL'
}
