/**
 * OVH's endpoints and credential keys: what the config file and the registry
 * need to know about OVH without loading the credentials chain.
 */
import { usageError } from '../../src/errors.js'
import { shown } from '../../src/validate.js'

/** API base URLs by endpoint name, as in go-ovh and python-ovh. */
export const OVH_ENDPOINTS: Readonly<Record<string, string>> = {
  'ovh-eu': 'https://eu.api.ovh.com/1.0',
  'ovh-ca': 'https://ca.api.ovh.com/1.0',
  'ovh-us': 'https://api.us.ovhcloud.com/1.0',
  'kimsufi-eu': 'https://eu.api.kimsufi.com/1.0',
  'kimsufi-ca': 'https://ca.api.kimsufi.com/1.0',
  'soyoustart-eu': 'https://eu.api.soyoustart.com/1.0',
  'soyoustart-ca': 'https://ca.api.soyoustart.com/1.0',
}

/** OAuth2 token URLs (go-ovh, python-ovh); Kimsufi and So you Start have none. */
const OAUTH2_TOKEN_URLS: Readonly<Record<string, string>> = {
  'ovh-eu': 'https://www.ovh.com/auth/oauth2/token',
  'ovh-ca': 'https://ca.ovh.com/auth/oauth2/token',
  'ovh-us': 'https://us.ovhcloud.com/auth/oauth2/token',
}

/** go-ovh's default when no endpoint is configured anywhere. */
export const DEFAULT_OVH_ENDPOINT = 'ovh-eu'

export type OvhCredentialKey =
  | 'applicationKey'
  | 'applicationSecret'
  | 'consumerKey'
  | 'clientId'
  | 'clientSecret'

export type Method = 'application' | 'oauth2'

export interface KeySpec {
  key: OvhCredentialKey
  /** The name in ovh.conf, ipmove.conf, the keyring entry and `credentials set` input. */
  file: string
  env: string
  secret: boolean
  method: Method
}

export const KEYS: readonly KeySpec[] = [
  {
    key: 'applicationKey',
    file: 'application_key',
    env: 'OVH_APPLICATION_KEY',
    secret: false,
    method: 'application',
  },
  {
    key: 'applicationSecret',
    file: 'application_secret',
    env: 'OVH_APPLICATION_SECRET',
    secret: true,
    method: 'application',
  },
  { key: 'consumerKey', file: 'consumer_key', env: 'OVH_CONSUMER_KEY', secret: true, method: 'application' },
  { key: 'clientId', file: 'client_id', env: 'OVH_CLIENT_ID', secret: false, method: 'oauth2' },
  { key: 'clientSecret', file: 'client_secret', env: 'OVH_CLIENT_SECRET', secret: true, method: 'oauth2' },
]

/** Keys allowed in ipmove.conf's `[ovh]` section (and in `credentials set` input). */
export const OVH_SETTING_KEYS: readonly string[] = ['endpoint', ...KEYS.map((k) => k.file)]
/** Of those, the ones whose presence makes a file secret. */
export const OVH_SECRET_KEYS: readonly string[] = KEYS.filter((k) => k.secret).map((k) => k.file)

export interface OvhEndpoint {
  /** The name or URL as configured; ovh.conf sections are named after it. */
  endpointName: string
  baseUrl: string
  /** Undefined where OVH offers no OAuth2 (Kimsufi, So you Start). */
  tokenUrl?: string
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/

/**
 * A known endpoint name, or a URL (go-ovh takes any value with a '/' as one).
 * Plain http:// is accepted for loopback only, so emulators and tests work but
 * signed requests and OAuth2 secrets never cross a network in clear text.
 */
export function parseOvhEndpoint(value: string, what = 'OVH endpoint'): OvhEndpoint {
  const name = value.trim()
  // hasOwn: a name such as __proto__ must not find Object.prototype.
  if (Object.hasOwn(OVH_ENDPOINTS, name)) {
    return { endpointName: name, baseUrl: OVH_ENDPOINTS[name]!, tokenUrl: OAUTH2_TOKEN_URLS[name] }
  }
  if (!name.includes('/')) {
    throw usageError(
      `${what} ${shown(name)} is unknown (known: ${Object.keys(OVH_ENDPOINTS).join(', ')}, or an https:// URL)`,
    )
  }
  let url: URL
  try {
    url = new URL(name)
  } catch {
    throw usageError(`${what} ${shown(name)} is not a valid URL`)
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK.test(url.hostname))) {
    throw usageError(
      `${what} ${shown(name)} must be an https:// URL (http:// only on loopback, for emulators)`,
    )
  }
  if (url.username || url.password || url.search || url.hash) {
    throw usageError(`${what} ${shown(name)} must not carry credentials, a query or a fragment`)
  }
  const baseUrl = url.href.replace(/\/+$/, '')
  const known = Object.entries(OVH_ENDPOINTS).find(([, b]) => b === baseUrl)?.[0]
  const tokenUrl = known ? OAUTH2_TOKEN_URLS[known] : `${url.origin}/auth/oauth2/token`
  return { endpointName: name, baseUrl, tokenUrl }
}
