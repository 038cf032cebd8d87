/**
 * `source = etcd`: the holder of an etcd lease is the node that should hold
 * the IP. Every node campaigns, through the etcd3 library's election (the
 * port of etcd's own Go `concurrency.Election`: a key under the election's
 * prefix per candidate, bound to the candidate's lease; the oldest key leads).
 * This file adds what an IP needs on top:
 *
 * - Self-fencing. The leader renews its lease itself every `renewEveryMs`
 *   and notes when each successful renewal was *sent*: etcd received it
 *   later, so the lease cannot expire before sentAt + TTL. The leader stops
 *   holding at sentAt + TTL − renew margin (`fenceAt`), so it has dropped
 *   the address at least `renew margin` before any other node can be
 *   elected, even when it is cut off from etcd and not from its clients.
 *   The margin covers timer lateness and the drop itself (milliseconds); a
 *   renewal that succeeds again (the lease still lives: nobody else can be
 *   leader) lifts the fence.
 * - etcd unreachable (no renewal or read answered in a round of attempts):
 *   `hold` keeps the address until the fence says otherwise (a restart or a
 *   rolling upgrade of etcd shorter than the TTL moves nothing); `release`
 *   drops it at once. Either way the fence wins for the leader, and nobody
 *   claims while etcd cannot elect.
 * - Own health: a node in fault does not campaign, and a leader that turns
 *   unhealthy resigns: it stops holding, waits the renew margin for the
 *   address to go, then revokes its lease, so the next candidate is elected
 *   at once rather than after the TTL.
 * - Preempt (the IP's `preempt`, `priority`, `preempt-delay`): the queue is
 *   put in priority order and the leader hands over to a higher priority
 *   next in line, in one move (see `preempt`).
 *
 * Loaded lazily (src/watch/sources/index.ts): the etcd client (gRPC) costs
 * nothing to commands and IPs that do not use it.
 */
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { type Campaign, type Election, Etcd3, EtcdLeaseInvalidError } from 'etcd3'
import { usageError } from '../../errors.js'
import { Check, HEALTH_DEFAULTS, PROBE_DEFAULTS, runCheck } from '../../health.js'
import type { Logger } from '../../output.js'
import { createProbe } from '../../probes/index.js'
import { now } from '../../probes/probe.js'
import { checkEtcdSettings, type EtcdSettings, renewEveryMs } from './etcd-settings.js'
import type { HoldSource, SourceContext, SourceSettings, SourceStatus } from './source.js'

export type { EtcdSettings } from './etcd-settings.js'

/** What this node knows of the lease, for the daemon and `ipmove status`. */
export interface LeaseView {
  /** This node holds the lease and may carry the address (fenceAt is ahead). */
  leader: boolean
  /** This node is a candidate (healthy, campaigning or elected). */
  campaigning: boolean
  /** The last round of renewals or reads got an answer from etcd. */
  reachable: boolean
  /** Why the last round failed, when it did. */
  error: string | null
  /** The candidate holding the lease, as last read; null: none; undefined: not read yet. */
  holder: string | null | undefined
  /** The holder key's create revision (its term), as last read. */
  revision: string | null
  /** The holder's lease time left, in ms, as last read (counted down since). */
  ttlLeftMs: number | null
  /** When this node stops holding unless a renewal succeeds first (leader only). */
  fenceAt: number | null
  /** When etcd last answered. */
  lastContactAt: number | null
}

/**
 * Whether this node should carry the address: it leads (its fence is ahead),
 * and etcd answers or the policy is `hold`. A node that does not lead never
 * carries it, whatever etcd's state: only the lease holder may.
 */
export function shouldHold(view: LeaseView, unreachable: EtcdSettings['unreachable']): boolean {
  return view.leader && (view.reachable || unreachable === 'hold')
}

/** The pause between rounds while etcd does not answer. */
const RETRY_MS = 100

/** A candidate's value in its key: who it is. */
interface CandidateValue {
  id: string
  priority: number
}

/** A candidate's key as read: who, with what priority, since which revision (the queue's order). */
interface Candidate extends CandidateValue {
  revision: string
  lease: string
  /** Our own key (its lease is ours). */
  self: boolean
}

