import { prepare, type TargetOptions } from './move.js'
import type { Logger } from './output.js'
import { describeHolder, type Holder } from './provider.js'

export interface StatusResult {
  ip: string
  provider: string
  kind: string
  project?: Holder
  holder: Holder | null
  pending: boolean
  progress?: number
  note?: string
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
      { ip: prepared.ip, ipId: prepared.ipId, project: prepared.project, needTarget: false },
      signal,
    )
    const { ip, state } = located
    const pending = state.pending ? `; pending: ${state.note ?? 'operation in progress'}` : ''
    const where = located.scope ? `, project ${describeHolder(located.scope)}` : ''
    log.info(
      `${ip.block} (${provider.name} ${located.kind}${where}) is on ${describeHolder(state.holder)}${pending}`,
    )
    return {
      ip: ip.block,
      provider: provider.name,
      kind: located.kind,
      project: located.scope,
      holder: state.holder,
      pending: state.pending,
      progress: state.progress,
      note: state.note,
      requests: provider.requests,
      roundTrips: provider.roundTrips,
    }
  } finally {
    provider.close()
  }
}
