/** The LAN-only provider as the registry sees it: one setting, no account, nothing to cache. */

import type { ProviderDescriptor } from '../../src/core/provider.js'
import { parseProbeTimeout } from './settings.js'

export const local: ProviderDescriptor = {
  name: 'local',
  settings: {
    keys: ['probe-timeout'],
    secrets: [],
    check: (_key, value, where) => parseProbeTimeout(value, where),
  },
  accountKey: () => '',
  async load(context) {
    const { LocalProvider } = await import('./provider.js')
    return LocalProvider.create(context)
  },
}