export class EtcdLeadership {
  private readonly client: Etcd3
  private readonly election: Election
  private readonly everyMs: number
  /** Each attempt of a round (renewal or read) gets this long. */
  private readonly attemptMs: number
  private campaign: Campaign | undefined
  /** The campaign that won: its lease id. */
  private elected: { campaign: Campaign; leaseId: string } | undefined
  private fenceAt: number | null = null
  private healthy = false
  private stopped = false
  private timer: NodeJS.Timeout | undefined
  private fenceTimer: NodeJS.Timeout | undefined
  private retryTimer: NodeJS.Timeout | undefined
  private reachable = true
  private error: string | null = null
  private lastContactAt: number | null = null
  private holder: { id: string | null; revision: string | null; ttlS: number | null; at: number } | undefined
  private round: Promise<void> = Promise.resolve()
  /** The candidate next in line with a higher priority, and since when (preempt). */
  private preemptor: { key: string; since: number } | undefined

  constructor(
    readonly settings: EtcdSettings,
    private readonly log: Logger,
    /** Called whenever the view may have changed (leadership, fence, reachability, holder). */
    private readonly onChange: (view: LeaseView) => void,
  ) {
    checkEtcdSettings(settings)
    this.everyMs = renewEveryMs(settings)
    this.attemptMs = Math.max(100, Math.min(this.everyMs / 2, 2000))
    const secure = settings.endpoints[0]!.startsWith('https:')
    this.client = new Etcd3({
      hosts: [...settings.endpoints],
      ...(secure
        ? {
            credentials: {
              // Without a CA file, gRPC trusts the system's CAs (its type says Buffer, its code takes null).
              rootCertificate: settings.ca ? readPem(settings.ca, 'etcd-ca') : (null as unknown as Buffer),
              ...(settings.key ? { privateKey: readPem(settings.key, 'etcd-key') } : {}),
              ...(settings.cert ? { certChain: readPem(settings.cert, 'etcd-cert') } : {}),
            },
          }
        : {}),
      // Every unary call is bounded; streams (watches, renewals) are bounded where they are made.
      defaultCallOptions: (context) =>
        context.isStream ? {} : { deadline: new Date(Date.now() + this.attemptMs) },
      dialTimeout: this.attemptMs,
    })
    this.election = this.client.election(settings.election, settings.ttlS)
  }

  /** Start reading the lease's holder; campaigning waits for `setHealthy(true)`. */
  start(): void {
    this.tick()
  }

  /** Own health: a healthy node campaigns, an unhealthy one resigns (and never campaigns). */
  setHealthy(healthy: boolean): void {
    if (this.stopped || healthy === this.healthy) return
    this.healthy = healthy
    if (healthy) this.campaignNow()
    else void this.resign('own health is down')
  }

