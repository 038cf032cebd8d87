import { expect } from 'vitest'
import { ExitCode, IpmoveError } from '../../src/errors.js'

/**
 * The IpmoveError a promise rejects with; fails the test on anything else.
 * Every such error is a one-line message that names none of `secrets`.
 */
export async function failure(
  promise: Promise<unknown>,
  secrets: readonly string[] = [],
): Promise<IpmoveError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  return checked(error, secrets)
}

/** The IpmoveError a function throws. */
export function failureSync(fn: () => unknown, secrets: readonly string[] = []): IpmoveError {
  try {
    fn()
  } catch (error) {
    return checked(error, secrets)
  }
  throw new Error('expected an IpmoveError')
}

/** The message of the usage error (exit 2) a function throws. */
export function usage(fn: () => unknown): string {
  const error = failureSync(fn)
  expect(error.exitCode).toBe(ExitCode.USAGE)
  return error.message
}

function checked(error: unknown, secrets: readonly string[]): IpmoveError {
  expect(error).toBeInstanceOf(IpmoveError)
  const { message } = error as IpmoveError
  expect(message).not.toContain('\n')
  for (const secret of secrets) expect(message).not.toContain(secret)
  return error as IpmoveError
}

/** Characters a terminal or syslog acts on: C0 and C1 controls, DEL, U+2028/2029 (newline not counted). */
export function controlCharacters(text: string): string[] {
  return [...text].filter((ch) => {
    const code = ch.codePointAt(0)!
    return (
      ch !== '\n' && (code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0x2028 || code === 0x2029)
    )
  })
}
