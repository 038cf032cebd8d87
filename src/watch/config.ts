/**
 * What `ipmove watch` watches, from the same ipmove.conf every command reads:
 *
 *   [ip.web]                   the IP, its provider and this node's identity, as for `move`
 *   [watch.web]                watch it: priority, preempt, dwell, anti-flap, policies, timings;
 *                              source = probes (default) or an engine to follow (src/watch/sources/)
 *   [watch.web.probe.LABEL]    one probe: check = peer|self|witness, kind = icmp|tcp|http|command|link
 *   [watch.web.action.LABEL]   argv run on a transition: on = master|backup|fault
 *
 * `[watch.NAME]` builds on `[ip.NAME]`, so `ipmove move --ip web` and `ipmove
 * status --ip web` act on the very IP the daemon watches, with one file and
 * one meaning of --config. Every error names file, line and what was
 * expected; the whole file is checked before anything starts.
 */
import { DEFAULT_PROVIDER, providerNamed } from '../../providers/index.js'
import { type IpmoveConfig, resolveTarget } from '../config.js'
import { usageError } from '../errors.js'
import {
  Check,
  type CheckKind,
  FAST_PROFILE,
  HEALTH_DEFAULTS,
  type HealthTimings,
  PROBE_DEFAULTS,
} from '../health.js'
import { createProbe, type ProbeSpec } from '../probes/index.js'
import { type IpBlock, shown, validateInterface, validateName } from '../validate.js'
import { type MetricsAddress, parseMetricsAddress } from './metrics.js'
import { SectionReader } from './section.js'
import { PROBES, SOURCE_KINDS, SOURCES, sourceNamed } from './sources/index.js'
import type { SourceSettings } from './sources/source.js'

export type Role = 'master' | 'backup' | 'fault'
export const ROLES: readonly Role[] = ['master', 'backup', 'fault']
export const CHECK_KINDS: readonly CheckKind[] = ['peer', 'self', 'witness']

export interface WatchedProbe {
  /** The LABEL of `[watch.NAME.probe.LABEL]`. */
  name: string
  check: CheckKind
  spec: ProbeSpec
}

export interface WatchAction {
  /** The LABEL of `[watch.NAME.action.LABEL]`. */
  name: string
  on: Role
  argv: string[]
  timeoutMs: number
}

/** The rules the decision applies (src/watch/decide.ts); plain numbers, no I/O. */
export interface Policy {
  priority: number
  /** The peer's priority, as its own config says: priorities are not exchanged on the wire. */
  peerPriority: number
  /** Take the IP back from a lower-priority peer once healthy for preemptDelayMs (auto_failback). */
  preempt: boolean
  preemptDelayMs: number
  /** The least time between two claims by this node. */
  dwellMs: number
  /** More than maxMoves claims within moveWindowMs: stop claiming until the window passes. */
  maxMoves: number
  moveWindowMs: number
  /** What a master does while the API cannot be read: keep the address, or drop it. */
  apiUnreachable: 'hold' | 'release'
}

/** Who says whether this node should hold the IP: `probes` (settings empty) or a source of ./sources/. */
export interface SourceChoice {
  kind: string
  settings: SourceSettings
}

export interface WatchedIp {
  name: string
  ip: IpBlock
  provider: string
  providerSettings: Record<string, string>
  project?: string
  /** This node, as the API names it; undefined: the provider finds this host (metadata). */
  instance?: string
  interface: string
  label?: string
  /** The peers' names as the API reports holders, for the log. */
  peers: string[]
  policy: Policy
  /** How often the API's holder is read (besides after every transition). */
  apiIntervalMs: number
  /** Bounds every claim. */
  convergeTimeoutMs: number
  /** On SIGTERM, drop the address before exiting (the API is left as it is). */
  releaseOnStop: boolean
  source: SourceChoice
  timings: Record<CheckKind, HealthTimings>
  /** Empty unless the source is `probes`. */
  probes: WatchedProbe[]
  actions: WatchAction[]
}

