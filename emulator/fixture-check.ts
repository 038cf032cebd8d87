import { usageError } from '../src/errors.js'

type Json = Record<string, unknown>

/**
 * Checks for JSON read from `--fixture FILE`: each names the file and the first
 * field that is wrong, as a one-line usage error (exit 2).
 */
export function fixtureChecks(source: string) {
  const fail = (where: string, what: string): never => {
    throw usageError(`${source}: ${where} ${what}`)
  }
  const object = (v: unknown, where: string): Json =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : fail(where, 'must be an object')
  const list = <T>(v: unknown, where: string, item: (x: unknown, where: string) => T): T[] =>
    Array.isArray(v) ? v.map((x, i) => item(x, `${where}[${i}]`)) : fail(where, 'must be an array')
  const text = (v: unknown, where: string): string =>
    typeof v === 'string' && v !== '' ? v : fail(where, 'must be a non-empty string')
  const integer = (v: unknown, where: string, min = 1): number =>
    typeof v === 'number' && Number.isSafeInteger(v) && v >= min
      ? v
      : fail(where, `must be a whole number >= ${min}`)
  const oneOf = <T extends string>(v: unknown, where: string, allowed: readonly T[]): T =>
    allowed.includes(v as T) ? (v as T) : fail(where, `must be one of ${allowed.join(', ')}`)
  /** A field that may be null: the check's result, or null. */
  const nullable = <T>(v: unknown, check: () => T): T | null => (v === null ? null : check())
  return { fail, object, list, text, integer, oneOf, nullable }
}
