/** The `[local]` section of the config file: how long to listen for other holders. */
import { usageError } from '../../src/errors.js'
import { parseSeconds } from '../../src/validate.js'

/**
 * A LAN neighbour answers within a millisecond or two. The probe only tells
 * who else answers (ipmove claims the address anyway), and when the old holder
 * is dead — the usual failover — the whole wait is downtime: keep it short.
 */
export const DEFAULT_PROBE_MS = 100
const MAX_PROBE_MS = 10_000

/** `probe-timeout = SECONDS` in the config's `[local]` section, as milliseconds. */
export function parseProbeTimeout(value: string, where: string): number {
  const ms = parseSeconds(where, value)
  if (ms < 10 || ms > MAX_PROBE_MS)
    throw usageError(`${where} must be from 0.01 to ${MAX_PROBE_MS / 1000} seconds`)
  return ms
}
