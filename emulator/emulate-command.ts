/**
 * What the `ipmove emulate NAME` commands share as oclif commands: their flags,
 * and a run until SIGINT or SIGTERM that prints the environment pointing clients
 * at the emulator (or, with --print-fixture, the fixture alone). Kept apart from
 * emulate.ts so that the emulators, which tests import, do not load oclif.
 */
import { Flags } from '@oclif/core'
import type { Logger, Output } from '../src/output.js'
import type { EmulateFlags } from './emulate.js'
import { envLines } from './server.js'

/** What `--fault SPEC` takes, for both emulators' help. */
// One line per paragraph and per row: help wraps them to the terminal (src/help.ts).
export const FAULT_HELP = `A fault is comma-separated items: path=GLOB (default /**; * is one path segment, ** any number), method=METHOD, times=N (default 1; 0 = always), then one action:
  status=CODE [retry-after=S]  the API's error body with CODE
  body=TEXT [status=CODE]      TEXT, percent-decoded (%2C: a comma), with CODE (default 200)
  size=MIB                     200 with MIB MiB of JSON whitespace
  reset                        drop the connection, nothing done
  reset-after                  do the request (a write lands), then drop the connection
  hang                         never answer
  slow=MS                      answer MS ms late
  drip=MS                      answer one body byte every MS ms
  task=STATUS                  OVH POST /ip/{block}/move: its task stays in todo, or ends cancelled, customerError or ovhError
  pending=MS                   do the request, but the change it starts stays pending MS ms (not --pending-ms)
While it runs, /_emulator/ on the same port is its control API (state, faults, pending-ms, reset, requests); ipmove emulate control calls it.`

/**
 * The oclif flags of `ipmove emulate …`: what `--pending-ms` and `--dir` mean differs
 * by API, and `extra` flags stand before `--dir`.
 */
export function emulateCommandFlags<Extra extends object = object>(
  own: { pendingMs: { description: string; default: string }; dir: string },
  extra: Extra = {} as Extra,
) {
  return {
    port: Flags.string({ description: 'Port to listen on; 0 picks a free one.', default: '0' }),
    host: Flags.string({
      description:
        'Address or name to listen on (repeatable); the certificate covers every one, a wildcard (0.0.0.0, ::) is listened on alone.',
      multiple: true,
      default: ['127.0.0.1'],
    }),
    'pending-ms': Flags.string(own.pendingMs),
    fault: Flags.string({ description: 'Inject a fault (repeatable); see above.', multiple: true }),
    fixture: Flags.string({
      description: 'JSON file with the account to serve (same shape as the default fixture).',
    }),
    'print-fixture': Flags.boolean({
      description:
        'Print the fixture it would serve (the default one, or --fixture’s) as JSON, a start for your own --fixture, and exit.',
    }),
    ...extra,
    dir: Flags.string({ description: own.dir }),
    'this-host': Flags.string({
      description: 'Instance name or id the metadata service reports as this host.',
    }),
  }
}

/** What `ipmove emulate …` prints once its emulator listens. */
interface ReadyEmulator {
  url: string
  port: number
  /** The HTTPS emulator's CA; left out of the JSON where there is none. */
  caFile?: string
  env: Record<string, string>
}

/** The parsed flags of `ipmove emulate …`, named as on the command line. */
export interface EmulateCommandFlags {
  json: boolean
  port?: string
  host?: string[]
  'pending-ms'?: string
  'clock-skew'?: string
  fault?: string[]
  fixture?: string
  'print-fixture'?: boolean
  dir?: string
  'this-host'?: string
}

/**
 * The run of `ipmove emulate …`: serve until SIGINT or SIGTERM, and print the
 * environment once the emulator listens, as sourceable lines or, with --json,
 * one object.
 */
export async function runEmulateCommand<Running extends ReadyEmulator>(
  output: Output,
  flags: EmulateCommandFlags,
  /** The API's name in the "listening" line: OVH, EC2. */
  api: string,
  emulate: (
    flags: EmulateFlags,
    signal: AbortSignal,
    onReady: (emulator: Running) => void,
    log: Logger,
    onFixture: (fixture: object) => void,
  ) => Promise<void>,
): Promise<void> {
  const controller = new AbortController()
  const stop = () => controller.abort()
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  try {
    await emulate(
      {
        port: flags.port,
        host: flags.host,
        pendingMs: flags['pending-ms'],
        clockSkew: flags['clock-skew'],
        faults: flags.fault,
        fixtureFile: flags.fixture,
        dir: flags.dir,
        thisHost: flags['this-host'],
        printFixture: flags['print-fixture'],
      },
      controller.signal,
      (emulator) => {
        if (flags.json) {
          const { url, port, caFile, env } = emulator
          output.result({ ok: true, url, port, caFile, env })
          return
        }
        for (const line of envLines(emulator.env)) output.info(line)
        // A shell comment, so the whole output can be sourced.
        output.info(`# ipmove ${api} emulator listening on ${emulator.url} (stop with Ctrl-C or SIGTERM)`)
      },
      output,
      (fixture) => {
        // The fixture alone, as --fixture reads it: one line with --json, indented without.
        if (flags.json) output.result(fixture)
        else for (const line of JSON.stringify(fixture, null, 2).split('\n')) output.info(line)
      },
    )
  } finally {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
  }
}
