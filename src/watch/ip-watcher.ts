/**
 * One failover IP under watch: its three checks, its reads of the API, the
 * decision, and the converge calls that carry the decision out. Everything
 * that touches the world (claim, yield, API read) runs one at a time, in
 * order, each bounded by a timeout.
 */
import type { AddressDriver } from '../alias/driver.js'
import { pickDriver } from '../alias/platform.js'
import { claim, yieldIp } from '../core/converge.js'
import { describeHolder, type Holder, type LocatedIp, type Provider } from '../core/provider.js'
import { isKind } from '../errors.js'
import { Check, type CheckEvent, type CheckKind, type Health, runCheck } from '../health.js'
import type { Logger } from '../output.js'
import { createProbe, type ProbeResult } from '../probes/index.js'
import { now } from '../probes/probe.js'
import { runActions } from './actions.js'
import { CHECK_KINDS, type Role, type WatchedIp } from './config.js'
import { type ApiView, Decider, type Decision, type Facts } from './decide.js'

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
}

/** A step of a failover, for the timeline `ipmove status` shows. */
export interface TimelineEntry {
  at: number
  event: string
}

export interface Transition {
  at: number
  from: Role
  to: Role
  why: string
  timeline: TimelineEntry[]
}

export interface ProbeStatus {
  check: CheckKind
  probe: string
  state: Health
  last?: ProbeResult
}

export interface WatcherSnapshot {
  name: string
  ip: string
  role: Role
  /** The API's holder as last read; null: routed nowhere; undefined: not read yet or unreachable. */
  holder: Holder | null | undefined
  api: ApiView | undefined
  checks: Partial<Record<CheckKind, Health>>
  probes: ProbeStatus[]
  flappingUntil?: number
  transitions: Transition[]
}

const KEEP_TRANSITIONS = 20
/** Bounds each read of the API's holder. */
const READ_TIMEOUT_MS = 10_000

export class IpWatcher {
  readonly decider: Decider
  private readonly checks = new Map<CheckKind, Check>()
  private readonly runners: Array<{ stop(): Promise<void> }> = []
  private readonly lastResults = new Map<string, ProbeResult>()
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
  private readonly transitions: Transition[] = []
  private readonly log: Logger

  constructor(
    readonly watched: WatchedIp,
    private readonly context: WatcherContext,
  ) {
    this.decider = new Decider(watched.policy)
    const tag = `[${watched.name}] `
    const { log } = context
    this.log = {
      info: (m) => log.info(tag + m),
      warn: (m) => log.warn(tag + m),
      debug: (m) => log.debug(tag + m),
      progress: (m) => log.progress(tag + m),
    }
  }

  get role(): Role {
    return this.decider.state.role
  }

  /** Start probing and reading the API; decisions follow on their own. */
  start(): void {
    const { watched } = this
    this.log.info(
      `watching ${watched.ip.block} on ${watched.interface} with ${watched.provider} (priority ${watched.policy.priority}, preempt ${watched.policy.preempt ? 'on' : 'off'})`,
    )
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
          (probe, result) => this.lastResults.set(probe, result),
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
    this.context.provider.close()
  }

  /** An operator cleared the anti-flap stop. */
  clearFlapping(): void {
    this.decider.clearFlapping()
    this.log.info('anti-flap stop cleared')
    this.kick()
  }

  snapshot(): WatcherSnapshot {
    const probes: ProbeStatus[] = []
    for (const [kind, check] of this.checks) {
      for (const p of check.probes) {
        probes.push({ check: kind, probe: p.probe, state: p.state, last: this.lastResults.get(p.probe) })
      }
    }
    return {
      name: this.watched.name,
      ip: this.watched.ip.block,
      role: this.role,
      holder: this.holder,
      api: this.api,
      checks: Object.fromEntries([...this.checks].map(([k, c]) => [k, c.state])),
      probes,
      ...(this.decider.state.flappingUntil ? { flappingUntil: this.decider.state.flappingUntil } : {}),
      transitions: this.transitions.map((t) => ({ ...t, timeline: [...t.timeline] })),
    }
  }