/** The whole watch config: the daemon's own settings (`[watch]`) and the IPs. */
export interface WatchConfig {
  path: string
  /** `[watch] metrics = ADDRESS:PORT`: serve Prometheus metrics there. */
  metrics?: MetricsAddress
  ips: WatchedIp[]
}

export const WATCH_DEFAULTS = {
  priority: 100,
  preemptDelayMs: 5000,
  dwellMs: 10_000,
  maxMoves: 3,
  moveWindowMs: 300_000,
  apiIntervalMs: 10_000,
  convergeTimeoutMs: 30_000,
  actionTimeoutMs: 30_000,
} as const

/**
 * The brakes' defaults for an IP that follows a source: the engine has its own
 * hysteresis, so no dwell (it would only delay a failover), and re-asserts are
 * paced by api-interval; the anti-flap stop still bounds a flapping engine or a
 * lasting dual master.
 */
export const FOLLOW_DEFAULTS = { dwellMs: 0, maxMoves: 10, moveWindowMs: 60_000 } as const

const TIMING_KEYS = ['initdead', 'warntime', 'deadtime', 'rise'] as const
/** Keys only the probe decider reads: refused with another source, which decides instead. */
const PROBE_ONLY_KEYS = [
  'priority',
  'peer-priority',
  'preempt',
  'preempt-delay',
  'profile',
  ...CHECK_KINDS.flatMap((check) => TIMING_KEYS.map((t) => `${check}-${t}`)),
]
const WATCH_KEYS = [
  ...PROBE_ONLY_KEYS,
  'peer',
  'dwell',
  'max-moves',
  'move-window',
  'api-unreachable',
  'api-interval',
  'converge-timeout',
  'release-on-stop',
  'source',
  ...SOURCES.flatMap((s) => s.keys),
]
const PROBE_KEYS: Record<ProbeSpec['kind'], readonly string[]> = {
  icmp: ['target', 'source'],
  tcp: ['host', 'port', 'source'],
  http: ['url', 'status', 'body', 'host', 'insecure'],
  command: ['argv'],
  link: ['interface'],
}
const ACTION_KEYS = ['on', 'argv', 'timeout']

/**
 * Every `[watch.NAME]` of the file, fully validated: probes are built (and
 * dropped) and checks assembled, so whatever would fail at start fails here.
 */
export function parseWatchConfig(config: IpmoveConfig): WatchConfig {
  const path = config.path ?? '(no config file)'
  const { sections, lines } = config.watch ?? { sections: new Map(), lines: new Map() }
  const reader = (section: string) => new SectionReader(path, lines, section, sections.get(section) ?? {})
  const names = new Set<string>()
  const probesOf = new Map<string, string[]>()
  const actionsOf = new Map<string, string[]>()
  let metrics: MetricsAddress | undefined
  for (const section of sections.keys()) {
    if (section === 'watch') {
      const daemon = reader(section)
      const address = daemon.get('metrics')
      if (address !== undefined)
        metrics = daemon.wrap('metrics', () => parseMetricsAddress(address, 'the value'))
      daemon.finish(['metrics'])
      continue
    }
    const parts = /^watch\.([^.]+)(?:\.(probe|action)\.([^.]+))?$/.exec(section)
    if (!parts) {
      throw reader(section).fail(
        undefined,
        'expected a section [watch], [watch.NAME], [watch.NAME.probe.LABEL] or [watch.NAME.action.LABEL]',
      )
    }
    const [, name, sub, label] = parts as unknown as [string, string, string?, string?]
    reader(section).wrap(undefined, () => validateName('the name', name))
    if (!sub) names.add(name)
    else {
      reader(section).wrap(undefined, () => validateName('the label', label!))
      const into = sub === 'probe' ? probesOf : actionsOf
      into.set(name, [...(into.get(name) ?? []), section])
    }
  }
  for (const name of [...probesOf.keys(), ...actionsOf.keys()]) {
    if (!names.has(name)) {
      const section = (probesOf.get(name) ?? actionsOf.get(name))![0]!
      throw reader(section).fail(undefined, `there is no [watch.${name}] section for it`)
    }
  }
  if (names.size === 0) throw usageError(`${path}: no [watch.NAME] section: nothing to watch`)
  const ips = [...names].map((name) =>
    parseOne(config, name, reader, probesOf.get(name) ?? [], actionsOf.get(name) ?? []),
  )
  return { path, ...(metrics ? { metrics } : {}), ips }
}

