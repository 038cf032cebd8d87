import type { AddAliasResult } from '../alias/service.js'
import { type ClaimResult, claim } from '../core/converge.js'
import { describeHolder, type Holder } from '../core/provider.js'
import { type Outcome, StoodDown } from '../core/reconcile.js'
import { isSuperseded, type StandDown, withIpLock, withLatestIntent } from '../lock.js'
import type { Logger } from '../output.js'
import { type Prepared, prepare, type TargetOptions } from './target.js'

export interface MoveOptions extends TargetOptions {
  wait: boolean
  dryRun: boolean
  /** Pauses between polls; the default suits real APIs, tests shorten it. */
  pollMs?: { first: number; max: number }
}

export interface MoveResult {
  ip: string
  provider: string
  kind: string
  project?: Holder
  from: Holder | null
  to: Holder
  outcome: Outcome
  changed: boolean
  /** What was done on this host's interface, with --interface. */
  alias?: AddAliasResult
  durationMs: number
  /** API requests made, retries included. */
  requests: number
  /** Sequential round trips among them. */
  roundTrips: number
}

/**
 * A call that stood down because a newer call for the same IP arrived: while
 * it waited (it touched nothing), or, when the newer call wants something
 * else, while it worked (it stopped before writing, or after its write was
 * accepted, leaving the API's operation to run: `changed` and `to` say so).
 */
export interface SupersededResult {
  ip: string
  outcome: 'superseded'
  changed: boolean
  /** The holder our accepted (or possibly landed) write asked for, when there was one. */
  to?: Holder
  durationMs: number
}

/**
 * `ipmove move`: the API's holder becomes the desired one, exactly once, within
 * the timeout, unless a newer move or release of the IP arrives on this host
 * while this one waits for the lock (then it is superseded).
 */
export async function moveIp(options: MoveOptions, log: Logger): Promise<MoveResult | SupersededResult> {
  const started = Date.now()
  // A dry run reaches the provider too: on AWS it sends every write with EC2's DryRun.
  const dryRun: Record<string, string> = options.dryRun ? { 'dry-run': 'true' } : {}
  const prepared = await prepare(
    { ...options, providerSettings: { ...options.providerSettings, ...dryRun } },
    log,
  )
  const signal = AbortSignal.timeout(prepared.timeoutMs)
  const asked = prepared.ip?.block ?? `the IP with id ${prepared.ipId}`
  try {
    // One move or release of an IP at a time on this host, the latest intent
    // winning; the wait counts toward --timeout. A dry run states no intent.
    const lock = { env: options.env ?? process.env, signal, log }
    const result = await (options.dryRun
      ? withIpLock(asked, lock, () => moveLocked(prepared, options, log, { started, signal }))
      : withLatestIntent(asked, { ...lock, intent: moveIntent(prepared) }, (standDown) =>
          moveLocked(prepared, options, log, { started, signal, standDown }),
        ))
    if (!isSuperseded(result)) return result
    return { ip: asked, outcome: 'superseded', changed: false, durationMs: Date.now() - started }
  } finally {
    prepared.provider.close()
  }
}

/**
 * What this move wants, as the lock compares it with newer calls' (a newer
 * call wanting the same lets this one finish): the target as given, and the
 * interface that is to carry the address.
 */
function moveIntent(prepared: Prepared): string {
  const to = prepared.instance ?? 'this host'
  return prepared.interface ? `move to ${to} on ${prepared.interface}` : `move to ${to}`
}

/** The move itself, under this host's lock on the IP. */
async function moveLocked(
  prepared: Prepared,
  options: MoveOptions,
  log: Logger,
  { started, signal, standDown }: { started: number; signal: AbortSignal; standDown?: StandDown },
): Promise<MoveResult | SupersededResult> {
  const { provider } = prepared
  let claimed: ClaimResult
  try {
    claimed = await claim(provider, {
      find: { ip: prepared.ip, ipId: prepared.ipId, project: prepared.project, instance: prepared.instance },
      carry: prepared.interface ? { interface: prepared.interface, label: prepared.label } : undefined,
      wait: options.wait,
      dryRun: options.dryRun,
      signal,
      pollMs: options.pollMs,
      stop: standDown?.signal,
      log,
    })
  } catch (error) {
    if (!(error instanceof StoodDown)) throw error
    return stoodDown(prepared, error, standDown?.newer, started, log)
  }
  const { located, alias } = claimed
  const durationMs = Date.now() - started
  log.info(summary(located.ip.block, claimed.outcome, claimed.from, claimed.to, durationMs))
  return {
    ip: located.ip.block,
    provider: provider.name,
    kind: located.kind,
    project: located.scope,
    from: claimed.from,
    to: claimed.to,
    outcome: claimed.outcome,
    changed: claimed.writes > 0,
    ...(alias ? { alias } : {}),
    durationMs,
    requests: provider.requests,
    roundTrips: provider.roundTrips,
  }
}

/** A newer call wanted something else: say what was left behind, and give way. */
function stoodDown(
  prepared: Prepared,
  stood: StoodDown,
  newer: string | undefined,
  started: number,
  log: Logger,
): SupersededResult {
  const ip = prepared.ip?.block ?? `the IP with id ${prepared.ipId}`
  const target = stood.wrote ? stood.to : undefined
  const api = !stood.state
    ? 'was not read'
    : stood.state.pending
      ? 'is still working on it'
      : `now routes it to ${describeHolder(stood.state.holder)}`
  const sent = stood.accepted ? 'was accepted' : 'may have reached the API (no answer)'
  const left = target
    ? `our move to ${describeHolder(target)} ${sent}; the API ${api}`
    : 'nothing was written'
  log.info(
    `a newer ipmove call for ${ip} (${newer ?? 'another intent'}) arrived: standing down (superseded); ${left}`,
  )
  return {
    ip,
    outcome: 'superseded',
    changed: stood.wrote,
    ...(target ? { to: target } : {}),
    durationMs: Date.now() - started,
  }
}

function summary(ip: string, outcome: Outcome, from: Holder | null, to: Holder, ms: number): string {
  const seconds = `${(ms / 1000).toFixed(1)} s`
  switch (outcome) {
    case 'in-place':
      return `${ip} is already on ${describeHolder(to)}: nothing to do (${seconds})`
    case 'moved':
      return `${ip} moved from ${describeHolder(from)} to ${describeHolder(to)} in ${seconds}`
    case 'accepted':
      return `${ip}: move to ${describeHolder(to)} accepted; not waiting (--no-wait) (${seconds})`
    case 'would-move':
      return `dry run: would move ${ip} from ${describeHolder(from)} to ${describeHolder(to)}; nothing written`
  }
}
