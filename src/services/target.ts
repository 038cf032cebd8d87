/**
 * What `move` and `status` share before the first API call: flags merged over
 * the config file, every value validated, and the provider loaded, so that
 * bad input exits 2 having touched nothing.
 */
import { homedir } from 'node:os'
import { DEFAULT_PROVIDER, providerNamed } from '../../providers/index.js'
import { FileCache, type IdCache, MemoryCache } from '../cache.js'
import { loadConfig, resolveTarget } from '../config.js'
import type { Provider } from '../core/provider.js'
import { usageError } from '../errors.js'
import type { Logger } from '../output.js'
import { type IpBlock, validateName } from '../validate.js'

export const DEFAULT_TIMEOUT_MS = 120_000

/** What `move` and `status` are asked, as plain values (no flags here). */
export interface TargetOptions {
  /** An address, a block, or the name of an `[ip.NAME]` config entry. */
  ip?: string
  /** The provider's id of the IP, as ipmoveOvh's -ip-id; needs no --ip. */
  ipId?: string
  instance?: string
  project?: string
  provider?: string
  interface?: string
  timeoutMs?: number
  configPath?: string
  /** Use the on-disk id cache (default true). */
  cache?: boolean
  /** Provider-specific settings from flags (e.g. AWS mode, region); they override the config file's section. */
  providerSettings?: Record<string, string>
  env?: NodeJS.ProcessEnv
}

/** Everything a command needs once config, flags and validation are merged. */
export interface Prepared {
  ip?: IpBlock
  ipId?: string
  provider: Provider
  project?: string
  instance?: string
  interface?: string
  label?: string
  timeoutMs: number
}

/**
 * Merge flags over the config file, validate every value, and load the
 * provider: all of it before the first API call, so bad input exits 2 having
 * touched nothing.
 */
export async function prepare(
  options: TargetOptions,
  log: Logger,
  /** False for `list`, which takes no IP. */
  needIp = true,
): Promise<Prepared> {
  const env = options.env ?? process.env
  const config = loadConfig({ path: options.configPath, env, home: env.HOME || homedir() })
  if (needIp && options.ip === undefined && options.ipId === undefined)
    throw usageError("--ip is required (or --ip-id, the provider's id of the IP)")
  if (options.ipId !== undefined) validateName('--ip-id', options.ipId)
  const merged = resolveTarget(config, {
    ip: options.ip,
    provider: options.provider === undefined ? undefined : providerNamed(options.provider).name,
    project: options.project,
    instance: options.instance,
    interface: options.interface,
    timeoutMs: options.timeoutMs,
  })
  // resolveTarget validated every value, from flags and config alike.
  const descriptor = providerNamed(merged.provider ?? DEFAULT_PROVIDER)
  const settings = { ...config.providers[descriptor.name], ...options.providerSettings }
  const cache: IdCache =
    options.cache === false
      ? new MemoryCache()
      : FileCache.forAccount(env, descriptor.name, descriptor.accountKey(env, settings), log)
  const provider = await descriptor.load({ env, cache, log, settings })
  return {
    ip: merged.ip,
    ipId: options.ipId,
    provider,
    project: merged.project,
    instance: merged.instance,
    interface: merged.interface,
    label: merged.label,
    timeoutMs: merged.timeoutMs ?? DEFAULT_TIMEOUT_MS,
  }
}
