import { homedir } from 'node:os'
import { join } from 'node:path'
import { PROVIDER_NAMES, PROVIDERS, providerNamed } from '../providers/index.js'
import { IpmoveError, usageError } from './errors.js'
import { registerSecret } from './output.js'
import { assertPrivate, iniLines, parseIni, readSettingsFile, shownKey } from './secure-file.js'
import { type IpBlock, parseIp, parseSeconds, shown, validateInterface, validateName } from './validate.js'

/** What a command may take from flags, a named IP entry or the defaults. */
export interface Settings {
  /** A name from the provider registry once validated. */
  provider?: string
  /** OVH project name or id. */
  project?: string
  /** The desired holder's name or id. */
  instance?: string
  interface?: string
  timeoutMs?: number
  /** Address label suffix: the address is labelled `INTERFACE:LABEL`. */
  label?: string
}

export interface IpmoveConfig {
  /** The file read; undefined when no file exists at the default place. */
  path?: string
  defaults: Settings
  /** `[ovh]` and such: provider settings, validated, possibly holding secrets. */
  providers: Record<string, Record<string, string>>
  /** `[ip.NAME]` entries by NAME. */
  ips: Record<string, Settings & { ip: IpBlock }>
  /**
   * `[watch.…]` sections as read, with the line of every section and key:
   * only `ipmove watch` validates them (src/watch/config.ts), so a hook's
   * `move` never fails over a daemon setting.
   */
  watch?: { sections: Map<string, Record<string, string>>; lines: Map<string, number> }
}

const SETTING_KEYS = ['provider', 'project', 'instance', 'interface', 'timeout', 'label'] as const

type NamedSetting = 'project' | 'instance' | 'interface' | 'label'

/** The settings checked alike from a flag and from the file; `where` names the source in errors. */
const NAMED_SETTINGS: Record<NamedSetting, (value: string, where: string) => string> = {
  project: (value, where) => validateName(where, value),
  instance: (value, where) => validateName(where, value),
  interface: validateInterface,
  label: validateInterface,
}

export interface ConfigOptions {
  /** --config */
  path?: string
  env: NodeJS.ProcessEnv
  /** Default: the effective uid. */
  uid?: number
  /** Default: os.homedir(). */
  home?: string
}

/**
 * Where the config lives: --config, else $IPMOVE_CONFIG (both must exist; /dev/null
 * means none), else /etc/ipmove/ipmove.conf for root, else the XDG place.
 */
export function configPath(options: ConfigOptions): {
  path: string
  explicit: boolean
} {
  const explicit = options.path || options.env.IPMOVE_CONFIG
  if (explicit) return { path: explicit, explicit: true }
  const uid = options.uid ?? process.geteuid?.()
  if (uid === 0) return { path: '/etc/ipmove/ipmove.conf', explicit: false }
  const base = options.env.XDG_CONFIG_HOME || join(options.home ?? homedir(), '.config')
  return { path: join(base, 'ipmove', 'ipmove.conf'), explicit: false }
}

/**
 * Load ipmove's config file (INI, see the README): top-level defaults, `[ovh]`
 * provider settings, `[ip.NAME]` entries. Every value is validated and unknown
 * sections or keys are refused (exit 2), naming file, section and key. A file
 * holding secrets must be private (chmod 600).
 */
export function loadConfig(options: ConfigOptions): IpmoveConfig {
  const { path, explicit } = configPath(options)
  const watch = { sections: new Map<string, Record<string, string>>(), lines: new Map<string, number>() }
  const config: IpmoveConfig = { defaults: {}, providers: {}, ips: {}, watch }
  // The usual way to say "no config file" (IPMOVE_CONFIG=/dev/null), whatever files exist.
  if (path === '/dev/null') return config
  const file = readSettingsFile(path)
  if (!file) {
    if (explicit) throw usageError(`config file ${path} does not exist`)
    return config
  }
  config.path = path
  const data = parseIni(file.text, path)

  // Secrets first: a file that is not private is refused whatever else is wrong in it.
  let secret = false
  for (const provider of PROVIDERS) {
    const section = data.sections.get(provider.name)
    for (const key of provider.settings.secrets) {
      if (section?.[key]) {
        secret = true
        registerSecret(section[key])
      }
    }
  }
  if (secret) assertPrivate(file)

  config.defaults = readSettings(data.globals, path, '')
  for (const [section, values] of data.sections) {
    if (section === 'watch' || section.startsWith('watch.')) {
      watch.sections.set(section, values)
    } else if (section.startsWith('ip.')) {
      const name = section.slice(3)
      validateName(`${path}: entry name`, name)
      if (looksLikeIp(name))
        throw usageError(`${path}: [${section}]: an entry name must not be an IP address`)
      if (!values.ip) throw usageError(`${path}: [${section}] needs an ip = ADDRESS line`)
      const { ip, ...rest } = values
      config.ips[name] = { ...readSettings(rest, path, section), ip: parseIp(ip, `${path} [${section}] ip`) }
    } else if (PROVIDER_NAMES.includes(section)) {
      const schema = providerNamed(section).settings
      for (const [key, value] of Object.entries(values)) {
        if (!schema.keys.includes(key)) throw unknownKey(path, section, key, schema.keys)
        schema.check(key, value, `${path} [${section}] ${key}`)
      }
      config.providers[section] = { ...values }
    } else {
      throw usageError(
        `${path}: unknown section [${section}] (known: ${PROVIDER_NAMES.map((p) => `[${p}]`).join(', ')}, [ip.NAME], [watch], [watch.NAME])`,
      )
    }
  }
  if (watch.sections.size > 0) watch.lines = iniLines(file.text)
  return config
}

