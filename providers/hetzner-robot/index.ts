/** Hetzner Robot as the registry sees it: settings and the cache's account key; the provider loads lazily. */
import type { ProviderDescriptor } from '../../src/core/provider.js'
import { usageError } from '../../src/errors.js'
import { apiBaseUrl } from '../token-settings.js'

export const hetznerRobot: ProviderDescriptor = {
  name: 'hetzner-robot',
  settings: {
    keys: ['user', 'password', 'endpoint'],
    secrets: ['password'],
    check(key, value, where) {
      if (key === 'endpoint') apiBaseUrl(value, where)
      else if (!value) throw usageError(`${where} is empty`)
    },
  },
  // The web-service user names the account; it is no secret.
  accountKey: (env, settings) =>
    [env.HROBOT_URL || settings.endpoint || '', env.HROBOT_USER || settings.user || ''].join('|'),
  async load(context) {
    const { HetznerRobotProvider } = await import('./provider.js')
    return HetznerRobotProvider.create(context)
  },
}
