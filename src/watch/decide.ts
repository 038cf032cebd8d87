/**
 * Who should hold the IP, decided from what this node knows: its three
 * checks' verdicts, the API's holder, and time. No I/O and no timers: the
 * daemon (src/watch/daemon.ts) feeds facts in and carries the answer out
 * (claim through the converge core, yield by dropping the address), then
 * reports how it went. Time comes in with every call, so tests drive it with
 * a fake clock.
 *
 * The rules, in order:
 * 1. Own health down → fault: drop the address, never claim. Back to backup
 *    once it is up again.
 * 2. The API is the arbiter. It routes the IP here → master (the address is
 *    put back if missing). It routes it elsewhere while we are master → we
 *    re-claim only when the peer is dead by our probes and was dead already
 *    when we claimed (so the peer cannot have made the move: an operator or a
 *    stray process did); otherwise we become backup and drop the address.
 * 3. A backup claims when its own health is up, the witness does not answer
 *    at the IP (anything but `down` vetoes), and either nobody holds the IP
 *    or the peer died after the IP went to the holder we saw. That last
 *    clause is what stops ping-pong in a partition between the peers: each
 *    sees the other dead, the first to claim wins, and the loser saw the new
 *    holder after it saw the peer die, so it does not claim back.
 * 4. Preempt (auto_failback): a backup whose priority is above the peer's
 *    takes the IP back once its own health and the peer's have been up for
 *    the preempt delay.
 * 5. Brakes: no claim within the dwell time of the last one; more than
 *    max-moves claims within the window stops claiming until the window
 *    passes (or an operator clears it); while a claim runs, nothing else
 *    but a fault.
 * 6. API unreachable: `hold` keeps the address, `release` drops it (a
 *    master becomes backup); nobody claims, since a claim needs the API.
 */
import type { Health } from '../health.js'
import type { Policy, Role } from './config.js'
import type { SourceAnswer } from './sources/source.js'

/** The API's answer as this node reads it. */
export type ApiView =
  | { reachable: true; holder: 'self' | 'other' | 'nobody'; holderName?: string; pending: boolean }
  | { reachable: false; reason: string }

type ReadApi = Extract<ApiView, { reachable: true }>

export interface Facts {
  peer: Health
  self: Health
  /** Undefined when no witness probe is configured. */
  witness: Health | undefined
  /** Undefined until the API was read once. */
  api: ApiView | undefined
  /** Whether this host carries the address on the watched interface, when known. */
  carried?: boolean
  /** What the source says, when the IP follows one (src/watch/follow.ts); undefined with probes. */
  source?: SourceAnswer
}

export type Action =
  | { do: 'claim'; why: string }
  | { do: 'yield'; why: string }
  | { do: 'nothing'; why?: string }

export interface Decision {
  role: Role
  action: Action
  /** Lines worth logging, once each (a transition, a veto that started, flapping). */
  notes: string[]
}

/** What the decision remembers between calls; plain data, shown by `ipmove status`. */
export interface DecisionState {
  role: Role
  /** A claim is in flight: nothing is decided until it ends. */
  claiming: boolean
  /** When each of our recent claims that moved the IP started. */
  claims: number[]
  /** When this node last became master. */
  masterSince: number | undefined
  /** Claims stopped (anti-flap) until this time. */
  flappingUntil: number | undefined
  /** When the peer check last went down, and when it last went up. */
  peerDownAt: number | undefined
  peerUpAt: number | undefined
  /** When our own health last went up. */
  selfUpAt: number | undefined
  /** The holder as last read, and since when we know it. */
  holder: 'self' | 'other' | 'nobody' | undefined
  holderSince: number | undefined
  /** The last veto or wait logged, so it is logged once. */
  lastWhy: string | undefined
}

export class Decider {
  readonly state: DecisionState = {
    role: 'backup',
    claiming: false,
    claims: [],
    masterSince: undefined,
    flappingUntil: undefined,
    peerDownAt: undefined,
    peerUpAt: undefined,
    selfUpAt: undefined,
    holder: undefined,
    holderSince: undefined,
    lastWhy: undefined,
  }
  private last: { peer: Health; self: Health } = { peer: 'pending', self: 'pending' }

  constructor(protected readonly policy: Policy) {}

