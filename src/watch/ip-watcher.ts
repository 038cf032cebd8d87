/**
 * One failover IP under watch: who says it should be held here (its three
 * checks and the probe decider, or a source it follows: src/watch/sources/),
 * its reads of the API, and the converge calls that carry the decision out.
 * Whatever the source, the API is read on every change and every
 * api-interval, and the decision claims or yields against it. Claims and
 * API reads run one at a time, in order, each bounded by a timeout; yields
 * (local, idempotent) have their own queue, so dropping the address never
 * waits behind an API that does not answer.
 */
import type { AddressDriver } from '../alias/driver.js'
import { pickDriver } from '../alias/platform.js'
import { claim, yieldIp } from '../core/converge.js'
import {
  describeHolder,
  type Holder,
  type IpState,
  type LocatedIp,
  type Provider,
  sameHolder,
} from '../core/provider.js'
import { StoodDown } from '../core/reconcile.js'
import { isKind, usageError } from '../errors.js'
import { Check, type CheckEvent, type CheckKind, runCheck } from '../health.js'
import type { Logger } from '../output.js'
import { createProbe, type ProbeResult } from '../probes/index.js'
import { now } from '../probes/probe.js'
import { runActions } from './actions.js'
import { CHECK_KINDS, type Role, type WatchedIp } from './config.js'
import { type ApiView, Decider, type Decision, type Facts } from './decide.js'
import { FollowDecider } from './follow.js'
import {
  type CheckSnapshot,
  type FailoverTimeline,
  type IpSnapshot,
  MAX_TRANSITIONS,
  type SourceSnapshot,
  type TransitionSnapshot,
} from './snapshot.js'
import type { HoldSource, SourceAnswer, SourceContext, SourceSettings, ToldWish } from './sources/source.js'

/** What the watcher needs from outside: the provider, and test seams. */
export interface WatcherContext {
  provider: Provider
  log: Logger
  /** The platform's driver by default. */
  driver?: AddressDriver
  /** Pauses between polls of the API during a claim; tests shorten them. */
  pollMs?: { first: number; max: number }
  /** False: no gratuitous ARP / NA (tests with an in-memory driver). */
  announce?: false
  /** Called after every role change. */
  onTransition?: () => void
  /** Builds the source the IP follows (loaded by the daemon); absent with `source = probes`. */
  createSource?: (settings: SourceSettings, context: SourceContext) => HoldSource
}

/** Bounds each read of the API's holder (a healthy API answers in well under a second). */
const READ_TIMEOUT_MS = 5000

export class IpWatcher {
  readonly decider: Decider
  private readonly checks = new Map<CheckKind, Check>()
  private readonly runners: Array<{ stop(): Promise<void> }> = []
  private readonly lastResults = new Map<string, ProbeResult>()
  /** Per check: the last failure of any of its probes, for status. */
  private readonly failures = new Map<CheckKind, { at: number; line: string }>()
  private readAt: number | null = null
  private roleSince = now()
  private transitionsTotal = 0
  /** The takeover being carried out: its steps so far. */
  private failover: FailoverTimeline | undefined
  /** A takeover whose witness has not answered from here yet. */
  private awaitingWitness: FailoverTimeline | undefined
  private readonly probeChecks = new Map<string, CheckKind>()
  private api: ApiView | undefined
  private holder: Holder | null | undefined
  private carried: boolean | undefined
  private located: LocatedIp | undefined
  private selfId: string | undefined
  /** Claims and API reads, one at a time. */
  private work: Promise<void> = Promise.resolve()
  /** Yields, one at a time (yieldAddress never rejects). */
  private yielding: Promise<void> = Promise.resolve()
  private kicked: NodeJS.Immediate | undefined
  private deadline: NodeJS.Timeout | undefined
  private apiTimer: NodeJS.Timeout | undefined
  private stopped = false
  /** Aborts a read of the API in flight when the watcher stops. */
  private readonly stopping = new AbortController()
  private readonly transitions: TransitionSnapshot[] = []
  private readonly log: Logger
  /** The source the IP follows, and its latest answer; undefined with probes. */
  private readonly source: HoldSource | undefined
  private answer: SourceAnswer | undefined
  /** Fires when the source stops saying hold while a claim runs: the claim stands down (reconcile's `stop`). */
  private claimStop: AbortController | undefined

