import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { SetCredentialsOptions } from '../../src/core/provider.js'
import { IpmoveError, usageError } from '../../src/errors.js'
import { type KeyringLike, KeyringUnavailable, systemKeyring } from '../../src/keyring.js'
import { type Logger, registerSecret } from '../../src/output.js'
import {
  assertPrivate,
  type IniData,
  parseIni,
  readSettingsFile,
  sharedDirReason,
} from '../../src/secure-file.js'
import { readAll, readLine } from '../../src/terminal.js'
import { shown } from '../../src/validate.js'
import {
  DEFAULT_OVH_ENDPOINT,
  KEYS,
  type KeySpec,
  type Method,
  OVH_SECRET_KEYS,
  OVH_SETTING_KEYS,
  type OvhCredentialKey,
  type OvhEndpoint,
  parseOvhEndpoint,
} from './endpoints.js'

export type OvhCredentials =
  | {
      kind: 'application'
      endpointName: string
      baseUrl: string
      applicationKey: string
      applicationSecret: string
      consumerKey: string
      /** Where the values came from, for messages: "env", "/root/.ovh.conf", "env, /etc/ovh.conf"… */
      source: string
    }
  | {
      kind: 'oauth2'
      endpointName: string
      baseUrl: string
      tokenUrl: string
      clientId: string
      clientSecret: string
      source: string
    }

export interface CredentialSources {
  env: NodeJS.ProcessEnv
  cwd: string
  home: string
  /** Default /etc (tests point it elsewhere). */
  etcDir?: string
  /** Values the command was given, e.g. from flags; they win over everything. */
  overrides?: Partial<Record<'endpoint' | OvhCredentialKey, string>>
  /** The `[ovh]` section of ipmove's own config file, which ranks above ovh.conf. */
  config?: { path?: string; values: Record<string, string> }
  /** Undefined: the OS keyring; null: no keyring. */
  keyring?: KeyringLike | null
  /** Told when ./ovh.conf exists but is not read. */
  log?: Logger
}

/**
 * A secret file others can read is refused (exit 2) when a secret it holds is about to be
 * used, and only warned about otherwise: a stray ./ovh.conf must not stop a failover whose
 * environment supplies every key. `used`: the labels (file paths…) the chosen secrets come from.
 */
function checkExposed(files: OvhConfFiles, used: ReadonlySet<string>, log: Logger | undefined): void {
  for (const file of files.read) {
    if (!file.exposed) continue
    if (used.has(file.path)) throw file.exposed
    log?.warn(`${file.exposed.message} (its secrets are not used this time)`)
  }
}

/** OVH keys are ASCII tokens; anything else is a paste error, or a header injection. */
function checkValue(spec: KeySpec, value: string, source: string): void {
  if (!/^[\x21-\x7e]+$/.test(value)) {
    throw usageError(
      `${spec.file} from ${source} holds characters a credential cannot have (spaces, control or non-ASCII characters)`,
    )
  }
}

interface Layer {
  label: string
  values: Partial<Record<OvhCredentialKey, string>>
}

interface OvhConfFiles {
  /**
   * Highest priority first: ./ovh.conf, ~/.ovh.conf, /etc/ovh.conf. `exposed`: the file holds
   * secrets others can read; refused only if one of its secrets is to be used.
   */
  read: { path: string; data: IniData; exposed?: IpmoveError }[]
  looked: string[]
  unreadable: string[]
  /** Why ./ovh.conf was not looked at, when it was not. */
  skipped?: string
}

/** The ovh.conf files looked for, highest priority first: ./ovh.conf, ~/.ovh.conf, /etc/ovh.conf. */
export function ovhConfPaths(cwd: string, home: string, etcDir = '/etc'): string[] {
  return [resolve(cwd, 'ovh.conf'), join(home, '.ovh.conf'), join(etcDir, 'ovh.conf')].filter(
    (path, i, all) => all.indexOf(path) === i,
  )
}

/**
 * The files python-ovh and go-ovh read, in their order: a later file wins
 * key by key (/etc/ovh.conf < ~/.ovh.conf < ./ovh.conf).
 */