function parseOne(
  config: IpmoveConfig,
  name: string,
  reader: (section: string) => SectionReader,
  probeSections: string[],
  actionSections: string[],
): WatchedIp {
  const main = reader(`watch.${name}`)
  if (!Object.hasOwn(config.ips, name)) {
    throw main.fail(undefined, `expected an [ip.${name}] section with the IP and its provider settings`)
  }
  const target = resolveTarget(config, { ip: name })
  const provider = providerNamed(target.provider ?? DEFAULT_PROVIDER).name
  if (!target.interface) {
    throw main.fail(
      undefined,
      `[ip.${name}] (or the top of the file) needs interface = NAME: the address goes there`,
    )
  }
  const fast = main.oneOf('profile', ['default', 'fast'] as const, 'default') === 'fast'
  const timings = {} as Record<CheckKind, HealthTimings>
  for (const check of CHECK_KINDS) {
    const base = fast && check !== 'self' ? FAST_PROFILE.health : HEALTH_DEFAULTS[check]
    timings[check] = {
      initdeadMs: main.seconds(`${check}-initdead`, base.initdeadMs),
      warntimeMs: main.seconds(`${check}-warntime`, base.warntimeMs),
      deadtimeMs: main.seconds(`${check}-deadtime`, base.deadtimeMs),
      rise: main.integer(`${check}-rise`, 1, 100, base.rise),
    }
  }
  const source = parseSource(main)
  const brakes = source.kind === PROBES ? WATCH_DEFAULTS : FOLLOW_DEFAULTS
  if (source.kind !== PROBES) {
    const shared = sourceNamed(source.kind)?.sharedKeys ?? []
    const probeOnly = PROBE_ONLY_KEYS.find((key) => !shared.includes(key) && main.get(key) !== undefined)
    if (probeOnly) {
      throw main.fail(probeOnly, `is for source = probes; with source = ${source.kind} the source decides`)
    }
  }
  const policy: Policy = {
    priority: main.integer('priority', 1, 255, WATCH_DEFAULTS.priority),
    peerPriority: main.integer('peer-priority', 1, 255, WATCH_DEFAULTS.priority),
    preempt: main.flag('preempt', false),
    preemptDelayMs: main.seconds('preempt-delay', WATCH_DEFAULTS.preemptDelayMs),
    dwellMs: main.seconds('dwell', brakes.dwellMs),
    maxMoves: main.integer('max-moves', 1, 1000, brakes.maxMoves),
    moveWindowMs: main.seconds('move-window', brakes.moveWindowMs),
    apiUnreachable: main.oneOf('api-unreachable', ['hold', 'release'] as const, 'hold'),
  }
  const peers = (main.get('peer') ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)
  for (const peer of peers) main.wrap('peer', () => validateName('a peer', peer))
  if (source.kind !== PROBES && probeSections.length > 0) {
    throw reader(probeSections[0]!).fail(
      undefined,
      `probes decide only with source = probes; [watch.${name}] follows source = ${source.kind}`,
    )
  }
  const watched: WatchedIp = {
    name,
    ip: target.ip!,
    provider,
    providerSettings: config.providers[provider] ?? {},
    project: target.project,
    instance: target.instance,
    interface: target.interface,
    label: target.label,
    peers,
    policy,
    apiIntervalMs: main.seconds('api-interval', WATCH_DEFAULTS.apiIntervalMs),
    convergeTimeoutMs: main.seconds('converge-timeout', WATCH_DEFAULTS.convergeTimeoutMs),
    // A lease holder that stops hands the lease over: its address must go with it.
    releaseOnStop: main.flag('release-on-stop', source.kind === 'etcd'),
    source,
    timings,
    probes: probeSections.map((s) => parseProbe(reader(s), fast, target.interface!)),
    actions: actionSections.map((s) => parseAction(reader(s))),
  }
  main.finish(WATCH_KEYS)
  if (source.kind !== PROBES) return watched
  if (!watched.probes.some((p) => p.check === 'self')) {
    // Without a self probe, this node's health is its interface's link.
    watched.probes.push({
      name: 'link',
      check: 'self',
      spec: { kind: 'link', interface: target.interface, ...PROBE_DEFAULTS.link },
    })
  }
  if (!watched.probes.some((p) => p.check === 'peer')) {
    throw main.fail(undefined, `needs at least one [watch.${name}.probe.LABEL] with check = peer`)
  }
  for (const check of CHECK_KINDS) {
    const own = watched.probes.filter((p) => p.check === check)
    if (own.length === 0) continue
    const built = own.map((p) => ({ ...p, probe: createProbe(p.spec) }))
    main.wrap(
      `${check}-deadtime`,
      () =>
        new Check(
          check,
          built.map((b) => b.probe),
          timings[check],
        ),
    )
  }
  return watched
}

