import type { IdCache } from './cache.js'
import { usageError } from './errors.js'
import type { Logger } from './output.js'
import type { IpBlock } from './validate.js'

/** A machine the API can route an IP to (an instance, a dedicated server, an ENI…). */
export interface Holder {
  id: string
  /** The name people see, when the API gives one. */
  name?: string
}

/** What the provider's API says about the IP right now. */
export interface IpState {
  /** Where the API routes the IP now; null when it is routed nowhere. */
  holder: Holder | null
  /** An operation on the IP is in progress (ours or anyone's). */
  pending: boolean
  /** Percent done of the pending operation, when the API tells. */
  progress?: number
  /** A short human detail, such as "task 42 doing". */
  note?: string
}

/** What a command asks a provider to find. Names are validated before this. */
export interface LocateRequest {
  /** The IP by address; absent when the provider's own id of it was given instead. */
  ip?: IpBlock
  /** The provider's id of the IP (ipmoveOvh's -ip-id), instead of or besides the address. */
  ipId?: string
  /** A provider-specific scope: OVH project name or id. */
  project?: string
  /** The desired holder's name or id; undefined means this host. */
  instance?: string
  /** False for `status`, which needs no target. */
  needTarget: boolean
  /** The local interface that is to carry the IP, when one was given. */
  interface?: string
}

export interface Located {
  /** The IP, as the provider found it. */
  ip: IpBlock
  /** The IP's kind in the provider's terms, e.g. "cloud" or "classic". */
  kind: string
  /** The scope the IP was found in (e.g. the OVH project), for reports. */
  scope?: Holder
  /** The desired holder, resolved to its id. Present when needTarget was true. */
  target?: Holder
  /** The state read while locating, so the engine need not read again. */
  state: IpState
  /**
   * False when the cloud maps the IP onto an address the host already has (an
   * EC2 Elastic IP is NATed to a private address): the OS must not carry it.
   */
  hostCarries?: boolean
}

/**
 * One cloud's way of routing an IP. A provider instance is bound to one IP by
 * `locate`; `read` and `write` then act on that IP. Providers talk HTTP; the
 * engine never does. Providers throw IpmoveError with the documented exit codes.
 */
export interface Provider {
  readonly name: string
  /**
   * Refuse, synchronously, a request this provider can never serve (exit 2),
   * so the engine fails before it takes a lock, runs a tool or sends anything.
   */
  check?(request: LocateRequest): void
  locate(request: LocateRequest, signal: AbortSignal): Promise<Located>
  read(signal: AbortSignal): Promise<IpState>
  /**
   * Ask the API, once, to route the located IP to `target`. Return the state
   * the API answered with when it tells one (saves a poll); undefined otherwise.
   */
  write(target: Holder, signal: AbortSignal): Promise<IpState | undefined>
  /** API requests made so far, retries included (for `--json`, the benchmark and tests). */
  readonly requests: number
  /** Of those, how many were sequential: requests sent side by side count once. */
  readonly roundTrips: number
  /** Release sockets so the process can exit promptly. */
  close(): void
  /**
   * The provider itself checked the link for other holders of the address (the
   * local provider's probe), so the kernel's IPv6 duplicate address detection
   * need not repeat it.
   */
  readonly probesLink?: boolean
}

/** What every provider gets; no flags, only plain settings. */
export interface ProviderContext {
  env: NodeJS.ProcessEnv
  cache: IdCache
  log: Logger
  /** Provider settings from the config file's `[provider-name]` section. */
  settings: Record<string, string>
}

export const PROVIDERS = ['ovh', 'aws', 'local'] as const
export type ProviderName = (typeof PROVIDERS)[number]

export function checkProviderName(name: string): ProviderName {
  if (!(PROVIDERS as readonly string[]).includes(name)) {
    throw usageError(`unknown provider ${JSON.stringify(name)} (known: ${PROVIDERS.join(', ')})`)
  }
  return name as ProviderName
}

/** Providers load lazily: a hook that moves an OVH IP never parses another cloud's SDK. */
export async function loadProvider(name: ProviderName, context: ProviderContext): Promise<Provider> {
  switch (name) {
    case 'ovh': {
      refuseUncheckedTls()
      const { OvhProvider } = await import('../providers/ovh.js')
      return OvhProvider.create(context)
    }
    case 'aws': {
      refuseUncheckedTls()
      const { AwsProvider } = await import('../providers/aws.js')
      return AwsProvider.create(context)
    }
    case 'local': {
      const { LocalProvider } = await import('../providers/local.js')
      return LocalProvider.create(context)
    }
  }
}

/**
 * NODE_TLS_REJECT_UNAUTHORIZED=0 makes Node accept any certificate on every
 * connection, with one easily missed line on stderr. ipmove runs as root from
 * hooks whose output few read, sending credentials that let their holder move
 * the IP: it refuses (exit 2) rather than warns. A test CA goes in NODE_EXTRA_CA_CERTS.
 */
function refuseUncheckedTls(): void {
  if (process.env.NODE_TLS_REJECT_UNAUTHORIZED === '0') {
    throw usageError(
      'NODE_TLS_REJECT_UNAUTHORIZED=0 turns off TLS certificate checks, so anyone on the path could take the API credentials; unset it (to trust a test CA, use NODE_EXTRA_CA_CERTS)',
    )
  }
}

export function sameHolder(a: Holder | null | undefined, b: Holder | null | undefined): boolean {
  return Boolean(a && b && a.id === b.id)
}

export function describeHolder(holder: Holder | null | undefined): string {
  if (!holder) return 'nowhere'
  return holder.name && holder.name !== holder.id ? `${holder.name} (${holder.id})` : holder.id
}
