/**
 * The services both `ipmove emulate` commands call: command-line flags turned
 * into emulator options, and an emulator run until a signal aborts it.
 */
import { readFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import { usageError } from '../src/errors.js'
import type { Logger } from '../src/output.js'
import { shown, validateName } from '../src/validate.js'
import { parseFaultSpec } from './faults.js'
import type { EmulatorOptions } from './server.js'

/** The flags of `ipmove emulate …`, as typed on the command line. */
export interface EmulateFlags {
  port?: string
  /** Repeatable: every address to listen on, and every name the certificate covers. */
  host?: string | string[]
  pendingMs?: string
  /** `emulate ovh` only: seconds the server clock is ahead (negative: behind). */
  clockSkew?: string
  faults?: string[]
  fixtureFile?: string
  dir?: string
  thisHost?: string
  /** Print the fixture the emulator would serve instead of serving it. */
  printFixture?: boolean
}

/** A whole number from min to max; a sign only where the range goes below zero. */
function wholeNumber(flag: string, value: string, min: number, max: number): number {
  const pattern = min < 0 ? /^-?\d{1,10}$/ : /^\d{1,10}$/
  if (!pattern.test(value) || Number(value) < min || Number(value) > max) {
    throw usageError(`${flag} ${shown(value)} must be a whole number from ${min} to ${max}`)
  }
  return Number(value)
}

/**
 * Turn command-line flags into emulator options, the fixture file read with the
 * emulator's own `parseFixture`; every mistake is a one-line usage error.
 */
async function emulatorOptionsFromFlags<Fixture>(
  flags: EmulateFlags,
  parseFixture: (json: unknown, where: string) => Fixture,
): Promise<EmulatorOptions<Fixture> & { clockSkewSeconds?: number }> {
  const options: EmulatorOptions<Fixture> & { clockSkewSeconds?: number } = {}
  if (flags.port !== undefined) options.port = wholeNumber('--port', flags.port, 0, 65_535)
  if (flags.host !== undefined) {
    const hosts = typeof flags.host === 'string' ? [flags.host] : flags.host
    for (const host of hosts) {
      if (!isIP(host) && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/.test(host)) {
        throw usageError(`--host ${shown(host)} is not an IP address or host name`)
      }
    }
    options.host = hosts
  }
  if (flags.pendingMs !== undefined)
    options.pendingMs = wholeNumber('--pending-ms', flags.pendingMs, 0, 3_600_000)
  if (flags.clockSkew !== undefined) {
    options.clockSkewSeconds = wholeNumber('--clock-skew', flags.clockSkew, -31_536_000, 31_536_000)
  }
  if (flags.dir !== undefined) {
    if (flags.dir === '') throw usageError('--dir is empty')
    options.dir = flags.dir
  }
  if (flags.thisHost !== undefined) options.thisHost = validateName('--this-host', flags.thisHost)
  options.faults = (flags.faults ?? []).map(parseFaultSpec)
  if (flags.fixtureFile !== undefined) {
    let text: string
    try {
      text = await readFile(flags.fixtureFile, 'utf8')
    } catch (error) {
      throw usageError(
        `--fixture ${shown(flags.fixtureFile)}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`,
      )
    }
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (error) {
      throw usageError(`--fixture ${shown(flags.fixtureFile)} is not JSON: ${(error as Error).message}`)
    }
    options.fixture = parseFixture(json, `--fixture ${flags.fixtureFile}`)
  }
  return options
}

/**
 * The services behind `ipmove emulate NAME` for one emulator: `optionsFromFlags`,
 * and `emulate`, which starts the emulator, hands it to `onReady` (which prints
 * the env lines), and closes it cleanly once `signal` aborts; with `printFixture`
 * it starts nothing and hands the fixture it would serve (`--fixture`'s, else
 * `defaultFixture`) to `onFixture`.
 */
export function emulateServices<
  Flags extends EmulateFlags,
  Fixture,
  Running extends { close(): Promise<void> },
>(
  parseFixture: (json: unknown, where: string) => Fixture,
  start: (options: EmulatorOptions<Fixture> & { clockSkewSeconds?: number }) => Promise<Running>,
  defaultFixture: () => Fixture,
) {
  const optionsFromFlags = (flags: Flags) => emulatorOptionsFromFlags(flags, parseFixture)
  const emulate = async (
    flags: Flags,
    signal: AbortSignal,
    onReady: (emulator: Running) => void,
    log?: Logger,
    onFixture?: (fixture: Fixture) => void,
  ): Promise<void> => {
    const options = await optionsFromFlags(flags)
    if (flags.printFixture) {
      onFixture?.(options.fixture ?? defaultFixture())
      return
    }
    if (signal.aborted) return
    const emulator = await start({ ...options, log })
    try {
      onReady(emulator)
      await new Promise<void>((resolve) => {
        if (signal.aborted) resolve()
        else signal.addEventListener('abort', () => resolve(), { once: true })
      })
    } finally {
      await emulator.close()
    }
  }
  return { optionsFromFlags, emulate }
}
