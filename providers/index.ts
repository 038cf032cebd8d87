/**
 * The registry: the only list of provider names. A new cloud is one folder
 * under providers/ with an index.ts exporting its descriptor, plus one line
 * here. Descriptors are light; each loads its provider lazily.
 */
import type { ProviderDescriptor, ProviderFlag } from '../src/core/provider.js'
import { usageError } from '../src/errors.js'
import { aws } from './aws/index.js'
import { digitalocean } from './digitalocean/index.js'
import { hetzner } from './hetzner/index.js'
import { hetznerRobot } from './hetzner-robot/index.js'
import { local } from './local/index.js'
import { ovh } from './ovh/index.js'
import { scaleway } from './scaleway/index.js'

/** In the order messages list them; the first is the default. */
export const PROVIDERS: readonly ProviderDescriptor[] = [
  ovh,
  aws,
  hetzner,
  hetznerRobot,
  digitalocean,
  scaleway,
  local,
]

export const PROVIDER_NAMES: readonly string[] = PROVIDERS.map((p) => p.name)

/** The provider used when neither a flag nor the config file names one. */
export const DEFAULT_PROVIDER = PROVIDERS[0]!.name

/** The descriptor of a provider name from a flag or the config file; unknown names are usage errors. */
export function providerNamed(name: string): ProviderDescriptor {
  const found = PROVIDERS.find((p) => p.name === name)
  if (!found) {
    throw usageError(`unknown provider ${JSON.stringify(name)} (known: ${PROVIDER_NAMES.join(', ')})`)
  }
  return found
}

/** Every provider's flags for `move` and `status`, once each (two providers may share one). */
export const PROVIDER_FLAGS: readonly ProviderFlag[] = PROVIDERS.flatMap((p) => p.flags ?? []).filter(
  (flag, i, all) => all.findIndex((f) => f.key === flag.key) === i,
)
