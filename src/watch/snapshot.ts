/**
 * What the running daemon knows, as plain data: the daemon fills one
 * `DaemonSnapshot` on request, and everything that reports reads it (the
 * control socket's `status`, `ipmove status`, the Prometheus endpoint, the
 * systemd STATUS= line). Only JSON types (no Date, Map or undefined inside
 * arrays), so the same object crosses the socket unchanged.
 *
 * Times are epoch milliseconds (src/probes/probe.ts `now()`, comparable with
 * Date.now() in another process); `null` means "never" or "not known".
 */
import type { CheckKind, Health } from '../health.js'
import type { SourceStatus, Wish } from './sources/source.js'

/** Bump when a field changes meaning or goes away; adding a field keeps the version. */
export const SNAPSHOT_VERSION = 1

/** `stopped`: anti-flap stop or a daemon shutting down; the node claims nothing. */
export type Role = 'master' | 'backup' | 'fault' | 'stopped'

export const ROLES: readonly Role[] = ['master', 'backup', 'fault', 'stopped']

/** Where the provider's API routes the IP, as last read. */
export interface HolderSnapshot {
  /** The provider's id of the holder (instance, server, ENI), or null when routed nowhere. */
  id: string | null
  /** The name people see, when the API gives one. */
  name: string | null
  /** Whether that holder is this node. */
  isSelf: boolean
  /** When the API last answered; null before the first read. */
  readAt: number | null
  /** Why the last read failed, when it did (the holder above is then the one read before). */
  error: string | null
}

/** One probe's last answer. */
export interface ProbeSnapshot {
  /** `icmp 192.0.2.11`, `http https://203.0.113.5/`. */
  label: string
  ok: boolean | null
  at: number | null
  ms: number | null
  /** `rtt 0.05 ms`, `HTTP 503`, `exit 1: …`. */
  detail: string | null
}

/** One of the three questions (peer alive? this node healthy? the IP answering as clients see it?). */
export interface CheckSnapshot {
  kind: CheckKind
  health: Health
  lastSuccessAt: number | null
  lastFailureAt: number | null
  /** One line: the probe and its detail (`icmp 192.0.2.11: no answer within 250 ms`). */
  lastFailure: string | null
  probes: ProbeSnapshot[]
}

export interface AntiFlapSnapshot {
  /** More than `maxMoves` moves within `windowMs`: the node stopped claiming. */
  stopped: boolean
  /** When the stop lifts by itself (the window passed); null when not stopped. */
  stoppedUntil: number | null
  movesInWindow: number
  maxMoves: number
  windowMs: number
  /** No move before this time (minimum dwell after the last one); null when free to move. */
  dwellUntil: number | null
}

/**
 * The steps of one takeover, each when it happened (null: not reached, or not
 * applicable: a node that yields adds no alias). Ordered as they happen.
 */
export interface FailoverTimeline {
  peerDeclaredDead: number | null
  decision: number | null
  apiAccepted: number | null
  apiDone: number | null
  aliasAdded: number | null
  announced: number | null
  /** The witness answered through the failover IP from here: clients reach it again. */
  witnessAnswers: number | null
}

export const TIMELINE_STEPS = [
  'peerDeclaredDead',
  'decision',
  'apiAccepted',
  'apiDone',
  'aliasAdded',
  'announced',
  'witnessAnswers',
] as const satisfies readonly (keyof FailoverTimeline)[]

const STEP_LABELS: Record<keyof FailoverTimeline, string> = {
  peerDeclaredDead: 'peer dead',
  decision: 'decision',
  apiAccepted: 'API accepted',
  apiDone: 'API done',
  aliasAdded: 'alias added',
  announced: 'announced',
  witnessAnswers: 'witness answers',
}

export interface TransitionSnapshot {
  at: number
  from: Role
  to: Role
  /** Why, in one line: `peer dead (no answer for 700 ms)`, `own health down: link eth0`. */
  reason: string
  /** For a move of the IP (claim or yield); null for a role change that moved nothing. */
  timeline: FailoverTimeline | null
  /** What went wrong, if the move did not complete (the role above is still the one taken). */
  error: string | null
}

export interface SourceSnapshot {
  /** `keepalived-fifo`, `command`, … as in the config. */
  kind: string
  wish: Wish
  /** The source's last answer in one line, and when it came; null before the first. */
  why: string | null
  at: number | null
  /** The source's own state as of the snapshot, when it shows one (an etcd lease: holder, revision, TTL left). */
  status: SourceStatus | null
}

export interface IpSnapshot {
  /** The name in the config. */
  name: string
  /** The failover IP or block, `203.0.113.10` or `2001:db8::/64`. */
  address: string
  provider: string
  role: Role
  /** Since when the role holds. */
  roleSince: number
  holder: HolderSnapshot
  /**
   * Whether this host's interface carries the address now; null where hosts carry
   * nothing because the cloud maps the IP onto an address they already have (EC2, DigitalOcean).
   */
  carried: boolean | null
  checks: Record<CheckKind, CheckSnapshot>
  /** The source the IP follows (src/watch/sources/); null when its own probes decide. */
  source: SourceSnapshot | null
  antiFlap: AntiFlapSnapshot
  /** The most recent last, at most MAX_TRANSITIONS (the daemon keeps a bounded list). */
  transitions: TransitionSnapshot[]
  /** Every role change since the daemon started, for a counter that only grows. */
  transitionsTotal: number
}

