/**
 * The registry's provider flags as oclif flags (the CLI edge), and their
 * values back as provider settings: commands need not know which cloud
 * takes which flag.
 */
import { Flags } from '@oclif/core'
import { DEFAULT_PROVIDER, PROVIDER_FLAGS, PROVIDER_NAMES } from '../providers/index.js'
import type { ProviderFlag } from './core/provider.js'

type OclifFlag = ReturnType<typeof Flags.string>

/** --provider, with the registry's names as its choices. */
export const providerChoiceFlag = {
  provider: Flags.string({
    description: `Provider (default: from the config file, else ${DEFAULT_PROVIDER}).`,
    options: [...PROVIDER_NAMES],
  }),
}

/** The flags `move` and `status` take for providers. */
export const providerFlags: Record<string, OclifFlag> = oclifFlags(PROVIDER_FLAGS)

/** Of those, the ones that choose an account or endpoint: the flags `list` takes. */
export const accountFlags: Record<string, OclifFlag> = oclifFlags(
  PROVIDER_FLAGS.filter((flag) => flag.account),
)

function oclifFlags(flags: readonly ProviderFlag[]): Record<string, OclifFlag> {
  return Object.fromEntries(
    flags.map((flag) => [
      flag.key,
      (flag.multiple
        ? Flags.string({
            description: flag.description,
            options: flag.options && [...flag.options],
            multiple: true,
          })
        : Flags.string({
            description: flag.description,
            options: flag.options && [...flag.options],
          })) as OclifFlag,
    ]),
  )
}

/** The given provider flags as settings; absent flags leave the config file's values alone. */
export function providerSettingsFromFlags(flags: Record<string, unknown>): Record<string, string> {
  const settings: Record<string, string> = {}
  for (const { key } of PROVIDER_FLAGS) {
    const value = flags[key]
    if (typeof value === 'string') settings[key] = value
    else if (Array.isArray(value) && value.length > 0) settings[key] = value.join(',')
  }
  return settings
}
