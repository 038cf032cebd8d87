import { showAliases } from '../alias/service.js'
import { describeHolder, type Holder } from '../core/provider.js'
import type { Logger } from '../output.js'
import type { IpBlock } from '../validate.js'
import { prepare, type TargetOptions } from './move.js'

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
    const located = await provider.locate(
      {
        ip: prepared.ip,
        ipId: prepared.ipId,
        project: prepared.project,
        interface: prepared.interface,
        needTarget: false,
      },
      signal,
    )
    const { ip, state } = located
    const pending = state.pending ? `; pending: ${state.note ?? 'operation in progress'}` : ''
    const local = await carriedHere(ip, prepared.interface, log)
    const where = located.scope ? `, project ${describeHolder(located.scope)}` : ''
    log.info(
      `${ip.block} (${provider.name} ${located.kind}${where}) is on ${describeHolder(state.holder)}${pending}`,
    )
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

/** Which of this host's interfaces carry the address (all of them, or the one given). */
async function carriedHere(
  ip: IpBlock,
  iface: string | undefined,
  log: Logger,
): Promise<StatusResult['local'] | undefined> {
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