function readOvhConfFiles(sources: CredentialSources): OvhConfFiles {
  const local = resolve(sources.cwd, 'ovh.conf')
  // In a directory others can write (a shared /tmp, a group's checkout), anyone
  // could plant ./ovh.conf: refusing it would block the failover, reading it
  // would send the request to their endpoint. So it is not looked at.
  const shared = sharedDirReason(sources.cwd)
  const skipped = shared && `${local}: ${shared}`
  if (skipped && existsSync(local)) {
    sources.log?.warn(`not reading ${skipped}; run ipmove from a directory only you and root can write`)
  }
  const paths = ovhConfPaths(sources.cwd, sources.home, sources.etcDir).filter(
    (path) => !shared || path !== local,
  )
  const files: OvhConfFiles = { read: [], looked: paths, unreadable: [], skipped }
  for (const path of paths) {
    let file: ReturnType<typeof readSettingsFile>
    try {
      file = readSettingsFile(path)
    } catch (error) {
      // python-ovh skips files it cannot read (a user next to a root-only /etc/ovh.conf).
      if (error instanceof IpmoveError && error.details?.errno === 'EACCES') {
        files.unreadable.push(path)
        continue
      }
      throw error
    }
    if (!file) continue
    const data = parseIni(file.text, path)
    const holdsSecrets = [...data.sections.values()].some((section) =>
      OVH_SECRET_KEYS.some((key) => Boolean(section[key])),
    )
    let exposed: IpmoveError | undefined
    try {
      if (holdsSecrets) assertPrivate(file)
    } catch (error) {
      if (!(error instanceof IpmoveError)) throw error
      exposed = error
    }
    for (const section of data.sections.values())
      for (const key of OVH_SECRET_KEYS) registerSecret(section[key])
    files.read.push({ path, data, exposed })
  }
  return files
}

function fromNamed(values: Record<string, string | undefined>, names: 'file' | 'env'): Layer['values'] {
  const out: Layer['values'] = {}
  for (const spec of KEYS) {
    const value = values[spec[names]]
    if (value) out[spec.key] = value
  }
  return out
}

function build(
  method: Method,
  endpoint: OvhEndpoint,
  values: Partial<Record<OvhCredentialKey, string>>,
  source: string,
): OvhCredentials {
  if (method === 'oauth2') {
    if (!endpoint.tokenUrl) {
      throw usageError(`OVH endpoint ${endpoint.endpointName} offers no OAuth2; use an application key there`)
    }
    return {
      kind: 'oauth2',
      endpointName: endpoint.endpointName,
      baseUrl: endpoint.baseUrl,
      tokenUrl: endpoint.tokenUrl,
      clientId: values.clientId!,
      clientSecret: values.clientSecret!,
      source,
    }
  }
  return {
    kind: 'application',
    endpointName: endpoint.endpointName,
    baseUrl: endpoint.baseUrl,
    applicationKey: values.applicationKey!,
    applicationSecret: values.applicationSecret!,
    consumerKey: values.consumerKey!,
    source,
  }
}

const specsOf = (method: Method) => KEYS.filter((spec) => spec.method === method)
const methodName = (method: Method) =>
  method === 'application' ? 'application_key/application_secret/consumer_key' : 'client_id/client_secret'

/** Every place above the keyring a credential may come from, highest first, and what each gave. */
interface Collected {
  files: OvhConfFiles
  configLabel: string
  /** Where the endpoint was configured; undefined: nowhere (the default). */
  endpointFrom?: { value: string; label: string }
  endpoint: OvhEndpoint
  layers: Layer[]
  /** Each key from the first layer that has it; `rank` is that layer's index. */
  found: Map<OvhCredentialKey, { value: string; rank: number; label: string }>
}