  private onCheckEvent(event: CheckEvent): void {
    if (event.type === 'check') {
      this.log.info(`${event.check} check: ${event.state}`)
      this.note(`${event.check} check ${event.state}`)
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
    }
  }

  private decideNow(): void {
    if (this.stopped) return
    const from = this.role
    const decision = this.decider.decide(this.facts(), now())
    this.report(from, decision)
    const { action } = decision
    if (action.do === 'claim') this.enqueue(() => this.claimIp(action.why))
    // A yield is local and must never wait behind an API read that hangs (a dead link): it has its own queue.
    else if (action.do === 'yield') this.yielding = this.yielding.then(() => this.yieldAddress(action.why))
    clearTimeout(this.deadline)
    const next = this.decider.nextDeadline(now())
    if (next !== undefined) this.deadline = setTimeout(() => this.kick(), Math.max(0, next - now()))
  }

  /** Log a decision's notes, and start a transition's timeline when the role changed. */
  private report(from: Role, decision: Decision): void {
    for (const line of decision.notes) {
      if (line.startsWith('FLAPPING')) this.log.warn(line)
      else this.log.info(line)
    }
    const why = decision.action.do === 'nothing' ? '' : decision.action.why
    if (decision.action.do === 'claim') this.note(`decision: claim (${why})`)
    if (decision.role !== from) this.transition(from, decision.role, why)
  }

  private transition(from: Role, to: Role, why: string): void {
    const at = Date.now()
    // The events that led here (peer dead, decision, API done, alias added, announced) are its timeline.
    const timeline = [...this.pendingNotes.splice(0), { at, event: `${from} → ${to}` }]
    this.transitions.push({ at, from, to, why, timeline })
    if (this.transitions.length > KEEP_TRANSITIONS) this.transitions.shift()
    const actions = this.watched.actions.filter((a) => a.on === to)
    if (actions.length > 0) {
      void runActions(actions, { role: to, name: this.watched.name, ip: this.watched.ip.block }, this.log)
    }
  }

  /** Events since the last transition, kept for the next one's timeline. */
  private readonly pendingNotes: TimelineEntry[] = []

  private note(event: string): void {
    this.pendingNotes.push({ at: Date.now(), event })
    if (this.pendingNotes.length > 20) this.pendingNotes.shift()
  }

  private enqueue(job: () => Promise<void>): void {
    this.work = this.work.then(job, job)
  }

  private async claimIp(why: string): Promise<void> {
    if (this.stopped) {
      this.decider.claimDone(false, now())
      return
    }
    const { watched, context } = this
    const started = now()
    this.log.info(`claiming ${watched.ip.block}: ${why}`)
    let ok = false
    let superseded = false
    try {
      const result = await claim(context.provider, {
        find: { ip: watched.ip, project: watched.project, instance: watched.instance },
        carry: {
          interface: watched.interface,
          label: watched.label,
          driver: context.driver,
          ...(context.announce === false ? { announce: false as const } : {}),
        },
        wait: true,
        dryRun: false,
        signal: AbortSignal.timeout(watched.convergeTimeoutMs),
        pollMs: context.pollMs,
        log: this.log,
      })
      ok = true
      this.holder = result.to
      this.api = { reachable: true, holder: 'self', holderName: describeHolder(result.to), pending: false }
      this.carried = result.alias ? true : this.carried
      this.note(`API done: ${result.outcome} (${Math.round(now() - started)} ms)`)
      if (result.alias)
        this.note(`alias ${result.alias.changed ? 'added' : 'present'} on ${result.alias.interface}`)
      if (result.alias?.announced && 'count' in result.alias.announced) this.note('announced')
      this.log.info(`claimed ${watched.ip.block} in ${Math.round(now() - started)} ms (${result.outcome})`)
    } catch (error) {
      superseded = isKind(error, 'superseded')
      if (isKind(error, 'unreachable', 'timeout')) {
        this.api = { reachable: false, reason: (error as Error).message }
      }
      this.log.warn(`claim failed: ${(error as Error).message}`)
      this.note(`claim failed: ${(error as Error).message}`)
    }
    const from = this.role
    this.report(from, this.decider.claimDone(ok, now(), superseded))
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
        this.note(`alias dropped from ${watched.interface}`)
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