/** `source = KIND` and that source's own keys. */
function parseSource(main: SectionReader): SourceChoice {
  const kind = main.oneOf('source', SOURCE_KINDS, PROBES)
  const descriptor = sourceNamed(kind)
  return { kind, settings: descriptor ? descriptor.parse(main) : {} }
}

function parseProbe(r: SectionReader, fast: boolean, watchedInterface: string): WatchedProbe {
  const name = r.section.split('.').at(-1)!
  const check = r.oneOf('check', CHECK_KINDS)
  const kind = r.oneOf('kind', Object.keys(PROBE_KEYS) as ProbeSpec['kind'][])
  const defaults = fast && kind === 'icmp' ? FAST_PROFILE.icmp : PROBE_DEFAULTS[kind]
  const timing = {
    intervalMs: r.seconds('interval', defaults.intervalMs),
    timeoutMs: r.seconds('timeout', defaults.timeoutMs),
  }
  const optional = (key: string) => {
    const value = r.get(key)
    return value === undefined ? {} : { [key]: value }
  }
  let spec: ProbeSpec
  switch (kind) {
    case 'icmp':
      spec = { kind, ...timing, target: r.need('target', 'an IP address'), ...optional('source') }
      break
    case 'tcp':
      spec = {
        kind,
        ...timing,
        host: r.need('host', 'an address'),
        port: r.integer('port', 1, 65535, 0),
        ...optional('source'),
      }
      if (spec.port === 0) throw r.fail(undefined, 'needs port = 1-65535')
      break
    case 'http': {
      const status = r.get('status')
      spec = {
        kind,
        ...timing,
        url: r.need('url', 'an http:// or https:// URL'),
        ...optional('body'),
        ...optional('host'),
        insecure: r.flag('insecure', false),
      }
      if (status !== undefined) {
        const codes = status.split(',').map((c) => c.trim())
        if (!codes.every((c) => /^[1-5]\d\d$/.test(c))) {
          throw r.fail('status', `expected HTTP status codes separated by commas, got ${shown(status)}`)
        }
        spec.status = codes.map(Number)
      }
      break
    }
    case 'command':
      spec = { kind, ...timing, argv: r.argv('argv') }
      break
    case 'link': {
      const iface = r.get('interface') ?? watchedInterface
      spec = { kind, ...timing, interface: r.wrap('interface', () => validateInterface(iface, 'interface')) }
      break
    }
  }
  r.finish(['check', 'kind', 'interval', 'timeout', ...PROBE_KEYS[kind]])
  r.wrap(undefined, () => createProbe(spec))
  return { name, check, spec }
}

function parseAction(r: SectionReader): WatchAction {
  const action: WatchAction = {
    name: r.section.split('.').at(-1)!,
    on: r.oneOf('on', ROLES),
    argv: r.argv('argv'),
    timeoutMs: r.seconds('timeout', WATCH_DEFAULTS.actionTimeoutMs),
  }
  r.finish(ACTION_KEYS)
  return action
}