export interface DaemonSnapshot {
  version: typeof SNAPSHOT_VERSION
  pid: number
  startedAt: number
  /** When this snapshot was taken. */
  takenAt: number
  configPath: string
  ips: IpSnapshot[]
}

/** How many transitions a snapshot carries per IP. */
export const MAX_TRANSITIONS = 10

/** `1.2 s`, `350 ms`, `3 min 5 s`, `2 h 1 min`. */
export function formatDuration(ms: number): string {
  const abs = Math.abs(ms)
  if (abs < 1000) return `${Math.round(ms)} ms`
  if (abs < 60_000) return `${(ms / 1000).toFixed(abs < 10_000 ? 1 : 0)} s`
  const s = Math.round(abs / 1000)
  const sign = ms < 0 ? '-' : ''
  if (s < 3600) return `${sign}${Math.floor(s / 60)} min ${s % 60} s`
  return `${sign}${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
}

/** `3.2 s ago`, or `never`. */
function ago(at: number | null, takenAt: number): string {
  return at === null ? 'never' : `${formatDuration(Math.max(0, takenAt - at))} ago`
}

/** `peer dead → decision +2 ms → API accepted +40 ms → …`, each step relative to the first one reached. */
export function formatTimeline(timeline: FailoverTimeline): string {
  const reached = TIMELINE_STEPS.filter((step) => timeline[step] !== null)
  const first = reached[0]
  if (first === undefined) return 'no step reached'
  const origin = timeline[first] as number
  return reached
    .map((step, i) =>
      i === 0
        ? STEP_LABELS[step]
        : `${STEP_LABELS[step]} +${formatDuration((timeline[step] as number) - origin)}`,
    )
    .join(' → ')
}

function holderLine(ip: IpSnapshot, takenAt: number): string {
  const h = ip.holder
  const who = h.id === null ? 'nowhere' : `${h.name && h.name !== h.id ? `${h.name} (${h.id})` : h.id}`
  const self = h.id !== null && h.isSelf ? ', this node' : ''
  const error = h.error ? `; last read failed: ${h.error}` : ''
  return `  API routes it to ${who}${self} (read ${ago(h.readAt, takenAt)})${error}`
}

function checkLine(check: CheckSnapshot, takenAt: number): string {
  if (check.probes.length === 0) return `  ${check.kind}: no probes`
  const failure =
    check.lastFailure === null
      ? ''
      : `; last failure ${ago(check.lastFailureAt, takenAt)}: ${check.lastFailure}`
  return `  ${check.kind}: ${check.health}, last success ${ago(check.lastSuccessAt, takenAt)}${failure}`
}

function sourceLine(source: SourceSnapshot, takenAt: number): string {
  const said = source.why === null ? 'no answer yet' : `${source.why} (${ago(source.at, takenAt)})`
  const line = `  source ${source.kind}: ${source.wish}, ${said}`
  return source.status ? `${line}\n    ${source.status.line}` : line
}

function antiFlapLine(name: string, flap: AntiFlapSnapshot, takenAt: number): string | undefined {
  if (flap.stopped) {
    const until =
      flap.stoppedUntil === null ? '' : `, lifts in ${formatDuration(flap.stoppedUntil - takenAt)}`
    return `  anti-flap: STOPPED claiming after ${flap.movesInWindow} moves in ${formatDuration(flap.windowMs)}${until}; clear it: ipmove status --watch --clear-flap ${name}`
  }
  if (flap.dwellUntil !== null && flap.dwellUntil > takenAt) {
    return `  anti-flap: dwelling, no move for ${formatDuration(flap.dwellUntil - takenAt)}`
  }
  return undefined
}

/** The snapshot as lines for a terminal or a log, one block per IP. */
export function renderSnapshot(snapshot: DaemonSnapshot): string[] {
  const { takenAt } = snapshot
  const lines = [
    `ipmove watch (pid ${snapshot.pid}), up ${formatDuration(takenAt - snapshot.startedAt)}, config ${snapshot.configPath}`,
  ]
  for (const ip of snapshot.ips) {
    const carried =
      ip.carried === null
        ? 'mapped by the cloud (no address on hosts)'
        : ip.carried
          ? 'carried here'
          : 'not carried here'
    lines.push(
      `${ip.name} ${ip.address} (${ip.provider}): ${ip.role} for ${formatDuration(takenAt - ip.roleSince)}, ${carried}`,
    )
    lines.push(holderLine(ip, takenAt))
    if (ip.source) lines.push(sourceLine(ip.source, takenAt))
    else for (const check of Object.values(ip.checks)) lines.push(checkLine(check, takenAt))
    const flap = antiFlapLine(ip.name, ip.antiFlap, takenAt)
    if (flap) lines.push(flap)
    for (const t of ip.transitions) {
      const error = t.error ? ` (failed: ${t.error})` : ''
      lines.push(`  ${ago(t.at, takenAt)}: ${t.from} → ${t.to}: ${t.reason}${error}`)
      if (t.timeline) lines.push(`    ${formatTimeline(t.timeline)}`)
    }
  }
  return lines
}

/** A one-line summary for systemd's STATUS= and the like: `web 203.0.113.10 master; db 198.51.100.7 backup`. */
export function summarizeSnapshot(snapshot: DaemonSnapshot): string {
  if (snapshot.ips.length === 0) return 'no failover IPs'
  return snapshot.ips
    .map((ip) => `${ip.name} ${ip.role}${ip.antiFlap.stopped ? ' (anti-flap stop)' : ''}`)
    .join('; ')
}