  /** Decide once; call it on every check event, API read, claim result and timer. */
  decide(facts: Facts, now: number): Decision {
    const notes: string[] = []
    this.track(facts, now)
    const s = this.state
    const before = s.role
    const action = this.rules(facts, now, notes)
    if (s.role !== before && s.role === 'master') s.masterSince = now
    if (s.role !== before) notes.unshift(`${before} → ${s.role}${action.why ? `: ${action.why}` : ''}`)
    else if (action.do === 'nothing' && action.why && action.why !== s.lastWhy) notes.push(action.why)
    s.lastWhy = action.do === 'nothing' ? action.why : undefined
    if (action.do === 'claim') {
      s.claiming = true
      // Putting back the address of an IP the API routes here moves nothing.
      if (facts.api?.reachable && facts.api.holder !== 'self') s.claims.push(now)
    }
    return { role: s.role, action, notes }
  }

  /** The claim ended: on success this node is master; `superseded` means someone else decided. */
  claimDone(ok: boolean, now: number, superseded = false): Decision {
    this.state.claiming = false
    const before = this.state.role
    if (before === 'fault') {
      // Own health failed while the claim ran: fault stands, and the next decision drops the address again.
    } else if (ok) {
      if (before !== 'master') this.state.masterSince = now
      this.state.role = 'master'
      this.setHolder('self', now)
    } else if (superseded) {
      // Another holder took the IP while our move ran: it is news, so a peer dead before now gives no right to claim back.
      this.state.role = 'backup'
      this.state.holder = 'other'
      this.state.holderSince = now
    }
    const notes = before !== this.state.role ? [`${before} → ${this.state.role}`] : []
    return { role: this.state.role, action: { do: 'nothing' }, notes }
  }

  /** An operator cleared the anti-flap stop. */
  clearFlapping(): void {
    this.state.flappingUntil = undefined
    this.state.claims = []
  }

  /** When time alone may change the decision (dwell, preempt delay, flap window); undefined: never. */
  nextDeadline(now: number): number | undefined {
    const s = this.state
    const times = [
      s.flappingUntil,
      s.claims.length > 0 ? s.claims.at(-1)! + this.policy.dwellMs : undefined,
      // A source's re-assert waits for another node's hold to last dwell (src/watch/follow.ts).
      s.holder === 'other' && s.holderSince !== undefined ? s.holderSince + this.policy.dwellMs : undefined,
      s.selfUpAt !== undefined ? s.selfUpAt + this.policy.preemptDelayMs : undefined,
      s.peerUpAt !== undefined ? s.peerUpAt + this.policy.preemptDelayMs : undefined,
    ]
    const future = times.filter((t): t is number => t !== undefined && t > now)
    return future.length > 0 ? Math.min(...future) : undefined
  }

  private track(facts: Facts, now: number): void {
    const s = this.state
    if (facts.peer !== this.last.peer) {
      if (facts.peer === 'down') s.peerDownAt = now
      if (facts.peer === 'up') s.peerUpAt = now
    }
    if (facts.self !== this.last.self && facts.self === 'up') s.selfUpAt = now
    this.last = { peer: facts.peer, self: facts.self }
    if (facts.api?.reachable && !facts.api.pending) this.setHolder(facts.api.holder, now)
    s.claims = s.claims.filter((t) => t > now - this.policy.moveWindowMs)
    if (s.flappingUntil !== undefined && now >= s.flappingUntil) s.flappingUntil = undefined
  }

  private setHolder(holder: 'self' | 'other' | 'nobody', now: number): void {
    if (holder !== this.state.holder) {
      this.state.holder = holder
      this.state.holderSince = now
    }
  }

