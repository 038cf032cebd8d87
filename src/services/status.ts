import { carriedHere, describeLocated, locateIp } from '../core/converge.js'
import type { Holder } from '../core/provider.js'
import type { Logger } from '../output.js'
import { prepare, type TargetOptions } from './target.js'

export interface StatusResult {
  ip: string
  provider: string
  kind: string
  project?: Holder
  holder: Holder | null
  pending: boolean
  progress?: number
  note?: string
  /** Whether this host carries the address, and on which interfaces; absent where it cannot be read. */
  local?: { carried: boolean; interfaces: string[] }
  requests: number
  roundTrips: number
}

/** `ipmove status`: who holds the IP, and whether an operation is pending. Reads only. */
export async function ipStatus(options: TargetOptions, log: Logger): Promise<StatusResult> {
  const prepared = await prepare(options, log)
  const { provider } = prepared
  const signal = AbortSignal.timeout(prepared.timeoutMs)
  try {
    const located = await locateIp(
      provider,
      {
        ip: prepared.ip,
        ipId: prepared.ipId,
        project: prepared.project,
        interface: prepared.interface,
        needTarget: false,
      },
      signal,
      prepared.ip?.block ?? `the IP with id ${prepared.ipId}`,
    )
    const { ip, state } = located
    const pending = state.pending ? `; pending: ${state.note ?? 'operation in progress'}` : ''
    const local = await carriedHere(ip, prepared.interface, log)
    log.info(`${describeLocated(provider, located)}${pending}`)
    if (local) {
      const on = prepared.interface ? ` on ${prepared.interface}` : ''
      log.info(
        local.carried
          ? `this host carries ${ip.block} on ${local.interfaces.join(', ')}`
          : `this host does not carry ${ip.block}${on}`,
      )
    }
    return {
      ip: ip.block,
      provider: provider.name,
      kind: located.kind,
      project: located.scope,
      holder: state.holder,
      pending: state.pending,
      progress: state.progress,
      note: state.note,
      ...(local ? { local } : {}),
      requests: provider.requests,
      roundTrips: provider.roundTrips,
    }
  } finally {
    provider.close()
  }
}