  constructor(
    readonly watched: WatchedIp,
    private readonly context: WatcherContext,
  ) {
    const tag = `[${watched.name}] `
    const { log } = context
    this.log = {
      info: (m) => log.info(tag + m),
      warn: (m) => log.warn(tag + m),
      debug: (m) => log.debug(tag + m),
      progress: (m) => log.progress(tag + m),
    }
    this.source = context.createSource?.(watched.source.settings, {
      name: watched.name,
      ip: watched.ip,
      interface: watched.interface,
      log: this.log,
    })
    this.decider = this.source ? new FollowDecider(watched.policy) : new Decider(watched.policy)
  }

  get role(): Role {
    return this.decider.state.role
  }

  /** Start probing and reading the API; decisions follow on their own. */
  start(): void {
    const { watched } = this
    if (this.source) {
      this.log.info(
        `watching ${watched.ip.block} on ${watched.interface} with ${watched.provider}, following source ${watched.source.kind}`,
      )
      this.source.start((answer) => this.onAnswer(answer))
    } else {
      this.log.info(
        `watching ${watched.ip.block} on ${watched.interface} with ${watched.provider} (priority ${watched.policy.priority}, preempt ${watched.policy.preempt ? 'on' : 'off'})`,
      )
    }
    for (const kind of CHECK_KINDS) {
      const specs = watched.probes.filter((p) => p.check === kind)
      if (specs.length === 0) continue
      const probes = specs.map((p) => createProbe(p.spec))
      for (const probe of probes) this.probeChecks.set(probe.label, kind)
      const check = new Check(kind, probes, watched.timings[kind])
      this.checks.set(kind, check)
      this.runners.push(
        runCheck(
          check,
          probes,
          (event) => this.onCheckEvent(event),
          (probe, result) => this.onResult(kind, probe, result),
        ),
      )
    }
    this.readApi('start')
  }

  /** Stop probing; with `release`, drop the address first. */
  async stop(release: boolean): Promise<void> {
    this.stopped = true
    this.stopping.abort()
    clearImmediate(this.kicked)
    clearTimeout(this.deadline)
    clearTimeout(this.apiTimer)
    await Promise.all(this.runners.map((r) => r.stop()))
    await Promise.all([this.work, this.yielding])
    if (release) await this.yieldAddress('stopping with release-on-stop')
    // The source last: one that hands its lease over as it stops (etcd) must find the address gone.
    await this.source?.stop(release)
    this.context.provider.close()
  }

  /** An operator cleared the anti-flap stop. */
  clearFlapping(): void {
    this.decider.clearFlapping()
    this.log.info('anti-flap stop cleared')
    this.kick()
  }

  /** An engine's script told the wish (`ipmove status --watch --tell`): only a source that takes it may be told. */
  tell(wish: ToldWish): void {
    if (!this.source?.tell) {
      throw usageError(
        `${this.watched.name} follows source = ${this.watched.source.kind}, which is not told: --tell is for source = ucarp`,
      )
    }
    this.source.tell(wish)
  }

  /** This IP's part of the daemon's snapshot (src/watch/snapshot.ts). */
  snapshot(): IpSnapshot {
    const at = now()
    const d = this.decider.state
    const { policy } = this.watched
    const holderId = this.holder === undefined ? null : (this.holder?.id ?? null)
    const lastClaim = d.claims.at(-1)
    const dwellUntil = lastClaim === undefined ? null : lastClaim + policy.dwellMs
    return {
      name: this.watched.name,
      address: this.watched.ip.block,
      provider: this.watched.provider,
      role: this.role,
      roleSince: this.roleSince,
      holder: {
        id: holderId,
        name: this.holder?.name ?? null,
        isSelf: holderId !== null && holderId === this.selfId,
        readAt: this.readAt,
        error: this.api && !this.api.reachable ? this.api.reason : null,
      },
      // null where the cloud maps the IP onto an address the host already has (nothing to carry).
      carried: this.located?.hostCarries === false ? null : this.carried === true,
      checks: {
        peer: this.checkSnapshot('peer'),
        self: this.checkSnapshot('self'),
        witness: this.checkSnapshot('witness'),
      },
      antiFlap: {
        stopped: d.flappingUntil !== undefined,
        stoppedUntil: d.flappingUntil ?? null,
        movesInWindow: d.claims.filter((t) => t > at - policy.moveWindowMs).length,
        maxMoves: policy.maxMoves,
        windowMs: policy.moveWindowMs,
        dwellUntil: dwellUntil !== null && dwellUntil > at ? dwellUntil : null,
      },
      source: this.sourceSnapshot(),
      transitions: this.transitions.map((t) => ({ ...t, timeline: t.timeline && { ...t.timeline } })),
      transitionsTotal: this.transitionsTotal,
    }
  }