/** Flags, env, ipmove.conf's [ovh], then the ovh.conf files, key by key. */
function collect(sources: CredentialSources): Collected {
  const { env } = sources
  const files = readOvhConfFiles(sources)
  const config = sources.config
  const configLabel = config?.path ?? 'ipmove config'

  const endpointFrom =
    (sources.overrides?.endpoint && { value: sources.overrides.endpoint, label: 'endpoint' }) ||
    (env.OVH_ENDPOINT && { value: env.OVH_ENDPOINT, label: 'OVH_ENDPOINT' }) ||
    (config?.values.endpoint && { value: config.values.endpoint, label: `${configLabel} [ovh] endpoint` }) ||
    files.read
      .filter((file) => file.data.sections.get('default')?.endpoint)
      .map((file) => ({
        value: file.data.sections.get('default')!.endpoint!,
        label: `${file.path} [default] endpoint`,
      }))[0] ||
    undefined
  const endpoint = parseOvhEndpoint(
    endpointFrom ? endpointFrom.value : DEFAULT_OVH_ENDPOINT,
    endpointFrom?.label,
  )

  const layers: Layer[] = [
    { label: 'flags', values: { ...sources.overrides } },
    { label: 'env', values: fromNamed(env, 'env') },
    { label: configLabel, values: config ? fromNamed(config.values, 'file') : {} },
    ...files.read.map((file) => ({
      label: file.path,
      values: fromNamed(file.data.sections.get(endpoint.endpointName) ?? {}, 'file'),
    })),
  ]
  for (const layer of layers) {
    delete (layer.values as Record<string, unknown>).endpoint
    for (const spec of KEYS) if (spec.secret) registerSecret(layer.values[spec.key])
  }

  const found: Collected['found'] = new Map()
  for (const spec of KEYS) {
    const rank = layers.findIndex((layer) => layer.values[spec.key])
    if (rank >= 0)
      found.set(spec.key, { value: layers[rank]!.values[spec.key]!, rank, label: layers[rank]!.label })
  }
  return { files, configLabel, endpointFrom, endpoint, layers, found }
}

/** The keyring's OVH entry when it is for the endpoint in use; otherwise why not, for the message. */
async function fromKeyring(
  sources: CredentialSources,
  { endpointFrom, endpoint }: Collected,
): Promise<{ values: Layer['values']; endpoint: OvhEndpoint; where: string } | { note: string }> {
  const keyring = sources.keyring === undefined ? systemKeyring() : sources.keyring
  if (!keyring) return { note: 'no keyring' }
  let stored: string | undefined
  try {
    stored = await keyring.get('ovh')
  } catch (error) {
    const reason = error instanceof KeyringUnavailable ? error.message : 'not usable'
    return { note: `${keyring.description} (unavailable: ${reason})` }
  }
  if (stored === undefined) return { note: `${keyring.description} (nothing stored)` }
  const entry = parseStoredEntry(stored, keyring.description)
  const storedEndpoint = parseOvhEndpoint(
    entry.endpoint ?? DEFAULT_OVH_ENDPOINT,
    `${keyring.description} endpoint`,
  )
  if (endpointFrom && storedEndpoint.endpointName !== endpoint.endpointName) {
    return {
      note: `${keyring.description} (holds ${storedEndpoint.endpointName}, not ${endpoint.endpointName})`,
    }
  }
  return { values: fromNamed(entry, 'file'), endpoint: storedEndpoint, where: keyring.description }
}

/** Nothing anywhere (exit 3): every place looked at, and how to put credentials in one. */
function nothingFound(
  sources: CredentialSources,
  { files, configLabel, endpoint }: Collected,
  keyringNote: string,
  what: string,
): IpmoveError {
  const unreadable = [
    ...(files.unreadable.length > 0 ? [`cannot read ${files.unreadable.join(', ')}`] : []),
    ...(files.skipped ? [`skipped ${files.skipped}`] : []),
  ]
    .map((note) => ` (${note})`)
    .join('')
  return new IpmoveError(
    'auth',
    `no ${what} for ${endpoint.endpointName}: looked in flags, env (OVH_APPLICATION_KEY…, OVH_CLIENT_ID…), ` +
      `${sources.config ? `[ovh] of ${configLabel}, ` : ''}[${endpoint.endpointName}] of ${files.looked.join(', ')}${unreadable}, ` +
      `${keyringNote}; run "ipmove credentials set ovh" or write ${join(sources.home, '.ovh.conf')} (chmod 600)`,
  )
}

