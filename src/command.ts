import { Command, Flags } from '@oclif/core'
import { ExitCode, exitCodeName, IpmoveError } from './errors.js'
import { Output, printable } from './output.js'

/**
 * The base of every ipmove command: the shared flags, and the one place where
 * a failure becomes a one-line message and a documented exit code.
 */
export abstract class BaseCommand extends Command {
  static override baseFlags = {
    json: Flags.boolean({ description: 'Print one JSON object (and nothing else) on stdout.' }),
    config: Flags.string({ description: 'ipmove config file (default: /etc/ipmove/ipmove.conf for root).' }),
    syslog: Flags.boolean({ description: 'Also send every line to syslog (daemon facility, tag ipmove).' }),
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

  protected override async catch(
    error: Error & { exitCode?: number; oclif?: { exit?: number } },
  ): Promise<never> {
    // this.exit() throws an oclif ExitError: let it through untouched.
    if (error.oclif?.exit !== undefined && error.message.startsWith('EEXIT')) throw error
    let exitCode: number
    let message: string
    let details: Record<string, unknown> | undefined
    if (error instanceof IpmoveError) {
      exitCode = error.exitCode
      message = error.message
      details = error.details
    } else if (error.oclif?.exit !== undefined) {
      // oclif's own parse errors: unknown flag, missing value…
      exitCode = ExitCode.USAGE
      message = error.message.split('\n')[0] ?? 'invalid usage'
    } else {
      exitCode = ExitCode.INTERNAL
      message = `internal error: ${error.message} (please report this with --debug output)`
      for (const line of (error.stack ?? '').split('\n')) this.output.debug(line)
    }
    // The same one line for people and for --json: escaped, capped, secrets out.
    message = printable(message)
    this.output.error(message)
    this.output.result({ ok: false, error: { code: exitCodeName(exitCode), exitCode, message, ...details } })
    this.exit(exitCode)
  }
}
