/**
 * The keys of `source = etcd` in `[watch.NAME]`, read and checked when the
 * config is (no etcd client loaded: this file is on every command's path).
 * The source itself is ./etcd.ts.
 *
 *   etcd-endpoints     = https://10.0.0.1:2379,https://10.0.0.2:2379   (required; all https or all http)
 *   etcd-ca            = /etc/ipmove/etcd-ca.pem      the CA that signed the members (default: the system's)
 *   etcd-cert          = /etc/ipmove/etcd-client.pem  this node's client certificate, with
 *   etcd-key           = /etc/ipmove/etcd-client.key  its private key (both or neither)
 *   etcd-election      = ipmove/NAME                  one election per IP; keys: election/<this>/<lease id>
 *   etcd-name          = this host's name             how this node shows as the holder
 *   etcd-ttl           = 10                           the lease's TTL, whole seconds
 *   etcd-renew-margin  = 2                            the leader stops holding this long before its lease can expire
 *   etcd-unreachable   = hold | release               while etcd does not answer, within the lease
 *   etcd-health        = ["pg_isready", "-q"]         besides the link: a command that must exit 0 to campaign
 *
 * and the IP's own priority, preempt and preempt-delay, which keep their meaning: with preempt, a node
 * of higher priority takes the lease back once it has campaigned for preempt-delay.
 */
import { accessSync, constants } from 'node:fs'
import { hostname } from 'node:os'
import { usageError } from '../../errors.js'
import { shown, validateName } from '../../validate.js'
import type { SectionReader } from '../section.js'

export interface EtcdSettings {
  /** https://HOST:2379 or http://HOST:2379 (one scheme for all). */
  endpoints: readonly string[]
  /** PEM files: the CA that signed the members, and this node's client certificate and key ('' when not set). */
  ca: string
  cert: string
  key: string
  /** The election's name: candidates' keys are `election/<name>/<lease id>` (one election per IP). */
  election: string
  /** This node, as the other candidates and `ipmove status` see it. */
  identity: string
  /** The lease's time to live, in whole seconds (etcd's unit). */
  ttlS: number
  /** The leader stops holding this long before its lease can expire anywhere. */
  renewMarginMs: number
  /** What the leader does while etcd does not answer, within its lease. */
  unreachable: 'hold' | 'release'
  /** A command that must exit 0 (besides the interface's link being up) for this node to campaign; [] for none. */
  health: readonly string[]
  /** `[watch.NAME]`'s priority, preempt and preempt-delay: a higher priority takes the lease back. */
  priority: number
  preempt: boolean
  preemptDelayMs: number
}

export const ETCD_KEYS = [
  'etcd-endpoints',
  'etcd-ca',
  'etcd-cert',
  'etcd-key',
  'etcd-election',
  'etcd-name',
  'etcd-ttl',
  'etcd-renew-margin',
  'etcd-unreachable',
  'etcd-health',
] as const

export const ETCD_DEFAULTS = { ttlS: 10, renewMarginMs: 2000 } as const
export const LEASE_TTL_MAX_S = 3600

/** Throws a usage error (no place: the caller adds it) when the timings or endpoints cannot work. */
export function checkEtcdSettings(s: Pick<EtcdSettings, 'ttlS' | 'renewMarginMs' | 'endpoints'>): void {
  if (!Number.isInteger(s.ttlS) || s.ttlS < 1 || s.ttlS > LEASE_TTL_MAX_S) {
    throw usageError(`the lease TTL must be a whole number of seconds from 1 to ${LEASE_TTL_MAX_S}`)
  }
  if (s.renewMarginMs * 2 > s.ttlS * 1000) {
    throw usageError(
      `the renew margin must be at most half the lease TTL (${s.ttlS * 500} ms), got ${s.renewMarginMs} ms`,
    )
  }
  if (s.endpoints.length === 0) throw usageError('etcd needs at least one endpoint')
  const schemes = new Set(s.endpoints.map((e) => /^(https?):\/\/[^/\s]+$/.exec(e)?.[1]))
  if (schemes.has(undefined)) {
    throw usageError('expected etcd endpoints as https://HOST:PORT or http://HOST:PORT, separated by commas')
  }
  if (schemes.size > 1) throw usageError('etcd endpoints must all be https:// or all http://')
}

/** How often the leader renews: three tries before the fence, as etcd's own Go client does within a TTL. */
export function renewEveryMs(s: Pick<EtcdSettings, 'ttlS' | 'renewMarginMs'>): number {
  return (s.ttlS * 1000 - s.renewMarginMs) / 3
}

/** `[watch.NAME]`'s etcd keys. */
export function parseEtcdSettings(r: SectionReader): EtcdSettings {
  const name = r.section.replace(/^watch\./, '')
  const endpoints = r
    .need('etcd-endpoints', 'https://HOST:2379,… (the etcd cluster)')
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)
  // Read now, so that `ipmove watch --check` and a reload refuse a file the daemon could not read.
  const file = (key: string) => {
    const path = r.get(key) ?? ''
    if (path) {
      try {
        accessSync(path, constants.R_OK)
      } catch (error) {
        throw r.fail(key, `cannot read ${shown(path)} (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
      }
    }
    return path
  }
  const settings: EtcdSettings = {
    endpoints,
    ca: file('etcd-ca'),
    cert: file('etcd-cert'),
    key: file('etcd-key'),
    election: r.get('etcd-election') ?? `ipmove/${name}`,
    identity: r.get('etcd-name') ?? hostname(),
    ttlS: r.integer('etcd-ttl', 1, LEASE_TTL_MAX_S, ETCD_DEFAULTS.ttlS),
    renewMarginMs: r.seconds('etcd-renew-margin', ETCD_DEFAULTS.renewMarginMs),
    unreachable: r.oneOf('etcd-unreachable', ['hold', 'release'] as const, 'hold'),
    health: r.get('etcd-health') === undefined ? [] : r.argv('etcd-health'),
    // The IP's own keys (src/watch/config.ts reads them too, with these defaults).
    priority: r.integer('priority', 1, 255, 100),
    preempt: r.flag('preempt', false),
    preemptDelayMs: r.seconds('preempt-delay', 5000),
  }
  r.wrap(undefined, () => checkEtcdSettings(settings))
  if (Boolean(settings.cert) !== Boolean(settings.key)) {
    throw r.fail(settings.cert ? 'etcd-cert' : 'etcd-key', 'etcd-cert and etcd-key go together')
  }
  if (!/^[\w./-]{1,200}$/.test(settings.election)) {
    throw r.fail('etcd-election', 'expected letters, digits and . _ / - (up to 200)')
  }
  r.wrap('etcd-name', () => validateName('the name', settings.identity))
  return settings
}