  /**
   * Stop. `released` (the daemon dropped the address first): resign at
   * once, the next candidate is elected now. Otherwise this node may still
   * carry the address (a reload restarting the IP, release-on-stop = no):
   * the lease is left to run out, so nobody else is elected for up to a TTL.
   * Bounded by the call deadlines.
   */
  async stop(released: boolean): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    clearTimeout(this.fenceTimer)
    clearTimeout(this.retryTimer)
    if (released) await this.resign('stopping', false)
    else if (this.campaign) {
      if (this.elected) this.log.info(`stopping: the etcd lease runs out within ${this.settings.ttlS} s`)
      stopRenewing(this.campaign)
      this.dropCampaign()
    }
    await this.round
    this.client.close()
  }

  view(): LeaseView {
    const at = now()
    const leader = this.elected !== undefined && this.fenceAt !== null && at < this.fenceAt
    const h = this.holder
    return {
      leader,
      campaigning: this.campaign !== undefined,
      reachable: this.reachable,
      error: this.error,
      holder: h === undefined ? undefined : h.id,
      revision: h?.revision ?? null,
      ttlLeftMs: h?.ttlS == null ? null : Math.max(0, h.ttlS * 1000 - (at - h.at)),
      fenceAt: this.elected ? this.fenceAt : null,
      lastContactAt: this.lastContactAt,
    }
  }

  private changed(): void {
    if (!this.stopped) this.onChange(this.view())
  }

  private campaignNow(): void {
    if (this.stopped || !this.healthy || this.campaign) return
    const value: CandidateValue = { id: this.settings.identity, priority: this.settings.priority }
    const campaign = this.election.campaign(JSON.stringify(value))
    this.campaign = campaign
    this.log.info(`campaigning for etcd election ${this.settings.election} as ${this.settings.identity}`)
    campaign.on('elected', () => {
      if (this.campaign !== campaign) return
      void campaign.getCampaignKey().then(
        (key) => {
          if (this.campaign !== campaign) return
          this.elected = { campaign, leaseId: leaseIdOf(key) }
          this.log.info(`elected: this node holds the etcd lease ${this.elected.leaseId}`)
          // Hold only once a renewal of our own has set the fence.
          this.tickNow()
        },
        (error: Error) => this.lost(campaign, error),
      )
    })
    campaign.on('error', (error: Error) => this.lost(campaign, error))
    this.changed()
  }

  /** The campaign failed (lease lost, etcd unreachable at grant): out of it, and try again soon. */
  private lost(campaign: Campaign, error: Error): void {
    if (this.campaign !== campaign) return
    const wasLeader = this.elected?.campaign === campaign
    this.log.warn(`${wasLeader ? 'lost the etcd lease' : 'campaign failed'}: ${describe(error)}`)
    this.dropCampaign()
    campaign.resign().catch(() => {})
    clearTimeout(this.retryTimer)
    this.retryTimer = setTimeout(() => this.campaignNow(), this.everyMs)
    this.changed()
  }

  private dropCampaign(): void {
    this.campaign = undefined
    this.elected = undefined
    this.fenceAt = null
    clearTimeout(this.fenceTimer)
  }

  /**
   * Leave the election. A leader stops holding first, and with `handOver`
   * waits the renew margin (the time the address takes to go, by its
   * definition) before it revokes the lease and lets the next candidate in.
   */
  private async resign(why: string, handOver = true): Promise<void> {
    const campaign = this.campaign
    if (!campaign) return
    const wasLeader = this.elected !== undefined
    this.dropCampaign()
    this.changed()
    this.log.info(`${wasLeader ? 'resigning the etcd lease' : 'leaving the etcd election'}: ${why}`)
    if (wasLeader && handOver) await sleep(this.settings.renewMarginMs)
    // Revoking lets the next candidate in at once; unreachable etcd lets the lease run out instead.
    await campaign.resign().catch((error: Error) => {
      this.log.warn(
        `could not revoke the lease (it expires within ${this.settings.ttlS} s): ${describe(error)}`,
      )
    })
  }

  /** One round now (after the one running), then every `everyMs`. */
  private tickNow(): void {
    clearTimeout(this.timer)
    this.tick()
  }

  private tick(): void {
    if (this.stopped) return
    this.round = this.round.then(() => this.runRound())
    void this.round.then(() => {
      if (this.stopped) return
      clearTimeout(this.timer)
      // After a failed round, try again soon: etcd electing a new raft leader answers again within a second.
      const wait = this.reachable ? this.everyMs : Math.min(this.everyMs, RETRY_MS)
      this.timer = setTimeout(() => this.tick(), wait)
    })
  }

  /** Renew (leader) and read the holder, trying each endpoint in turn within one period. */
  private async runRound(): Promise<void> {
    const until = now() + this.everyMs
    let failure: Error | undefined
    for (let attempt = 0; attempt < this.settings.endpoints.length + 1 && now() < until; attempt++) {
      try {
        const elected = this.elected
        if (elected) await this.renew(elected)
        const candidates = await this.readCandidates()
        failure = undefined
        if (elected && this.elected === elected && candidates[0]?.lease !== elected.leaseId) {
          // Our key was deleted behind our back (etcdctl del): another candidate may lead by now.
          this.lost(elected.campaign, new Error("this node's key is no longer first in the election"))
          break
        }
        this.preempt(candidates)
        break
      } catch (error) {
        failure = error as Error
        if (failure instanceof EtcdLeaseInvalidError && this.elected) {
          this.lost(this.elected.campaign, failure)
          failure = undefined
          break
        }
      }
    }
    const wasReachable = this.reachable
    this.reachable = failure === undefined
    this.error = failure ? describe(failure) : null
    if (wasReachable && failure) this.log.warn(`etcd does not answer: ${this.error}`)
    if (!wasReachable && !failure) this.log.info('etcd answers again')
    this.changed()
  }

  /** Renew our lease once, on a stream of our own, and move the fence to sentAt + TTL − margin. */
  private async renew(elected: { campaign: Campaign; leaseId: string }): Promise<void> {
    const sentAt = now()
    const stream = await this.client.leaseClient.leaseKeepAlive({
      deadline: new Date(Date.now() + this.attemptMs),
    })
    let ttlS: number
    try {
      const response = await new Promise<{ TTL: string }>((resolve, reject) => {
        stream.on('data', resolve)
        stream.on('error', reject)
        stream.write({ ID: elected.leaseId })
      })
      ttlS = Number(response.TTL)
    } finally {
      stream.end()
    }
    if (!(ttlS > 0)) throw new EtcdLeaseInvalidError(elected.leaseId)
    if (this.elected !== elected) return
    this.contact()
    const fenceAt = sentAt + ttlS * 1000 - this.settings.renewMarginMs
    const wasLeader = this.fenceAt !== null && sentAt < this.fenceAt
    this.fenceAt = fenceAt
    if (!wasLeader) this.log.info(`holding the lease: renewed, fence at +${Math.round(fenceAt - now())} ms`)
    clearTimeout(this.fenceTimer)
    this.fenceTimer = setTimeout(() => this.fenced(elected), Math.max(0, fenceAt - now()))
  }

  /** No renewal got through in time: stop holding before the lease can expire elsewhere. */
  private fenced(elected: { campaign: Campaign; leaseId: string }): void {
    if (this.elected !== elected || this.fenceAt === null || now() < this.fenceAt) return
    this.log.warn(
      `fenced: no renewal of the etcd lease got through; not holding the IP (the lease may expire in ${this.settings.renewMarginMs} ms)`,
    )
    this.changed()
  }

  /** The election's candidates in their queue's order (the first holds the lease); the holder's TTL left. */
  private async readCandidates(): Promise<Candidate[]> {
    const result = await this.client
      .namespace(`election/${this.settings.election}/`)
      .getAll()
      .sort('Create', 'Ascend')
      .exec()
    this.contact()
    const own = this.campaign ? await this.ownLeaseId(this.campaign) : undefined
    const candidates = result.kvs.map((kv) => ({
      ...candidateValue(kv.value),
      revision: kv.create_revision,
      lease: kv.lease,
      self: own !== undefined && kv.lease === own,
    }))
    const first = candidates[0]
    const at = now()
    let ttlS: number | null = null
    if (first && first.lease !== '0') {
      const lease = await this.client.leaseClient.leaseTimeToLive({ ID: first.lease })
      ttlS = Number(lease.TTL) >= 0 ? Number(lease.TTL) : null
    }
    this.holder = first
      ? { id: first.id, revision: first.revision, ttlS, at }
      : { id: null, revision: null, ttlS: null, at }
    return candidates
  }

  /**
   * Preempt (`preempt = yes`): the queue is put in priority order, then the
   * leader hands over to a higher priority. A waiting candidate with a
   * higher priority behind it goes to the back (it holds nothing: nothing
   * moves); the leader resigns once the candidate next in line has had a
   * higher priority than its own for `preempt-delay` (its key exists only
   * while its node is healthy), so the IP moves once, to that candidate.
   */
  private preempt(candidates: Candidate[]): void {
    if (!this.settings.preempt || !this.campaign) return
    const mine = candidates.findIndex((c) => c.self)
    if (mine < 0) return
    const me = candidates[mine]!
    if (mine > 0) {
      const higher = candidates.slice(mine + 1).find((c) => c.priority > me.priority)
      if (higher) {
        void this.requeue(`preempt: ${higher.id} (priority ${higher.priority}) goes ahead of this node`)
      }
      return
    }
    const next = candidates[1]
    if (!this.elected || !next || next.priority <= me.priority) {
      this.preemptor = undefined
      return
    }
    const key = `${next.id}@${next.revision}`
    if (this.preemptor?.key !== key) this.preemptor = { key, since: now() }
    if (now() - this.preemptor.since >= this.settings.preemptDelayMs) {
      this.preemptor = undefined
      void this.requeue(
        `preempt: handing the lease to ${next.id} (priority ${next.priority} > ${me.priority})`,
      )
    }
  }

  /** Resign and campaign again at the back of the queue. */
  private async requeue(why: string): Promise<void> {
    await this.resign(why)
    this.campaignNow()
  }

  private async ownLeaseId(campaign: Campaign): Promise<string | undefined> {
    try {
      return leaseIdOf(await campaign.getCampaignKey())
    } catch {
      return undefined
    }
  }

  private contact(): void {
    this.lastContactAt = now()
  }
}