/**
 * Resolve OVH credentials, key by key, from (highest first) the overrides, the
 * environment (OVH_*), ipmove.conf's [ovh], then ./ovh.conf, ~/.ovh.conf and
 * /etc/ovh.conf ([default] endpoint, [ENDPOINT] keys), as go-ovh and python-ovh
 * do. The OS keyring is read only when none of those holds any credential, so
 * hooks on configured servers never touch it.
 *
 * One method is used: when both an application key set and an OAuth2 client are
 * present, the one from the higher-ranked source wins; both in the same source
 * is refused (exit 2), as every OVH SDK refuses it. A partial set is an error
 * (exit 3) naming what is missing, never completed from the keyring.
 */
export async function resolveOvhCredentials(sources: CredentialSources): Promise<OvhCredentials> {
  const collected = collect(sources)
  const { files, endpoint, layers, found } = collected
  const rankOf = (method: Method) =>
    Math.min(...specsOf(method).map((spec) => found.get(spec.key)?.rank ?? Number.POSITIVE_INFINITY))

  const app = rankOf('application')
  const oauth = rankOf('oauth2')
  if (Number.isFinite(app) || Number.isFinite(oauth)) {
    if (app === oauth) {
      throw usageError(
        `${layers[app]!.label} holds both ${methodName('application')} and ${methodName('oauth2')}; keep one method`,
      )
    }
    const method: Method = app < oauth ? 'application' : 'oauth2'
    const specs = specsOf(method)
    const missing = specs.filter((spec) => !found.has(spec.key))
    if (missing.length > 0) {
      const have = specs
        .filter((spec) => found.has(spec.key))
        .map((spec) => `${spec.file} from ${found.get(spec.key)!.label}`)
      throw new IpmoveError(
        'auth',
        `OVH credentials for ${endpoint.endpointName} are incomplete: ${missing.map((s) => s.file).join(', ')} missing ` +
          `(have ${have.join(', ')}); set ${missing.map((s) => s.env).join(', ')} or add ${missing.map((s) => s.file).join(', ')} ` +
          `to [${endpoint.endpointName}] in ${files.looked.join(', ')}`,
        { missing: missing.map((s) => s.file) },
      )
    }
    const values: Layer['values'] = {}
    for (const spec of specs) {
      const { value, label } = found.get(spec.key)!
      checkValue(spec, value, label)
      values[spec.key] = value
    }
    const labels = [...new Set(specs.map((spec) => found.get(spec.key)!.rank))]
      .sort((a, b) => a - b)
      .map((rank) => layers[rank]!.label)
    checkExposed(
      files,
      new Set(specs.filter((spec) => spec.secret).map((spec) => found.get(spec.key)!.label)),
      sources.log,
    )
    return build(method, endpoint, values, labels.join(', '))
  }

  // Nothing configured: last, the keyring.
  checkExposed(files, new Set(), sources.log)
  const stored = await fromKeyring(sources, collected)
  if ('note' in stored) throw nothingFound(sources, collected, stored.note, 'OVH credentials')
  const method: Method = stored.values.clientId ? 'oauth2' : 'application'
  for (const spec of specsOf(method)) {
    if (!stored.values[spec.key]) {
      throw new IpmoveError(
        'auth',
        `the OVH entry in ${stored.where} lacks ${spec.file}; run: ipmove credentials set ovh`,
      )
    }
    checkValue(spec, stored.values[spec.key]!, stored.where)
  }
  return build(method, stored.endpoint, stored.values, 'keyring')
}

/** An application key and secret, without a consumer key: what asks OVH for a new consumer key. */
export interface OvhApplication {
  endpointName: string
  baseUrl: string
  applicationKey: string
  applicationSecret: string
  /** Where the key and secret came from, for messages. */
  source: string
}

