import { describeHolder, type ListedIp } from '../core/provider.js'
import { usageError } from '../errors.js'
import type { Logger } from '../output.js'
import { prepare, type TargetOptions } from './target.js'

export type ListOptions = Pick<
  TargetOptions,
  'project' | 'provider' | 'timeoutMs' | 'configPath' | 'providerSettings' | 'cache' | 'env'
>

export interface ListResult {
  provider: string
  ips: ListedIp[]
  requests: number
  roundTrips: number
}

/**
 * `ipmove list`: the failover IPs the credentials can see, with holder, kind and
 * pending state, so that a hook line can be written with the right names. Reads only.
 */
export async function listIps(options: ListOptions, log: Logger): Promise<ListResult> {
  const prepared = await prepare(options, log, false)
  const { provider } = prepared
  try {
    if (!provider.list)
      throw usageError(`provider ${provider.name} cannot list IPs (it has no cloud API to ask)`)
    const ips = await provider.list({ project: prepared.project }, AbortSignal.timeout(prepared.timeoutMs))
    for (const ip of ips) log.info(describeListed(ip))
    if (ips.length === 0)
      log.info(`no failover IPs${prepared.project ? ` in project ${prepared.project}` : ''}`)
    return { provider: provider.name, ips, requests: provider.requests, roundTrips: provider.roundTrips }
  } finally {
    provider.close()
  }
}

/** One line per IP: what a hook line needs (the IP, its scope) and where it is now. */
function describeListed(ip: ListedIp): string {
  const scope = ip.scope ? `, project ${describeHolder(ip.scope)}` : ''
  const id = ip.id ? `, id ${ip.id}` : ''
  const pending = ip.pending ? `; pending: ${ip.note ?? 'operation in progress'}` : ''
  return `${ip.ip} (${ip.kind}${scope}${id}) is on ${describeHolder(ip.holder)}${pending}`
}
