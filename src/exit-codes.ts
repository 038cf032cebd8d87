import type { ErrorKind } from './errors.js'

/**
 * Exit codes are a public contract: hooks and scripts branch on them, and the
 * README documents each one. Never renumber; only append.
 */
export const ExitCode = {
  /** Moved, or already in place. */
  OK: 0,
  /** Unexpected internal error (a bug), or an API failure with no better code. */
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

/** The documented exit code of each error kind: the CLI edge's one table. */
const EXIT_OF_KIND: Record<ErrorKind, ExitCodeName> = {
  usage: 'USAGE',
  auth: 'AUTH',
  'not-found': 'NOT_FOUND',
  timeout: 'TIMEOUT',
  busy: 'BUSY',
  superseded: 'BUSY',
  local: 'LOCAL',
  unreachable: 'UNREACHABLE',
  'ambiguous-write': 'UNREACHABLE',
  unexpected: 'UNEXPECTED',
  'provider-failed': 'INTERNAL',
  internal: 'INTERNAL',
}

/** The exit code's name (for --json's `code`) and number for an error kind. */
export function exitOf(kind: ErrorKind): { code: ExitCodeName; exitCode: number } {
  const code = EXIT_OF_KIND[kind]
  return { code, exitCode: ExitCode[code] }
}