  private sourceSnapshot(): SourceSnapshot | null {
    if (!this.source) return null
    return {
      kind: this.watched.source.kind,
      wish: this.answer?.wish ?? 'unknown',
      why: this.answer?.why ?? null,
      at: this.answer?.at ?? null,
      status: this.source.status?.() ?? null,
    }
  }

  /** The source answered: decide at once; a new wish (or a recheck) also reads the API anew. */
  private onAnswer(answer: SourceAnswer): void {
    if (this.stopped) return
    const before = this.answer
    this.answer = answer
    const changed = before?.wish !== answer.wish
    if (changed || before?.why !== answer.why) this.log.info(`source: ${answer.wish}: ${answer.why}`)
    // A claim in flight for a hold that no longer stands stops now (an address it added is taken back).
    if (answer.wish !== 'hold') this.claimStop?.abort()
    this.kick()
    if (changed || answer.recheck) this.readApi('source')
  }

  private checkSnapshot(kind: CheckKind): CheckSnapshot {
    const check = this.checks.get(kind)
    const probes = (check?.probes ?? []).map((p) => {
      const last = this.lastResults.get(p.probe)
      return {
        label: p.probe,
        ok: last?.ok ?? null,
        at: last?.at ?? null,
        ms: last?.ms ?? null,
        detail: last?.detail ?? null,
      }
    })
    const successes = (check?.probes ?? []).map((p) => p.lastSuccess).filter((t) => t !== undefined)
    const failure = this.failures.get(kind)
    return {
      kind,
      health: check?.state ?? 'pending',
      lastSuccessAt: successes.length > 0 ? Math.max(...successes) : null,
      lastFailureAt: failure?.at ?? null,
      lastFailure: failure?.line ?? null,
      probes,
    }
  }

  private onResult(kind: CheckKind, probe: string, result: ProbeResult): void {
    this.lastResults.set(probe, result)
    if (!result.ok) this.failures.set(kind, { at: result.at, line: `${probe}: ${result.detail}` })
    else if (kind === 'witness' && this.awaitingWitness && this.role === 'master') {
      // Clients reach the IP again, as the witness sees it from here: the takeover's last step.
      this.awaitingWitness.witnessAnswers = result.at
      this.awaitingWitness = undefined
    }
  }

  private onCheckEvent(event: CheckEvent): void {
    if (event.type === 'check') {
      this.log.info(`${event.check} check: ${event.state}`)
      this.kick()
      return
    }
    const e = event.event
    const where = `${this.probeChecks.get(event.probe)} probe ${event.probe}`
    if (e.type === 'down')
      this.log.info(`${where}: dead after ${Math.round(e.silentMs)} ms of silence (${e.after})`)
    else if (e.type === 'up') this.log.info(`${where}: answering`)
    else if (e.type === 'late') this.log.info(`${where}: late, no answer for ${Math.round(e.silentMs)} ms`)
    else this.log.info(`${where}: answered again after ${Math.round(e.gapMs)} ms`)
  }

  /** Decide soon (once per turn of the event loop, however many events came). */
  private kick(): void {
    if (this.stopped || this.kicked) return
    this.kicked = setImmediate(() => {
      this.kicked = undefined
      this.decideNow()
    })
  }

  private facts(): Facts {
    return {
      peer: this.checks.get('peer')?.state ?? 'pending',
      self: this.checks.get('self')?.state ?? 'pending',
      witness: this.checks.get('witness')?.state,
      api: this.api,
      carried: this.carried,
      source: this.answer,
    }
  }

  private decideNow(): void {
    if (this.stopped) return
    const from = this.role
    const decision = this.decider.decide(this.facts(), now())
    this.report(from, decision)
    const { action } = decision
    if (decision.role !== from && action.do !== 'claim') {
      // After a transition, act on a fresh read of the API, never on one from before it.
      this.api = undefined
      this.readApi('transition')
    }
    if (action.do === 'claim') this.enqueue(() => this.claimIp(action.why))
    // A yield is local and must never wait behind an API read that hangs (a dead link): it has its own queue.
    else if (action.do === 'yield') this.yielding = this.yielding.then(() => this.yieldAddress(action.why))
    clearTimeout(this.deadline)
    const next = this.decider.nextDeadline(now())
    if (next !== undefined) this.deadline = setTimeout(() => this.kick(), Math.max(0, next - now()))
  }

