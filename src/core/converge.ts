/**
 * Make the world match a decision about who holds the IP. `move`, `release`,
 * `status` and the coming `ipmove watch` share this module:
 * - claim: the API routes the IP here (reconcile), while the address goes on
 *   this host's interface; what we added is taken back on failure; the LAN
 *   hears of the new holder once the API is done;
 * - yield: drop the address from this host, announce nothing, never touch the API.
 * Everything comes in through a plain options object and a provider handle;
 * nothing is kept between calls, so a long-running process may claim and
 * yield again and again. The API side is bounded by the caller's signal.
 */
import { type AnnounceSettings, DEFAULT_ANNOUNCE } from '../alias/announce.js'
import type { AddressDriver } from '../alias/driver.js'
import {
  type AddAliasResult,
  type AliasResult,
  type AliasTarget,
  type Announced,
  LocalAddress,
  removeAlias,
  showAliases,
} from '../alias/service.js'
import { IpmoveError, isKind } from '../errors.js'
import type { Logger } from '../output.js'
import type { IpBlock } from '../validate.js'
import {
  describeHolder,
  type Located,
  type LocatedIp,
  type LocateRequest,
  type Provider,
} from './provider.js'
import { type ReconcileResult, reconcile, StoodDown } from './reconcile.js'

/** The address on this host's side of a claim. */
export interface CarryOptions {
  interface: string
  /** Linux IPv4 label suffix: the address is labelled `INTERFACE:LABEL`. */
  label?: string
  /** Default: DEFAULT_ANNOUNCE. */
  announce?: AnnounceSettings | false
  /** The platform's driver by default; tests and embedders may bring their own. */
  driver?: AddressDriver
}

export interface ClaimOptions {
  /** What the provider is to find; the desired holder is `find.instance`, or this host. */
  find: Omit<LocateRequest, 'needTarget' | 'interface'>
  /** Also carry the address on this host's interface and announce it. */
  carry?: CarryOptions
  /** Return right after the API accepted the write. */
  wait: boolean
  /** Resolve and read, never write (nor touch the interface). */
  dryRun: boolean
  /** Bounds every API wait and request (the command's --timeout). */
  signal: AbortSignal
  /** Pauses between polls; the default suits real APIs, tests shorten them. */
  pollMs?: { first: number; max: number }
  /** A newer call wants something else: stop now (reconcile's StoodDown; the address is taken back). */
  stop?: AbortSignal
  log: Logger
}

export interface ClaimResult extends ReconcileResult {
  located: Located
  /** What was done on this host's interface, when an address was carried. */
  alias?: AddAliasResult
}

/** Claim the IP for the desired holder: the API first in line, the interface alongside. */
export async function claim(provider: Provider, options: ClaimOptions): Promise<ClaimResult> {
  const { signal, log, carry } = options
  const asked = options.find.ip?.block ?? `the IP with id ${options.find.ipId}`
  const request: LocateRequest = { ...options.find, interface: carry?.interface, needTarget: true }
  provider.check?.(request)
  // Check the local side (interface, driver, arping) before the cloud is touched.
  const early = options.find.ip ? await carried(provider, options.find.ip, options) : undefined
  const located = await locateOrStand(provider, request, options, asked)
  const { ip, target } = located
  if (!target) throw new IpmoveError('internal', `${provider.name} located no target for ${ip.block}`)
  let local = early ?? (await carried(provider, ip, options))
  if (local && located.hostCarries === false) {
    log.info(
      `not adding ${ip.block} to ${local.iface}: ${provider.name} maps it onto an address this host already has`,
    )
    local = undefined
  }
  log.info(describeLocated(provider, located))

  // The address goes on the interface while the API routes it (OVH answers as
  // soon as routing completes); the LAN hears of it once the API says done.
  const adding = local?.add()
  adding?.catch(() => {}) // awaited below
  let result: ReconcileResult
  try {
    result = await reconcile(
      provider,
      located,
      {
        target,
        wait: options.wait,
        dryRun: options.dryRun,
        signal,
        pollMs: options.pollMs,
        stop: options.stop,
      },
      log,
    )
  } catch (error) {
    await rollback(local, adding, log, error instanceof StoodDown ? 'it stood down' : 'the move failed')
    throw error
  }
  const alias = local && adding ? await finishLocal(provider, local, adding, result, log) : undefined
  return { ...result, located: withoutHandle(located), ...(alias ? { alias } : {}) }
}