function readPem(path: string, key: string): Buffer {
  try {
    return readFileSync(path)
  } catch (error) {
    throw usageError(`${key} = ${path}: cannot read it (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
  }
}

/** A candidate's value; a key another program wrote shows as its first 64 characters, priority 0. */
function candidateValue(value: Buffer): CandidateValue {
  try {
    const parsed = JSON.parse(value.toString()) as Partial<CandidateValue>
    if (typeof parsed.id === 'string') {
      return { id: parsed.id, priority: typeof parsed.priority === 'number' ? parsed.priority : 0 }
    }
  } catch {}
  return { id: value.toString().slice(0, 64), priority: 0 }
}

/**
 * Stop the library's own renewals of a campaign's lease without revoking it
 * (its `Lease.release()`, "let it expire"). The campaign keeps its lease
 * private; without this its keep-alive would retry every 100 ms for two
 * TTLs on a closed client.
 */
function stopRenewing(campaign: Campaign): void {
  const { lease } = campaign as unknown as { lease?: { release?: () => void } }
  lease?.release?.()
}

/** A candidate's key is the election's prefix and its lease id (decimal). */
function leaseIdOf(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1)
}

/** One line, no stack: gRPC errors carry their code and details in the message. */
function describe(error: Error): string {
  return error.message.split('\n')[0]!.slice(0, 300)
}

/**
 * `source = etcd`: the leadership above, campaigning while this node's own
 * health is up (the watched interface's link, and `etcd-health` when set).
 * It answers hold while shouldHold says so, release otherwise: a node that
 * does not hold the lease must not carry the address, whatever etcd's state.
 */
export function etcdSource(raw: SourceSettings, context: SourceContext): HoldSource {
  const settings = raw as unknown as EtcdSettings
  const probes = [
    createProbe({ kind: 'link', interface: context.interface, ...PROBE_DEFAULTS.link }),
    ...(settings.health.length > 0
      ? [createProbe({ kind: 'command', argv: settings.health, ...PROBE_DEFAULTS.command })]
      : []),
  ]
  const check = new Check('self', probes, HEALTH_DEFAULTS.self)
  let leadership: EtcdLeadership | undefined
  let health: { stop(): Promise<void> } | undefined
  return {
    start(report) {
      const lead = new EtcdLeadership(settings, context.log, (view) =>
        report({ ...answerOf(view, settings, check.state), at: now() }),
      )
      leadership = lead
      health = runCheck(check, probes, (event) => {
        if (event.type !== 'check') return
        context.log.info(`own health ${event.state}${event.state === 'up' ? '' : ': not campaigning'}`)
        lead.setHealthy(event.state === 'up')
      })
      lead.start()
    },
    async stop(released = false) {
      await health?.stop()
      await leadership?.stop(released)
    },
    status: () => statusOf(leadership?.view(), settings),
  }
}

function answerOf(
  view: LeaseView,
  settings: EtcdSettings,
  health: string,
): { wish: 'hold' | 'release'; why: string } {
  if (shouldHold(view, settings.unreachable)) {
    const why = view.reachable
      ? 'etcd: this node holds the lease'
      : 'etcd: this node holds the lease, etcd does not answer (policy hold: until the fence)'
    return { wish: 'hold', why }
  }
  let why: string
  if (view.fenceAt !== null && !view.leader) why = 'etcd: fenced, no renewal of the lease got through in time'
  else if (view.leader) why = 'etcd: does not answer (policy release)'
  else if (!view.campaigning) why = `etcd: not campaigning (own health ${health})`
  else if (!view.reachable) why = 'etcd: does not answer'
  else why = `etcd: ${view.holder ?? 'nobody'} holds the lease`
  return { wish: 'release', why }
}

function statusOf(view: LeaseView | undefined, settings: EtcdSettings): SourceStatus {
  const holder = view?.holder ?? null
  const self = holder !== null && holder === settings.identity
  const seconds = (ms: number | null) => (ms === null ? 'unknown' : `${(ms / 1000).toFixed(1)} s`)
  const fenceInMs = view?.fenceAt == null ? null : Math.max(0, Math.round(view.fenceAt - now()))
  const parts = [
    `lease holder ${holder ?? (view?.holder === null ? 'none' : 'unknown')}${self ? ' (this node)' : ''}`,
    `revision ${view?.revision ?? 'unknown'}`,
    `TTL left ${seconds(view?.ttlLeftMs ?? null)}`,
    ...(fenceInMs === null ? [] : [`fence in ${seconds(fenceInMs)}`]),
    ...(view && !view.reachable
      ? [
          `etcd does not answer (last answer ${view.lastContactAt === null ? 'never' : `${seconds(now() - view.lastContactAt)} ago`}): ${view.error}`,
        ]
      : []),
  ]
  return {
    line: parts.join(', '),
    fields: {
      election: settings.election,
      identity: settings.identity,
      holder,
      holderIsSelf: self,
      revision: view?.revision ?? null,
      ttlLeftMs: view?.ttlLeftMs == null ? null : Math.round(view.ttlLeftMs),
      fenceInMs,
      campaigning: view?.campaigning ?? false,
      reachable: view?.reachable ?? false,
      error: view?.error ?? null,
      lastContactAt: view?.lastContactAt == null ? null : Math.round(view.lastContactAt),
    },
  }
}
