import type { AliasResult } from '../alias/service.js'
import { yieldIp } from '../core/converge.js'
import { DEFAULT_LOCK_WAIT_MS, isSuperseded, withLatestIntent } from '../lock.js'
import { type Logger, MemoryLogger } from '../output.js'
import { parseIp } from '../validate.js'

export interface ReleaseOptions {
  ip: string
  interface: string
  env?: NodeJS.ProcessEnv
}

/**
 * `ipmove release`: the demoted state of a failover pair. Drop the address,
 * announce nothing (the new holder does that), and never touch the cloud.
 */
export interface ReleaseResult extends AliasResult {
  /** superseded: a newer move or release of the IP arrived while this one waited; nothing was touched. */
  outcome: 'released' | 'absent' | 'superseded'
}

export async function releaseIp(
  options: ReleaseOptions,
  log: Logger = new MemoryLogger(),
): Promise<ReleaseResult> {
  const ip = parseIp(options.ip)
  // A move of the same IP still running on this host finishes first, then the
  // address goes, unless a newer move or release arrived meanwhile.
  const lock = { env: options.env ?? process.env, signal: AbortSignal.timeout(DEFAULT_LOCK_WAIT_MS), log }
  // Dropping an address takes a moment: it runs to its end even when a newer call arrives.
  const intent = `release from ${options.interface}`
  const result = await withLatestIntent(ip.block, { ...lock, intent }, () =>
    yieldIp({ ip, interface: options.interface }),
  )
  if (isSuperseded(result))
    return { ip: ip.block, interface: options.interface, changed: false, outcome: 'superseded' }
  return { ...result, outcome: result.changed ? 'released' : 'absent' }
}
