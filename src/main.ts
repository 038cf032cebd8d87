import { execute, type Interfaces } from '@oclif/core'
import { normalizeArgv } from './argv.js'

/**
 * The CLI's entry, called with the raw arguments by bin/run.js (with its URL: oclif reads
 * package.json and the manifest beside it) or by the single file (with them in memory).
 */
export async function run(argv: readonly string[], from: string | Interfaces.LoadOptions): Promise<void> {
  await execute({ args: normalizeArgv(argv), loadOptions: from })
}
