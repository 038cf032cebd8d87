/** Scaleway as the registry sees it: settings and the cache's account key; the provider loads lazily. */
import type { ProviderDescriptor } from '../../src/core/provider.js'
import { usageError } from '../../src/errors.js'
import { apiBaseUrl, tokenAccountKey } from '../token-settings.js'
import { SCALEWAY_ZONE } from './zone.js'

export const scaleway: ProviderDescriptor = {
  name: 'scaleway',
  settings: {
    keys: ['secret-key', 'zone', 'endpoint'],
    secrets: ['secret-key'],
    check(key, value, where) {
      if (key === 'endpoint') apiBaseUrl(value, where)
      else if (key === 'zone' && !SCALEWAY_ZONE.test(value))
        throw usageError(`${where} ${JSON.stringify(value)} is not a Scaleway zone (fr-par-1…)`)
      else if (!value) throw usageError(`${where} is empty`)
    },
  },
  // Resource ids are per project: a digest of the secret key (never the key) separates the caches.
  accountKey: (env, settings) =>
    tokenAccountKey(
      env.SCW_API_URL || settings.endpoint || '',
      env.SCW_SECRET_KEY || settings['secret-key'] || '',
    ),
  async load(context) {
    const { ScalewayProvider } = await import('./provider.js')
    return ScalewayProvider.create(context)
  },
}
