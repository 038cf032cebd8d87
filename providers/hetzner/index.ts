/** Hetzner Cloud as the registry sees it: settings and the cache's account key; the provider loads lazily. */
import { createHash } from 'node:crypto'
import type { ProviderDescriptor } from '../../src/core/provider.js'
import { usageError } from '../../src/errors.js'
import { apiBaseUrl } from '../http.js'

export const hetzner: ProviderDescriptor = {
  name: 'hetzner',
  settings: {
    keys: ['token', 'endpoint'],
    secrets: ['token'],
    check(key, value, where) {
      if (key === 'endpoint') apiBaseUrl(value, where)
      else if (!value) throw usageError(`${where} is empty`)
    },
  },
  // A token belongs to one project: its digest (never the token) separates the caches.
  accountKey: (env, settings) => {
    const token = env.HCLOUD_TOKEN || settings.token || ''
    const digest = token ? createHash('sha256').update(token).digest('hex').slice(0, 16) : ''
    return [env.HCLOUD_ENDPOINT || settings.endpoint || '', digest].join('|')
  },
  async load(context) {
    const { HetznerProvider } = await import('./provider.js')
    return HetznerProvider.create(context)
  },
}
