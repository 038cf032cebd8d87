/**
 * Settings helpers for the bearer-token clouds (Hetzner Cloud, DigitalOcean, Scaleway),
 * kept apart from http.ts so that the registry's descriptors load nothing of
 * the HTTP stack.
 */
import { createHash } from 'node:crypto'
import type { ProviderSettingsSchema } from '../src/core/provider.js'
import { usageError } from '../src/errors.js'
import { shown } from '../src/validate.js'

/**
 * An API base URL from a setting or the environment: https://, or http:// on
 * loopback only (emulators), and no credentials, query or fragment in it.
 */
export function apiBaseUrl(value: string, where: string): URL {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw usageError(`${where} ${shown(value)} is not a URL`)
  }
  const loopback = /^(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])$/.test(url.hostname)
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback))
    throw usageError(`${where} ${shown(value)} must be https:// (http:// only on loopback, for emulators)`)
  if (url.username || url.password || url.search || url.hash)
    throw usageError(`${where} ${shown(value)} must not carry credentials, a query or a fragment`)
  return url
}

/**
 * A cache account key for a bearer-token API: the endpoint and a digest of the
 * token (which names the project or account), never the token itself.
 */
export function tokenAccountKey(endpoint: string, token: string): string {
  const digest = token ? createHash('sha256').update(token).digest('hex').slice(0, 16) : ''
  return `${endpoint}|${digest}`
}

/** The config section of a cloud known by a token alone: `token=` (a secret) and `endpoint=`. */
export const TOKEN_SETTINGS: ProviderSettingsSchema = {
  keys: ['token', 'endpoint'],
  secrets: ['token'],
  check(key, value, where) {
    if (key === 'endpoint') apiBaseUrl(value, where)
    else if (!value) throw usageError(`${where} is empty`)
  },
}
