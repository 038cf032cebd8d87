/** DigitalOcean as the registry sees it: settings and the cache's account key; the provider loads lazily. */
import type { ProviderDescriptor } from '../../src/core/provider.js'
import { TOKEN_SETTINGS, tokenAccountKey } from '../token-settings.js'

export const digitalocean: ProviderDescriptor = {
  name: 'digitalocean',
  settings: TOKEN_SETTINGS,
  // Droplet ids are per account: a digest of the token (never the token) separates the caches.
  accountKey: (env, settings) =>
    tokenAccountKey(
      env.DIGITALOCEAN_API_URL || settings.endpoint || '',
      env.DIGITALOCEAN_ACCESS_TOKEN || settings.token || '',
    ),
  async load(context) {
    const { DigitalOceanProvider } = await import('./provider.js')
    return DigitalOceanProvider.create(context)
  },
}