/**
 * The demoted side: take the address off this host and announce nothing (the
 * new holder does that). The API is never asked. Absent already is success,
 * with changed: false.
 */
export function yieldIp(options: AliasTarget): Promise<AliasResult> {
  return removeAlias(options)
}

/** Locate the IP for a claim; a stop meanwhile cuts the lookup short (nothing was written yet). */
async function locateOrStand(
  provider: Provider,
  request: LocateRequest,
  { signal, stop }: ClaimOptions,
  asked: string,
): Promise<LocatedIp> {
  try {
    return await locateIp(provider, request, stop ? AbortSignal.any([signal, stop]) : signal, asked)
  } catch (error) {
    if (stop?.aborted && !signal.aborted) throw new StoodDown(0, false, false)
    throw error
  }
}

/** Locate the IP; a failure once the time ran out is a timeout, whatever the provider made of it. */
export async function locateIp(
  provider: Provider,
  request: LocateRequest,
  signal: AbortSignal,
  asked: string,
): Promise<LocatedIp> {
  try {
    return await provider.locate(request, signal)
  } catch (error) {
    if (signal.aborted && !isKind(error, 'timeout')) {
      throw new IpmoveError('timeout', `timed out looking up ${asked}: ${(error as Error).message}`)
    }
    throw error
  }
}

/** "203.0.113.10 (ovh cloud, project t18s) is on web-1 (id)": the line `move` and `status` start with. */
export function describeLocated(provider: Provider, located: Located): string {
  const where = located.scope ? `, project ${describeHolder(located.scope)}` : ''
  return `${located.ip.block} (${provider.name} ${located.kind}${where}) is on ${describeHolder(located.state.holder)}`
}

/** Which of this host's interfaces carry the address (all of them, or the one given); undefined where they cannot be listed. */
export async function carriedHere(
  ip: IpBlock,
  iface: string | undefined,
  log: Logger,
): Promise<{ carried: boolean; interfaces: string[] } | undefined> {
  try {
    const entries = await showAliases(iface === undefined ? {} : { interface: iface })
    const interfaces = entries.filter((e) => e.address === ip.address).map((e) => e.iface)
    return { carried: interfaces.length > 0, interfaces }
  } catch (error) {
    // A status read must not fail because the local side cannot be listed (no ip(8), a laptop…).
    log.debug(`status: could not list local addresses: ${(error as Error).message}`)
    return undefined
  }
}

/** The local address to configure, when one is to be carried and this is no dry run. */
async function carried(
  provider: Provider,
  ip: IpBlock,
  options: ClaimOptions,
): Promise<LocalAddress | undefined> {
  const { carry } = options
  if (!carry || options.dryRun) return undefined
  return LocalAddress.prepare({
    ip,
    interface: carry.interface,
    label: carry.label,
    announce: carry.announce ?? DEFAULT_ANNOUNCE,
    nodad: provider.probesLink,
    driver: carry.driver,
  })
}

/** The cloud move failed or stood down: take back an address we added, so nothing is half-done. */
async function rollback(
  local: LocalAddress | undefined,
  adding: Promise<boolean> | undefined,
  log: Logger,
  why: string,
) {
  if (!local || !adding) return
  const added = await adding.catch(() => false)
  if (!added) return
  await local.remove().then(
    () => log.info(`removed ${local.ip.block} from ${local.iface} again, since ${why}`),
    (error: Error) =>
      log.warn(`could not remove ${local.ip.block} from ${local.iface} again: ${error.message}`),
  )
}

/** The API is done: the address must be on the interface, then announced. A failure here is a local one. */
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
    const cloud = !provider.hasCloudApi
      ? 'no cloud API was involved'
      : result.outcome === 'accepted'
        ? `${provider.name} accepted the move to ${describeHolder(result.to)}`
        : `${provider.name} now routes it to ${describeHolder(result.to)}`
    if (isKind(error, 'local')) {
      throw new IpmoveError('local', `${error.message} (${cloud})`, {
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

/** The facts of a located IP, without its bound read and write (results are plain data). */
function withoutHandle({ read: _read, write: _write, ...located }: LocatedIp): Located {
  return located
}
