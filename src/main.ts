import { execute } from '@oclif/core'
import { normalizeArgv } from './argv.js'

/** The CLI's entry, called by bin/run.js with the raw arguments. */
export async function run(argv: readonly string[], binUrl: string): Promise<void> {
  await execute({ args: normalizeArgv(argv), dir: binUrl })
}
