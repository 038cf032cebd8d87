/** The LAN-only provider as the registry sees it: one setting, no account, nothing to cache. */
import { parseProbeTimeout } from '../../src/alias/probe.js'
import type { ProviderDescriptor } from '../../src/core/provider.js'

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