/**
 * The application key and secret, from the same places and in the same order as
 * resolveOvhCredentials; any consumer key found is ignored (a new one is being made).
 * The keyring is read only when no other place holds an application key.
 */
export async function resolveOvhApplication(sources: CredentialSources): Promise<OvhApplication> {
  const collected = collect(sources)
  const { files, endpoint, found } = collected
  const specs = KEYS.filter((spec) => spec.key === 'applicationKey' || spec.key === 'applicationSecret')
  let values: Layer['values'] = {}
  let where: string[] = []
  let resolved = endpoint
  if (found.has('applicationKey')) {
    for (const spec of specs) {
      const hit = found.get(spec.key)
      if (!hit) {
        throw new IpmoveError(
          'auth',
          `OVH ${spec.file} for ${endpoint.endpointName} is missing (application_key from ${found.get('applicationKey')!.label}); ` +
            `set ${spec.env} or add ${spec.file} to [${endpoint.endpointName}] in ${files.looked.join(', ')}`,
          { missing: [spec.file] },
        )
      }
      values[spec.key] = hit.value
      where.push(hit.label)
    }
    checkExposed(files, new Set([found.get('applicationSecret')!.label]), sources.log)
  } else {
    if (found.has('clientId')) {
      throw usageError(
        `found an OAuth2 client (client_id from ${found.get('clientId')!.label}) but no application key: a consumer key belongs to an application (application_key and application_secret); a service account is limited by IAM policies instead`,
      )
    }
    checkExposed(files, new Set(), sources.log)
    const stored = await fromKeyring(sources, collected)
    if ('note' in stored || !stored.values.applicationKey || !stored.values.applicationSecret) {
      const note = 'note' in stored ? stored.note : `${stored.where} (holds no application key and secret)`
      throw nothingFound(sources, collected, note, 'OVH application key and secret')
    }
    values = stored.values
    where = [stored.where]
    resolved = stored.endpoint
  }
  for (const spec of specs) checkValue(spec, values[spec.key]!, where.join(', '))
  return {
    endpointName: resolved.endpointName,
    baseUrl: resolved.baseUrl,
    applicationKey: values.applicationKey!,
    applicationSecret: values.applicationSecret!,
    source: [...new Set(where)].join(', '),
  }
}

/** The keyring entry: a JSON object with the ovh.conf key names and `endpoint`. */
function parseStoredEntry(text: string, where: string): Record<string, string> {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    parsed = undefined
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new IpmoveError('auth', `the OVH entry in ${where} is not valid; run: ipmove credentials set ovh`)
  }
  const entry: Record<string, string> = {}
  for (const [key, value] of Object.entries(parsed)) {
    if (typeof value === 'string' && OVH_SETTING_KEYS.includes(key)) entry[key] = value
  }
  for (const key of OVH_SECRET_KEYS) registerSecret(entry[key])
  return entry
}

/**
 * Check a complete credential set as `credentials set` received it (ovh.conf
 * key names) and return the JSON the keyring stores. Never echoes a value.
 */
export function checkCredentialSet(values: Record<string, string>): string {
  for (const key of OVH_SECRET_KEYS) registerSecret(values[key])
  // Absent means the default; given but empty (`--endpoint ""`, `endpoint=`) is refused like any bad name.
  const endpoint = parseOvhEndpoint(values.endpoint ?? DEFAULT_OVH_ENDPOINT, 'endpoint')
  const hasApp = specsOf('application').some((spec) => values[spec.file])
  const hasOauth = specsOf('oauth2').some((spec) => values[spec.file])
  if (hasApp && hasOauth)
    throw usageError(`give either ${methodName('application')} or ${methodName('oauth2')}, not both`)
  if (!hasApp && !hasOauth)
    throw usageError(`no credentials given (${methodName('application')} or ${methodName('oauth2')})`)
  const method: Method = hasOauth ? 'oauth2' : 'application'
  if (method === 'oauth2' && !endpoint.tokenUrl) {
    throw usageError(`OVH endpoint ${endpoint.endpointName} offers no OAuth2; use an application key there`)
  }
  const entry: Record<string, string> = { endpoint: endpoint.endpointName }
  for (const spec of specsOf(method)) {
    const value = values[spec.file]
    if (!value) throw usageError(`${spec.file} is missing`)
    checkValue(spec, value, 'the input')
    entry[spec.file] = value
  }
  return JSON.stringify(entry)
}