  /** Log a decision's notes; a claim starts a takeover's timeline; a role change is a transition. */
  private report(from: Role, decision: Decision): void {
    for (const line of decision.notes) {
      if (line.startsWith('FLAPPING')) this.log.warn(line)
      else this.log.info(line)
    }
    const { action } = decision
    if (action.do === 'claim') {
      const peerDead = this.checks.get('peer')?.state === 'down' ? this.decider.state.peerDownAt : undefined
      this.failover = {
        peerDeclaredDead: peerDead ?? null,
        decision: now(),
        apiAccepted: null,
        apiDone: null,
        aliasAdded: null,
        announced: null,
        witnessAnswers: null,
      }
    }
    if (decision.role !== from) {
      const why = action.do === 'nothing' ? (decision.notes[0] ?? '') : action.why
      this.transition(from, decision.role, why, null)
    }
  }

  private transition(
    from: Role,
    to: Role,
    reason: string,
    timeline: FailoverTimeline | null,
    error: string | null = null,
  ): void {
    const at = now()
    this.roleSince = at
    this.transitionsTotal += 1
    this.transitions.push({ at, from, to, reason, timeline, error })
    if (this.transitions.length > MAX_TRANSITIONS) this.transitions.shift()
    this.context.onTransition?.()
    const actions = this.watched.actions.filter((a) => a.on === to)
    if (actions.length > 0) {
      void runActions(actions, { role: to, name: this.watched.name, ip: this.watched.ip.block }, this.log)
    }
  }

  private enqueue(job: () => Promise<void>): void {
    this.work = this.work.then(job, job)
  }

  private async claimIp(why: string): Promise<void> {
    // A source that stopped saying hold while the claim waited its turn (an API read) withdrew it.
    if (this.stopped || (this.source && this.answer?.wish !== 'hold')) {
      if (!this.stopped) this.log.info(`not claiming: the source says ${this.answer?.wish ?? 'nothing'} now`)
      this.decider.claimDone(false, now())
      this.kick()
      return
    }
    const { watched, context } = this
    const started = now()
    this.log.info(`claiming ${watched.ip.block}: ${why}`)
    const timeline = this.failover ?? emptyTimeline(started)
    let ok = false
    let superseded = false
    let failure: string | null = null
    let landed: { to: Holder } | undefined
    this.claimStop = new AbortController()
    try {
      const driver = timedDriver(await this.driver(), timeline)
      const result = await claim(timedProvider(context.provider, timeline), {
        find: { ip: watched.ip, project: watched.project, instance: watched.instance },
        carry: {
          interface: watched.interface,
          label: watched.label,
          driver,
          ...(context.announce === false ? { announce: false as const } : {}),
        },
        wait: true,
        dryRun: false,
        signal: AbortSignal.timeout(watched.convergeTimeoutMs),
        pollMs: context.pollMs,
        stop: this.claimStop.signal,
        log: this.log,
      })
      ok = true
      landed = result
      this.carried = result.alias ? true : this.carried
      timeline.apiDone ??= now()
      if (result.alias?.announced && 'count' in result.alias.announced) timeline.announced = now()
      if (this.checks.has('witness')) this.awaitingWitness = timeline
      this.log.info(`claimed ${watched.ip.block} in ${Math.round(now() - started)} ms (${result.outcome})`)
    } catch (error) {
      if (error instanceof StoodDown) {
        // The source stopped saying hold: someone else decides now, as when another holder took the IP.
        superseded = true
        const left = error.wrote ? ' (our move may have landed; the API finishes it)' : ''
        failure = `withdrawn: the source says ${this.answer?.wish ?? 'nothing'} now${left}`
        this.log.info(`claim stopped: ${failure}`)
      } else {
        superseded = isKind(error, 'superseded')
        failure = (error as Error).message
        if (isKind(error, 'unreachable', 'timeout')) this.api = { reachable: false, reason: failure }
        this.log.warn(`claim failed: ${failure}`)
      }
    }
    this.claimStop = undefined
    this.failover = undefined
    const from = this.role
    const decision = this.decider.claimDone(ok, now(), superseded)
    if (landed && decision.role === 'master') {
      this.holder = landed.to
      this.api = { reachable: true, holder: 'self', holderName: describeHolder(landed.to), pending: false }
    } else {
      // A fault came while the claim ran, or the claim failed: what the API says now is unknown.
      this.api = undefined
    }
    for (const line of decision.notes) this.log.info(line)
    if (decision.role !== from) {
      this.transition(from, decision.role, ok ? why : `claim superseded: ${failure}`, timeline, failure)
    }
    // Decide at once (a fault may be waiting), then read the API, which may take its time.
    this.kick()
    await this.readApiNow()
    this.kick()
  }

