import { Command, Flags } from '@oclif/core'
import { type ErrorKind, IpmoveError } from './errors.js'
import { exitOf } from './exit-codes.js'
import { Output, printable } from './output.js'

/** Flags of the commands hooks run (move, release, status, alias add/remove): their log may go to syslog. */
export const hookFlags = {
  syslog: Flags.boolean({ description: 'Also send every line to syslog (daemon facility, tag ipmove).' }),
}

/** The flag of the commands that read ipmove's config file (named IPs, provider settings). */
export const configFlag = {
  config: Flags.string({ description: 'ipmove config file (default: /etc/ipmove/ipmove.conf for root).' }),
}

/**
 * The base of every ipmove command: the shared flags, and the one place where
 * a failure becomes a one-line message and a documented exit code.
 */
export abstract class BaseCommand extends Command {
  /** Flags every command takes; hook-facing ones add hookFlags, cloud-facing ones configFlag too. */
  static override baseFlags = {
    json: Flags.boolean({ description: 'Print one JSON object (and nothing else) on stdout.' }),
    debug: Flags.boolean({
      description: 'Print debug lines on stderr (never secrets).',
      env: 'IPMOVE_DEBUG',
    }),
  }

  private outputInstance: Output | undefined

  protected get output(): Output {
    if (!this.outputInstance) {
      this.outputInstance = new Output({
        json: this.argv.includes('--json'),
        syslog: this.argv.includes('--syslog'),
        debug: this.argv.includes('--debug') || process.env.IPMOVE_DEBUG === '1',
      })
    }
    return this.outputInstance
  }

  protected override async catch(error: Error & { oclif?: { exit?: number } }): Promise<never> {
    // this.exit() throws an oclif ExitError: let it through untouched.
    if (error.oclif?.exit !== undefined && error.message.startsWith('EEXIT')) throw error
    this.exit(reportFailure(error, this.output))
  }
}

/**
 * Report a failure as one line on stderr (and one JSON object with --json);
 * returns its documented exit code. Every failure goes through here, inside a
 * command or not (an unknown command).
 */
export function reportFailure(
  error: Error & { oclif?: { exit?: number } },
  output: Output | { json: boolean },
): number {
  const out =
    output instanceof Output ? output : new Output({ json: output.json, syslog: false, debug: false })
  let kind: ErrorKind
  let message: string
  let details: Record<string, unknown> | undefined
  if (error instanceof IpmoveError) {
    kind = error.kind
    message = error.message
    details = error.details
  } else if (error.oclif?.exit !== undefined) {
    // oclif's own parse errors: unknown flag, missing value, missing required flag…
    kind = 'usage'
    message = oclifParseMessage(error.message)
  } else {
    kind = 'internal'
    message = `internal error: ${error.message} (please report this with --debug output)`
    for (const line of (error.stack ?? '').split('\n')) out.debug(line)
  }
  const { code, exitCode } = exitOf(kind)
  // The same one line for people and for --json: escaped, capped, secrets out.
  message = printable(message)
  out.error(message)
  out.result({ ok: false, error: { code, exitCode, message, ...details } })
  return exitCode
}

/**
 * The errors in an oclif parse error, on one line. Some carry them on the lines
 * after a header ("The following error occurred:\n  Missing required flag
 * interface\nSee more help with --help"): keeping the first line only would
 * leave the header and lose what went wrong.
 */
function oclifParseMessage(text: string): string {
  const errors = text
    .split('\n')
    .map((line) => line.trim())
    .filter(
      (line) => line && !/^The following errors? occurred:$/.test(line) && !line.startsWith('See more help'),
    )
  return errors.join('; ') || 'invalid usage'
}