  /** The rules of the source this decider follows; the probes' by default. */
  protected rules(facts: Facts, now: number, notes: string[]): Action {
    const s = this.state

    // 1. Own health, even while a claim runs: the address must go now.
    if (facts.self === 'down') {
      s.role = 'fault'
      return { do: 'yield', why: 'own health check failed' }
    }
    if (s.claiming) return { do: 'nothing' }
    if (s.role === 'fault') {
      if (facts.self !== 'up') return { do: 'nothing' }
      s.role = 'backup'
      return { do: 'yield', why: 'own health is back' }
    }

    // 6. The API unreachable.
    const read = this.apiRead(facts.api)
    if ('do' in read) return read
    const api = read

    // 2. The API routes the IP here.
    if (api.holder === 'self') {
      if (s.role !== 'master') {
        s.role = 'master'
        return { do: 'claim', why: 'the API routes the IP here' }
      }
      if (facts.carried === false)
        return this.claim(now, 'the API routes the IP here, but the address is missing', notes)
      return { do: 'nothing' }
    }

    // 2. Elsewhere, while we believe we are master.
    if (s.role === 'master' && api.holder === 'other') {
      const deadBeforeWeHeldIt =
        facts.peer === 'down' &&
        s.peerDownAt !== undefined &&
        s.masterSince !== undefined &&
        s.peerDownAt <= s.masterSince
      if (deadBeforeWeHeldIt) {
        return this.claim(now, 'the API routes the IP elsewhere while the peer is dead: re-asserting', notes)
      }
      s.role = 'backup'
      return { do: 'yield', why: 'the API routes the IP elsewhere' }
    }

    // From here on this node is backup (a master with holder nobody re-claims below).
    if (facts.carried && api.holder === 'other') {
      return { do: 'yield', why: 'this host carries the address but the API routes it elsewhere' }
    }
    if (facts.self !== 'up') return { do: 'nothing', why: 'own health not established yet' }

    // 3. Takeover.
    if (api.holder === 'nobody') {
      if (facts.peer === 'up' && this.policy.priority < this.policy.peerPriority) {
        return { do: 'nothing', why: 'nobody holds the IP; the peer has the higher priority' }
      }
      return this.claim(now, 'nobody holds the IP', notes, facts)
    }
    if (facts.peer === 'down') {
      const peerDiedAfterMove =
        s.peerDownAt !== undefined && s.holderSince !== undefined && s.peerDownAt > s.holderSince
      if (!peerDiedAfterMove) {
        return {
          do: 'nothing',
          why: 'the peer is dead by our probes, but the IP went to its holder after that: not claiming back (no ping-pong)',
        }
      }
      return this.claim(now, 'the peer is dead', notes, facts)
    }

    // 4. Preempt.
    if (this.policy.preempt && this.policy.priority > this.policy.peerPriority && facts.peer === 'up') {
      const since = Math.max(s.selfUpAt ?? now, s.peerUpAt ?? now)
      if (now - since < this.policy.preemptDelayMs) {
        return { do: 'nothing', why: `preempt: waiting ${this.policy.preemptDelayMs} ms of good health` }
      }
      return this.claim(now, 'preempt: this node has the higher priority', notes, facts)
    }
    return { do: 'nothing' }
  }

  /** The API's answer once it names the holder; until then (unreadable, not read yet, an operation pending), what to do. */
  protected apiRead(api: ApiView | undefined): ReadApi | Action {
    if (api && !api.reachable) {
      if (this.state.role === 'master' && this.policy.apiUnreachable === 'release') {
        this.state.role = 'backup'
        return { do: 'yield', why: `the API is unreachable (${api.reason}); policy release` }
      }
      return {
        do: 'nothing',
        why: `the API is unreachable (${api.reason}); policy ${this.policy.apiUnreachable}`,
      }
    }
    if (!api) return { do: 'nothing', why: 'waiting for the first read of the API' }
    if (api.pending) return { do: 'nothing', why: 'an operation on the IP is in progress at the API' }
    return api
  }

  /** A claim, unless the witness vetoes or the brakes hold it back. */
  protected claim(now: number, why: string, notes: string[], facts?: Facts): Action {
    const s = this.state
    if (facts?.witness !== undefined && facts.witness !== 'down') {
      return {
        do: 'nothing',
        why: `${why}, but the witness still answers at the IP (${facts.witness}): not claiming`,
      }
    }
    if (s.flappingUntil !== undefined) {
      return { do: 'nothing', why: `${why}, but claims are stopped (anti-flap) until the window passes` }
    }
    if (s.claims.length >= this.policy.maxMoves) {
      s.flappingUntil = s.claims[0]! + this.policy.moveWindowMs
      const secs = Math.ceil((s.flappingUntil - now) / 1000)
      notes.push(
        `FLAPPING: ${s.claims.length} claims within ${this.policy.moveWindowMs / 1000} s; not claiming for ${secs} s (or until cleared)`,
      )
      return { do: 'nothing', why: `${why}, but claims are stopped (anti-flap)` }
    }
    const last = s.claims.at(-1)
    if (last !== undefined && now - last < this.policy.dwellMs) {
      return {
        do: 'nothing',
        why: `${why}; dwell: the last claim was less than ${this.policy.dwellMs} ms ago`,
      }
    }
    return { do: 'claim', why }
  }
}