  private async yieldAddress(why: string): Promise<void> {
    const { watched } = this
    try {
      const result = await yieldIp({
        ip: watched.ip,
        interface: watched.interface,
        driver: this.context.driver,
      })
      this.carried = false
      if (result.changed) {
        this.log.info(`dropped ${watched.ip.block} from ${watched.interface}: ${why}`)
      }
    } catch (error) {
      this.log.warn(
        `could not drop ${watched.ip.block} from ${watched.interface}: ${(error as Error).message}`,
      )
    }
  }

  /** Read the API now (queued behind any claim), then again after the interval. */
  private readApi(reason: string): void {
    this.log.debug(`reading the API (${reason})`)
    this.enqueue(async () => {
      await this.readApiNow()
      this.kick()
    })
  }

  private async readApiNow(): Promise<void> {
    clearTimeout(this.apiTimer)
    if (this.stopped) return
    const { watched, context } = this
    const { provider } = context
    const signal = AbortSignal.any([AbortSignal.timeout(READ_TIMEOUT_MS), this.stopping.signal])
    try {
      let state: Awaited<ReturnType<LocatedIp['read']>>
      if (this.located && provider.hasCloudApi) {
        state = await this.located.read(signal)
      } else {
        // A provider without a cloud API finds the holder on the link: each read probes anew.
        const cloud = provider.hasCloudApi
        const located = await provider.locate(
          {
            ip: watched.ip,
            project: watched.project,
            instance: watched.instance,
            interface: watched.interface,
            needTarget: cloud,
          },
          signal,
        )
        this.located = located
        this.selfId = cloud ? located.target?.id : await this.ownMac()
        state = located.state
      }
      const before = this.api
      this.holder = state.holder
      this.readAt = now()
      const holder = !state.holder ? 'nobody' : state.holder.id === this.selfId ? 'self' : 'other'
      this.api = { reachable: true, holder, holderName: describeHolder(state.holder), pending: state.pending }
      if (!before?.reachable || before.holder !== holder || before.pending !== state.pending) {
        this.log.info(
          `the API routes ${watched.ip.block} to ${describeHolder(state.holder)}${state.pending ? ' (an operation is pending)' : ''}`,
        )
      }
      this.carried = await this.carriedHere()
    } catch (error) {
      const reason = (error as Error).message
      if (!this.api || this.api.reachable) this.log.warn(`cannot read the API: ${reason}`)
      this.api = { reachable: false, reason }
    } finally {
      if (!this.stopped) this.apiTimer = setTimeout(() => this.readApi('timer'), watched.apiIntervalMs)
    }
  }

  private async driver(): Promise<AddressDriver> {
    return this.context.driver ?? (await pickDriver())
  }

  private async carriedHere(): Promise<boolean | undefined> {
    // Nothing to carry where the provider maps the IP onto an address the host
    // already has (EC2 EIPs, DigitalOcean): "missing" would make every read a claim.
    if (this.located?.hostCarries === false) return undefined
    try {
      const entries = await (await this.driver()).list(this.watched.interface)
      return entries.some((e) => e.address === this.watched.ip.address)
    } catch {
      return undefined
    }
  }

  /** The local provider names holders by their MAC address on the link. */
  private async ownMac(): Promise<string | undefined> {
    const entries = await (await this.driver()).list(this.watched.interface)
    return entries.find((e) => e.mac)?.mac
  }
}

function emptyTimeline(decision: number): FailoverTimeline {
  return {
    peerDeclaredDead: null,
    decision,
    apiAccepted: null,
    apiDone: null,
    aliasAdded: null,
    announced: null,
    witnessAnswers: null,
  }
}

/**
 * The provider, observed for a takeover's timeline: when the API accepted
 * our write, and when it first reported the IP settled on the target.
 */
function timedProvider(provider: Provider, timeline: FailoverTimeline): Provider {
  const settled = (state: IpState | undefined, target: Holder | undefined) => {
    if (state && !state.pending && sameHolder(state.holder, target)) timeline.apiDone ??= now()
    return state
  }
  const observed: Provider = Object.create(provider)
  observed.locate = async (request, signal) => {
    const located = await provider.locate(request, signal)
    return {
      ...located,
      read: async (s) => settled(await located.read(s), located.target) as IpState,
      write: async (to, s) => {
        const state = await located.write(to, s)
        timeline.apiAccepted ??= now()
        return settled(state, to)
      },
    }
  }
  return observed
}

/** The address driver, observed: when the address went on the interface. */
function timedDriver(driver: AddressDriver, timeline: FailoverTimeline): AddressDriver {
  const observed: AddressDriver = Object.create(driver)
  observed.add = async (entry) => {
    const changed = await driver.add(entry)
    timeline.aliasAdded ??= now()
    return changed
  }
  return observed
}
