/**
 * One section of the watch config, read key by key: every error names file,
 * line, section and key, and keys nobody read are refused (a typo must not
 * pass silently). Shared by src/watch/config.ts and the sources' own keys.
 */
import { IpmoveError, usageError } from '../errors.js'
import { parseSeconds, shown } from '../validate.js'

/** Reads one section, naming file, line, section and key in every error. */
export class SectionReader {
  private readonly used = new Set<string>()

  constructor(
    private readonly path: string,
    private readonly lines: Map<string, number>,
    readonly section: string,
    private readonly values: Record<string, string>,
  ) {}

  /** `FILE:LINE: [SECTION] KEY` (the section's line when no key is given). */
  where(key?: string): string {
    const line = this.lines.get(`${this.section}\0${key ?? ''}`) ?? this.lines.get(`${this.section}\0`)
    return `${this.path}:${line ?? '?'}: [${this.section}]${key ? ` ${key}` : ''}`
  }

  fail(key: string | undefined, expected: string): IpmoveError {
    return usageError(`${this.where(key)}: ${expected}`)
  }

  get(key: string): string | undefined {
    this.used.add(key)
    return this.values[key]
  }

  need(key: string, what: string): string {
    const value = this.get(key)
    if (value === undefined || value === '') throw this.fail(undefined, `needs ${key} = ${what}`)
    return value
  }

  integer(key: string, min: number, max: number, fallback: number): number {
    const value = this.get(key)
    if (value === undefined) return fallback
    if (!/^\d{1,7}$/.test(value) || Number(value) < min || Number(value) > max) {
      throw this.fail(key, `expected a whole number from ${min} to ${max}, got ${shown(value)}`)
    }
    return Number(value)
  }

  seconds(key: string, fallback: number): number
  seconds(key: string): number | undefined
  seconds(key: string, fallback?: number): number | undefined {
    const value = this.get(key)
    if (value === undefined) return fallback
    return this.wrap(key, () => parseSeconds('the value', value))
  }

  flag(key: string, fallback: boolean): boolean {
    const value = this.get(key)
    if (value === undefined) return fallback
    if (/^(yes|true|on)$/i.test(value)) return true
    if (/^(no|false|off)$/i.test(value)) return false
    throw this.fail(key, `expected yes or no, got ${shown(value)}`)
  }

  oneOf<T extends string>(key: string, options: readonly T[], fallback?: T): T {
    const value = this.get(key)
    if (value === undefined) {
      if (fallback !== undefined) return fallback
      throw this.fail(undefined, `needs ${key} = ${options.join('|')}`)
    }
    if (!options.includes(value as T)) {
      throw this.fail(key, `expected ${options.join(' or ')}, got ${shown(value)}`)
    }
    return value as T
  }

  /** A JSON array of strings, as `argv = ["systemctl", "start", "nginx"]`. */
  argv(key: string): string[] {
    const text = this.need(key, 'a JSON array of strings, such as ["systemctl", "start", "nginx"]')
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      parsed = undefined
    }
    if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((a) => typeof a === 'string')) {
      throw this.fail(
        key,
        'expected a non-empty JSON array of strings, such as ["systemctl", "start", "nginx"]',
      )
    }
    return parsed
  }

  /** Run a validation that throws a usage error, re-thrown with this key's place. */
  wrap<T>(key: string | undefined, run: () => T): T {
    try {
      return run()
    } catch (error) {
      if (error instanceof IpmoveError && error.kind === 'usage') throw this.fail(key, error.message)
      throw error
    }
  }

  /** Refuse keys nobody read: a typo must not pass silently. */
  finish(known: readonly string[]): void {
    for (const key of Object.keys(this.values)) {
      if (!this.used.has(key)) {
        const shownKey = /^[a-z][a-z0-9_.-]{0,31}$/.test(key) ? JSON.stringify(key) : '(not shown)'
        throw this.fail(key, `unknown key ${shownKey} (known: ${known.join(', ')})`)
      }
    }
  }
}
