/** OVHcloud as the registry sees it: settings, the keyring store and the cache's account key, all light. */
import type { ProviderDescriptor } from '../../src/core/provider.js'
import { usageError } from '../../src/errors.js'
import { refuseUncheckedTls } from '../tls.js'
import { OVH_SECRET_KEYS, OVH_SETTING_KEYS, parseOvhEndpoint } from './endpoints.js'

export const ovh: ProviderDescriptor = {
  name: 'ovh',
  settings: {
    keys: OVH_SETTING_KEYS,
    secrets: OVH_SECRET_KEYS,
    check(key, value, where) {
      if (key === 'endpoint') parseOvhEndpoint(value, where)
      else if (!value) throw usageError(`${where} is empty`)
    },
  },
  accountKey: (env, settings) =>
    [env.OVH_ENDPOINT ?? settings.endpoint, env.OVH_APPLICATION_KEY ?? env.OVH_CLIENT_ID]
      .map((part) => part ?? '')
      .join('|'),
  async load(context) {
    refuseUncheckedTls()
    const { OvhProvider } = await import('./provider.js')
    return OvhProvider.create(context)
  },
  // The credentials chain loads only for `credentials set|delete`.
  credentials: {
    title: 'OVH',
    // resolveOvhCredentials follows it; the README and `credentials set --help` quote it (a test checks both).
    order:
      "the OVH_* environment variables, then the [ovh] section of ipmove's config file, then ./ovh.conf, ~/.ovh.conf and /etc/ovh.conf, then the OS keyring (only when none of the others holds any credential)",
    set: async (options) => (await import('./credentials.js')).setOvhCredentials(options),
    delete: async (keyring) => (await import('./credentials.js')).deleteOvhCredentials(keyring),
  },
  limitedKey: {
    request: async (request) => (await import('./consumer-key.js')).requestConsumerKey(request),
  },
}