/**
 * Parse `credentials set` input: `key=value` lines with the ovh.conf key names
 * (endpoint, application_key, application_secret, consumer_key, client_id,
 * client_secret); blank lines and lines starting with # are ignored.
 */
export function parseCredentialLines(text: string): Record<string, string> {
  const values: Record<string, string> = {}
  for (const [index, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim()
    if (!line || line.startsWith('#')) continue
    const eq = line.indexOf('=')
    const key = (eq < 0 ? line : line.slice(0, eq)).trim()
    if (eq < 0 || !OVH_SETTING_KEYS.includes(key)) {
      // Never quote the line: it may be a secret pasted in the wrong place.
      throw usageError(
        `input line ${index + 1} is not KEY=VALUE with KEY one of ${OVH_SETTING_KEYS.join(', ')}`,
      )
    }
    values[key] = line.slice(eq + 1).trim()
  }
  return values
}

/** `ipmove credentials set ovh`: read a credential set from stdin or prompts and store it. */
export async function setOvhCredentials(options: SetCredentialsOptions): Promise<{ endpointName: string }> {
  let values: Record<string, string>
  if (options.input.isTTY && options.input.setRawMode) {
    // Find a missing keyring before the person types three secrets.
    await options.keyring.get('ovh').catch((error: unknown) => {
      throw keyringError(options.keyring, error)
    })
    values = await promptCredentials(options)
  } else {
    values = parseCredentialLines(await readAll(options.input))
    if (Object.keys(values).length === 0) throw usageError('no credentials on standard input')
    if (options.endpoint !== undefined) {
      if (values.endpoint !== undefined && values.endpoint !== options.endpoint) {
        throw usageError(`--endpoint ${shown(options.endpoint)} and the input's endpoint differ`)
      }
      values.endpoint = options.endpoint
    }
  }
  const json = checkCredentialSet(values)
  try {
    await options.keyring.set('ovh', json)
  } catch (error) {
    throw keyringError(options.keyring, error)
  }
  return { endpointName: (JSON.parse(json) as { endpoint: string }).endpoint }
}

/** `ipmove credentials delete ovh`. False when nothing was stored. */
export async function deleteOvhCredentials(keyring: KeyringLike): Promise<boolean> {
  try {
    return await keyring.delete('ovh')
  } catch (error) {
    throw keyringError(keyring, error)
  }
}

/** No keyring is a setup fact the user must act on, found before any API call: exit 2. */
function keyringError(keyring: KeyringLike, error: unknown): IpmoveError {
  const reason = error instanceof KeyringUnavailable ? error.message : 'not usable'
  return usageError(
    `${keyring.description} is unavailable (${reason}); put the credentials in /etc/ovh.conf or ~/.ovh.conf (chmod 600) instead`,
  )
}

async function promptCredentials(options: SetCredentialsOptions): Promise<Record<string, string>> {
  const ask = (question: string, echo: boolean) => readLine(options.input, options.prompts, question, echo)
  const values: Record<string, string> = {}
  // At the prompt, Enter alone takes the default shown.
  values.endpoint =
    options.endpoint ??
    ((await ask(`OVH endpoint [${DEFAULT_OVH_ENDPOINT}]: `, true)) || DEFAULT_OVH_ENDPOINT)
  if (options.oauth2) {
    values.client_id = await ask('client id: ', true)
    values.client_secret = await ask('client secret (not shown): ', false)
  } else {
    values.application_key = await ask('application key: ', true)
    values.application_secret = await ask('application secret (not shown): ', false)
    values.consumer_key = await ask('consumer key (not shown): ', false)
  }
  return values
}
