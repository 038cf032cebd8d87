import type { IdCache } from '../cache.js'
import type { KeyringLike } from '../keyring.js'
import type { Logger } from '../output.js'
import type { TerminalInput } from '../terminal.js'
import type { IpBlock } from '../validate.js'

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

/** What a provider found: the IP, its state, and the desired holder. */
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
 * A located IP, with reads and writes bound to it: there is no way to read or
 * write before locating, and two handles never share state.
 */
export interface LocatedIp extends Located {
  read(signal: AbortSignal): Promise<IpState>
  /**
   * Ask the API, once, to route the IP to `target`. Return the state the API
   * answered with when it tells one (saves a poll); undefined otherwise.
   */
  write(target: Holder, signal: AbortSignal): Promise<IpState | undefined>
}

/** What `ipmove list` asks a provider for. */
export interface ListRequest {
  /** A provider-specific scope (OVH project name or id): only the IPs there. */
  project?: string
}

/** A failover IP the credentials can see, as `ipmove list` shows it. */
export interface ListedIp {
  /** The IP, as `address/prefix`. */
  ip: string
  /** Its kind in the provider's terms, as Located.kind. */
  kind: string
  /** The provider's id of the IP (what --ip-id takes), when it has one. */
  id?: string
  /** Where it was found (the OVH project). */
  scope?: Holder
  holder: Holder | null
  pending: boolean
  /** A short human detail of a pending operation. */
  note?: string
}

/**
 * One cloud's way of routing an IP. `locate` finds an IP and returns a handle
 * that reads and writes it; a provider may locate many IPs, one after the
 * other or side by side. Providers talk HTTP; the engine never does.
 * Providers throw IpmoveError, whose kind says what went wrong.
 */
export interface Provider {
  readonly name: string
  /**
   * Refuse, synchronously, a request this provider can never serve (exit 2),
   * so the engine fails before it runs a tool or sends anything.
   */
  check?(request: LocateRequest): void
  locate(request: LocateRequest, signal: AbortSignal): Promise<LocatedIp>
  /** The failover IPs the credentials can see, for `ipmove list`; absent where a provider cannot tell. */
  list?(request: ListRequest, signal: AbortSignal): Promise<ListedIp[]>
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
  /** False when no cloud API is involved (the local provider): reports then say so. */
  readonly hasCloudApi: boolean
}

/** What every provider gets; no flags, only plain settings. */
export interface ProviderContext {
  env: NodeJS.ProcessEnv
  cache: IdCache
  log: Logger
  /** Provider settings from the config file's `[provider-name]` section. */
  settings: Record<string, string>
}

/** A flag `move` and `status` take for one provider; its value reaches the provider as the setting `key`. */
export interface ProviderFlag {
  /** The flag is `--KEY`, and the setting it sets is `KEY`. */
  key: string
  description: string
  /** The only values the flag accepts. */
  options?: readonly string[]
  /** Repeatable; the values reach the provider joined by commas. */
  multiple?: boolean
  /** It says which account or endpoint to ask (not what to move), so `list` takes it too. */
  account?: boolean
}

/** A provider's `[NAME]` section of the config file (and its flags). */
export interface ProviderSettingsSchema {
  /** Keys the section may hold. */
  keys: readonly string[]
  /** Of those, the ones whose presence makes the file secret (it must then be chmod 600). */
  secrets: readonly string[]
  /** Check one value, naming it `where` in the one-line error (exit 2). */
  check(key: string, value: string, where: string): void
}

/**
 * What the engine and the commands know of a provider without loading it: its
 * settings, flags and helpers are light; `load` imports the provider itself,
 * so a hook that moves an OVH IP never parses another cloud's SDK.
 */
export interface ProviderDescriptor {
  readonly name: string
  readonly settings: ProviderSettingsSchema
  readonly flags?: readonly ProviderFlag[]
  /** What separates one account's id cache from another's, without any secret in it. */
  accountKey(env: NodeJS.ProcessEnv, settings: Record<string, string>): string
  load(context: ProviderContext): Promise<Provider>
  /** `ipmove NAME policy`: the least access ipmove needs there (AWS: an IAM policy). */
  readonly policy?: PolicyHelper
  /** `ipmove credentials set|delete NAME`: credentials kept in the OS keyring. */
  readonly credentials?: CredentialStore
  /** `ipmove NAME credential`: a new API key limited to the calls ipmove makes for some IPs. */
  readonly limitedKey?: LimitedKeyHelper
}

export interface PolicyHelper {
  /** The modes a policy can be asked for; the first is the default. */
  modes: readonly string[]
  build(modes: readonly string[]): { modes: string[]; policy: object }
}

export interface SetCredentialsOptions {
  /** Standard input: `key=value` lines, or a terminal to prompt on. */
  input: TerminalInput
  /** Where prompts go (stderr, so stdout stays for --json). */
  prompts: NodeJS.WritableStream
  /** --endpoint */
  endpoint?: string
  /** --oauth2: prompt for a service account's client id and secret. */
  oauth2: boolean
  keyring: KeyringLike
}

export interface CredentialStore {
  /** How messages name the credentials, e.g. "OVH". */
  title: string
  /** Where credentials are looked for, first first: the one documented order (README, help, code). */
  order: string
  /** Read a credential set from stdin or prompts and store it; returns the endpoint it is for. */
  set(options: SetCredentialsOptions): Promise<{ endpointName: string }>
  /** False when nothing was stored. */
  delete(keyring: KeyringLike): Promise<boolean>
}

export interface LimitedKeyRequest {
  ips: readonly IpBlock[]
  /** The scope the IPs live in (an OVH project id). */
  project?: string
  /** The provider's ids of the IPs (--ip-id), which narrow the rules to them. */
  ipIds: readonly string[]
  /** The API endpoint, over the configured one. */
  endpoint?: string
  /** Where the provider's validation page sends the person after they allow the key. */
  redirection?: string
  /** Where the new key goes, with the rest of its set: the OS keyring, or a new file (never printed). */
  store: { keyring: KeyringLike } | { file: string }
  env: NodeJS.ProcessEnv
  /** The provider's section of ipmove's config file, and the file's path. */
  config: { path?: string; values: Record<string, string> }
  log: Logger
  /** Bounds the whole request, waiting included. */
  signal: AbortSignal
  /**
   * Once the key is made and stored, call `made` (to show its validation URL), then
   * wait until a person allows it; the answer's state is then `validated`.
   */
  wait?: { made(key: LimitedKey): void; intervalMs?: number }
}

export interface LimitedKey {
  /** The endpoint the key is for. */
  endpoint: string
  /** The key's state when made (OVH: pendingValidation), or `validated` after a wait. */
  state: string
  /** Where a person allows the key; it works only after that. */
  validationUrl: string
  rules: { method: string; path: string }[]
  /** Where the key was stored, for messages. */
  storedIn: string
}

export interface LimitedKeyHelper {
  /** Ask the API for the key and store it; the key itself is never returned. */
  request(request: LimitedKeyRequest): Promise<LimitedKey>
}

export function sameHolder(a: Holder | null | undefined, b: Holder | null | undefined): boolean {
  return Boolean(a && b && a.id === b.id)
}

export function describeHolder(holder: Holder | null | undefined): string {
  if (!holder) return 'nowhere'
  return holder.name && holder.name !== holder.id ? `${holder.name} (${holder.id})` : holder.id
}
