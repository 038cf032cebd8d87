/** Hetzner Cloud as the registry sees it: settings and the cache's account key; the provider loads lazily. */
import type { ProviderDescriptor } from '../../src/core/provider.js'
import { TOKEN_SETTINGS, tokenAccountKey } from '../token-settings.js'

export const hetzner: ProviderDescriptor = {
  name: 'hetzner',
  settings: TOKEN_SETTINGS,
  // A token belongs to one project: a digest of the token (never the token) separates the caches.
  accountKey: (env, settings) =>
    tokenAccountKey(env.HCLOUD_ENDPOINT || settings.endpoint || '', env.HCLOUD_TOKEN || settings.token || ''),
  async load(context) {
    const { HetznerProvider } = await import('./provider.js')
    return HetznerProvider.create(context)
  },
}