function unknownKey(path: string, section: string, key: string, known: readonly string[]): IpmoveError {
  const where = section ? `[${section}]` : 'the top (before any section)'
  return usageError(`${path}: unknown key ${shownKey(key)} in ${where} (known: ${known.join(', ')})`)
}

function readSettings(values: Record<string, string>, path: string, section: string): Settings {
  const settings: Settings = {}
  const prefix = section ? `${path} [${section}]` : path
  for (const [key, value] of Object.entries(values)) {
    const where = `${prefix} ${key}`
    if (Object.hasOwn(NAMED_SETTINGS, key)) {
      settings[key as NamedSetting] = NAMED_SETTINGS[key as NamedSetting](value, where)
    } else if (key === 'provider') {
      try {
        settings.provider = providerNamed(value).name
      } catch (error) {
        if (error instanceof IpmoveError) throw usageError(`${where}: ${error.message}`)
        throw error
      }
    } else if (key === 'timeout') {
      settings.timeoutMs = parseSeconds(where, value)
    } else {
      throw unknownKey(path, section, key, section ? ['ip', ...SETTING_KEYS] : SETTING_KEYS)
    }
  }
  return settings
}

function looksLikeIp(value: string): boolean {
  try {
    parseIp(value)
    return true
  } catch {
    return false
  }
}

/**
 * The target of a command: flags > the named entry > the config's defaults.
 * `ip` is an address or block, or the NAME of an `[ip.NAME]` entry; an address
 * that exactly one entry holds picks that entry's settings too.
 */
export function resolveTarget(
  config: IpmoveConfig,
  flags: { ip?: string } & Settings,
): { ip?: IpBlock; name?: string } & Settings {
  const { ip: ipText, ...given } = flags
  let name: string | undefined
  let ip: IpBlock | undefined
  if (ipText === undefined) {
    // The provider will find the IP by its id (--ip-id); only defaults apply.
  } else if (Object.hasOwn(config.ips, ipText)) {
    name = ipText
    ip = config.ips[ipText]!.ip
  } else if (looksLikeIp(ipText)) {
    const parsed = parseIp(ipText)
    ip = parsed
    const holders = Object.keys(config.ips).filter((n) => config.ips[n]!.ip.block === parsed.block)
    if (holders.length > 1) {
      throw usageError(
        `--ip ${parsed.block} is in several entries of ${config.path} (${holders.join(', ')}); pass a name`,
      )
    }
    name = holders[0]
  } else if (/^[A-Za-z]/.test(ipText) && !ipText.includes(':')) {
    validateName('--ip', ipText)
    const where = config.path ? `no [ip.${ipText}] entry in ${config.path}` : 'no config file'
    throw usageError(`--ip ${shown(ipText)} is not an IP address or block, and there is ${where}`)
  } else {
    ip = parseIp(ipText)
  }

  const checked: Settings = {}
  if (given.provider !== undefined) checked.provider = providerNamed(given.provider).name
  for (const key of Object.keys(NAMED_SETTINGS) as NamedSetting[]) {
    const value = given[key]
    if (value !== undefined) checked[key] = NAMED_SETTINGS[key](value, `--${key}`)
  }
  if (given.timeoutMs !== undefined) {
    if (!Number.isFinite(given.timeoutMs) || given.timeoutMs <= 0)
      throw usageError('--timeout must be positive')
    checked.timeoutMs = given.timeoutMs
  }

  const entry = name ? config.ips[name] : undefined
  const merged: Settings = {}
  for (const key of ['provider', 'project', 'instance', 'interface', 'timeoutMs', 'label'] as const) {
    const value = checked[key] ?? entry?.[key] ?? config.defaults[key]
    if (value !== undefined) (merged as Record<string, unknown>)[key] = value
  }
  if (merged.interface && merged.label && merged.interface.length + 1 + merged.label.length > 15) {
    throw usageError(
      `label ${merged.interface}:${merged.label} is longer than the 15 characters an interface label may have`,
    )
  }
  return { ...(ip ? { ip } : {}), ...(name ? { name } : {}), ...merged }
}
