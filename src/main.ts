import { Config, Errors, flush, type Interfaces, run as oclifRun } from '@oclif/core'
import { normalizeArgv } from './argv.js'
import { reportFailure } from './command.js'
import { IpmoveError } from './errors.js'

/**
 * The CLI's entry, called with the raw arguments by bin/run.js (with its URL: oclif reads
 * package.json and the manifest beside it) or by the single file (with them in memory).
 * Help and failures outside any command (an unknown command) are ipmove's own: the same
 * one-line `ipmove: error:` and exit codes as a command's failures.
 */
export async function run(argv: readonly string[], from: string | Interfaces.LoadOptions): Promise<void> {
  const args = normalizeArgv(argv)
  try {
    if (isHelpRequest(args)) await showHelp(args, from)
    else await oclifRun(args, from)
    await flush()
  } catch (error) {
    // A command's own failure was reported by BaseCommand, which then exits through oclif:
    // at once, as oclif does, not once lingering sockets and timers let the process end.
    if (error instanceof Errors.ExitError) return Errors.handle(error)
    const notFound = error instanceof Error && /^command (\S+) not found\.?$/i.exec(error.message)
    const failure =
      error instanceof IpmoveError
        ? error
        : notFound
          ? (await import('./help.js')).unknownCommand(
              await Config.load(from),
              notFound[1]!.replaceAll(':', ' '),
            )
          : error
    process.exit(reportFailure(failure as Error, { json: args.includes('--json') }))
  }
}

/** `--help` or `-h` anywhere before `--`, or no arguments at all. */
function isHelpRequest(args: readonly string[]): boolean {
  if (args.length === 0) return true
  for (const arg of args) {
    if (arg === '--') return false
    if (arg === '--help' || arg === '-h') return true
  }
  return false
}

async function showHelp(args: string[], from: string | Interfaces.LoadOptions): Promise<void> {
  const [{ IpmoveHelp }, config] = await Promise.all([import('./help.js'), Config.load(from)])
  await new IpmoveHelp(config).showHelp(args)
}
