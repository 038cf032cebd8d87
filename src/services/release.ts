import type { AliasResult } from '../alias/service.js'
import { yieldIp } from '../core/converge.js'
import { DEFAULT_LOCK_WAIT_MS, withIpLock } from '../lock.js'
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
export async function releaseIp(
  options: ReleaseOptions,
  log: Logger = new MemoryLogger(),
): Promise<AliasResult> {
  const ip = parseIp(options.ip)
  // A move of the same IP still running on this host finishes first, then the address goes.
  const lock = { env: options.env ?? process.env, signal: AbortSignal.timeout(DEFAULT_LOCK_WAIT_MS), log }
  return withIpLock(ip.block, lock, () => yieldIp({ ip, interface: options.interface }))
}
