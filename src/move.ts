import { homedir } from 'node:os'
import { DEFAULT_ANNOUNCE } from './alias/announce.js'
import { type AddAliasResult, type Announced, LocalAddress } from './alias/service.js'
import { FileCache, type IdCache, MemoryCache } from './cache.js'
import { loadConfig, resolveTarget } from './config.js'
import { ExitCode, IpmoveError, usageError } from './errors.js'
import { withIpLock } from './lock.js'
import type { Logger } from './output.js'
import {
  checkProviderName,
  describeHolder,
  type Holder,
  type LocateRequest,
  loadProvider,
  type Provider,
  type ProviderName,
} from './provider.js'
import { type Outcome, type ReconcileResult, reconcile } from './reconcile.js'
import { type IpBlock, validateName } from './validate.js'

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

export interface MoveOptions extends TargetOptions {
  wait: boolean
  dryRun: boolean
  /** Pauses between polls; the default suits real APIs, tests shorten it. */
  pollMs?: { first: number; max: number }
}

export interface MoveResult {
  ip: string
  provider: string
  kind: string
  project?: Holder
  from: Holder | null
  to: Holder
  outcome: Outcome
  changed: boolean
  /** What was done on this host's interface, with --interface. */
  alias?: AddAliasResult
  durationMs: number
  /** API requests made, retries included. */
  requests: number
  /** Sequential round trips among them. */
  roundTrips: number
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
export async function prepare(options: TargetOptions, log: Logger): Promise<Prepared> {
  const env = options.env ?? process.env
  const config = loadConfig({ path: options.configPath, env, home: env.HOME || homedir() })
  if (options.ip === undefined && options.ipId === undefined)
    throw usageError("--ip is required (or --ip-id, the provider's id of the IP)")
  if (options.ipId !== undefined) validateName('--ip-id', options.ipId)
  const merged = resolveTarget(config, {
    ip: options.ip,
    provider: options.provider === undefined ? undefined : checkProviderName(options.provider),
    project: options.project,
    instance: options.instance,
    interface: options.interface,
    timeoutMs: options.timeoutMs,
  })
  // resolveTarget validated every value, from flags and config alike.
  const providerName = checkProviderName(merged.provider ?? 'ovh')
  const settings = { ...config.providers[providerName], ...options.providerSettings }
  const cache: IdCache =
    options.cache === false
      ? new MemoryCache()
      : FileCache.forAccount(env, providerName, accountKey(providerName, env, settings), log)
  const provider = await loadProvider(providerName, { env, cache, log, settings })
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

/** What separates one account's cache from another's, without any secret in it. */
function accountKey(
  provider: ProviderName,
  env: NodeJS.ProcessEnv,
  settings: Record<string, string>,
): string {
  const parts =
    provider === 'aws'
      ? [
          settings.endpoint ?? env.AWS_ENDPOINT_URL_EC2,
          settings.region ?? env.AWS_REGION,
          settings.profile ?? env.AWS_PROFILE,
          env.AWS_ACCESS_KEY_ID,
        ]
      : [env.OVH_ENDPOINT ?? settings.endpoint, env.OVH_APPLICATION_KEY ?? env.OVH_CLIENT_ID]
  return parts.map((part) => part ?? '').join('|')
}

/** `ipmove move`: the API's holder becomes the desired one, exactly once, within the timeout. */
export async function moveIp(options: MoveOptions, log: Logger): Promise<MoveResult> {
  const started = Date.now()
  // A dry run reaches the provider too: on AWS it sends every write with EC2's DryRun.
  const dryRun: Record<string, string> = options.dryRun ? { 'dry-run': 'true' } : {}
  const prepared = await prepare(
    { ...options, providerSettings: { ...options.providerSettings, ...dryRun } },
    log,
  )
  const signal = AbortSignal.timeout(prepared.timeoutMs)
  const asked = prepared.ip?.block ?? `the IP with id ${prepared.ipId}`
  try {
    // One move or release of an IP at a time on this host; the wait counts toward --timeout.
    return await withIpLock(asked, { env: options.env ?? process.env, signal, log }, () =>
      moveLocked(prepared, options, log, { started, signal, asked }),
    )
  } finally {
    prepared.provider.close()
  }
}

/** The move itself, under this host's lock on the IP. */
async function moveLocked(
  prepared: Prepared,
  options: MoveOptions,
  log: Logger,
  { started, signal, asked }: { started: number; signal: AbortSignal; asked: string },
): Promise<MoveResult> {
  const { provider } = prepared
  const request: LocateRequest = {
    ip: prepared.ip,
    ipId: prepared.ipId,
    project: prepared.project,
    instance: prepared.instance,
    interface: prepared.interface,
    needTarget: true,
  }
  provider.check?.(request)
  // Check the local side (interface, driver, arping) before the cloud is touched.
  const early = prepared.ip ? await localAddress(prepared, prepared.ip, options) : undefined
  const located = await provider.locate(request, signal).catch((error: unknown) => {
    if (signal.aborted && !(error instanceof IpmoveError && error.exitCode === ExitCode.TIMEOUT)) {
      throw new IpmoveError(ExitCode.TIMEOUT, `timed out looking up ${asked}: ${(error as Error).message}`)
    }
    throw error
  })
  const { ip, target } = located
  if (!target) throw new Error('provider located no target')
  let local = early ?? (await localAddress(prepared, ip, options))
  if (local && located.hostCarries === false) {
    log.info(
      `not adding ${ip.block} to ${local.iface}: ${provider.name} maps it onto an address this host already has`,
    )
    local = undefined
  }
  const where = located.scope ? `, project ${describeHolder(located.scope)}` : ''
  log.info(
    `${ip.block} (${provider.name} ${located.kind}${where}) is on ${describeHolder(located.state.holder)}`,
  )

  // The address goes on the interface while the API routes it (OVH answers as
  // soon as routing completes); the LAN hears of it once the API says done.
  const adding = local?.add()
  adding?.catch(() => {}) // awaited below
  let result: ReconcileResult
  try {
    result = await reconcile(
      provider,
      located,
      { target, wait: options.wait, dryRun: options.dryRun, signal, pollMs: options.pollMs },
      log,
    )
  } catch (error) {
    await rollback(local, adding, log)
    throw error
  }
  const alias = local && adding ? await finishLocal(provider, local, adding, result, log) : undefined
  const durationMs = Date.now() - started
  log.info(summary(ip.block, result.outcome, result.from, target, durationMs))
  return {
    ip: ip.block,
    provider: provider.name,
    kind: located.kind,
    project: located.scope,
    from: result.from,
    to: target,
    outcome: result.outcome,
    changed: result.writes > 0,
    ...(alias ? { alias } : {}),
    durationMs,
    requests: provider.requests,
    roundTrips: provider.roundTrips,
  }
}

/** The local address to configure, when an interface was given and this is no dry run. */
async function localAddress(
  prepared: Prepared,
  ip: IpBlock,
  options: MoveOptions,
): Promise<LocalAddress | undefined> {
  if (!prepared.interface || options.dryRun) return undefined
  return LocalAddress.prepare({
    ip,
    interface: prepared.interface,
    label: prepared.label,
    announce: DEFAULT_ANNOUNCE,
    nodad: prepared.provider.probesLink,
  })
}

/** The cloud move failed: take back an address we added, so nothing is half-done. */
async function rollback(local: LocalAddress | undefined, adding: Promise<boolean> | undefined, log: Logger) {
  if (!local || !adding) return
  const added = await adding.catch(() => false)
  if (!added) return
  await local.remove().then(
    () => log.info(`removed ${local.ip.block} from ${local.iface} again, since the move failed`),
    (error: Error) =>
      log.warn(`could not remove ${local.ip.block} from ${local.iface} again: ${error.message}`),
  )
}

/** The API is done: the address must be on the interface, then announced. A failure here is exit 7. */
async function finishLocal(
  provider: Provider,
  local: LocalAddress,
  adding: Promise<boolean>,
  result: ReconcileResult,
  log: Logger,
): Promise<AddAliasResult> {
  try {
    const changed = await adding
    const announced = await local.announce()
    const alias = local.describe(changed, announced)
    log.info(
      `${alias.ip} ${changed ? 'added to' : 'already on'} ${alias.interface}${announcedText(announced)}`,
    )
    return alias
  } catch (error) {
    const cloud =
      provider.name === 'local'
        ? 'no cloud API was involved'
        : result.outcome === 'accepted'
          ? `${provider.name} accepted the move to ${describeHolder(result.to)}`
          : `${provider.name} now routes it to ${describeHolder(result.to)}`
    if (error instanceof IpmoveError && error.exitCode === ExitCode.LOCAL) {
      throw new IpmoveError(ExitCode.LOCAL, `${error.message} (${cloud})`, {
        ...error.details,
        cloud: result.outcome,
      })
    }
    throw error
  }
}

function announcedText(announced: Announced): string {
  if (!announced) return ''
  if ('skipped' in announced) return ` (not announced: ${announced.skipped})`
  return `, announced ${announced.count}× with ${announced.tool}`
}

function summary(ip: string, outcome: Outcome, from: Holder | null, to: Holder, ms: number): string {
  const seconds = `${(ms / 1000).toFixed(1)} s`
  switch (outcome) {
    case 'in-place':
      return `${ip} is already on ${describeHolder(to)}: nothing to do (${seconds})`
    case 'moved':
      return `${ip} moved from ${describeHolder(from)} to ${describeHolder(to)} in ${seconds}`
    case 'accepted':
      return `${ip}: move to ${describeHolder(to)} accepted; not waiting (--no-wait) (${seconds})`
    case 'would-move':
      return `dry run: would move ${ip} from ${describeHolder(from)} to ${describeHolder(to)}; nothing written`
  }
}
