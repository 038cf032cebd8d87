/**
 * The decision when an IP follows a source (src/watch/sources/) instead of
 * ipmove's probes: the source says who should hold, the API is checked
 * against it on every read. Pure, like the probe decider it extends (same
 * state, brakes, claim bookkeeping and API-unreachable policy); only the
 * rules differ:
 *
 * 1. The source says do not hold → backup; the address is dropped (the API
 *    is never touched: the holder's own daemon moves the IP), even while a
 *    claim runs: it is dropped again once the claim ends.
 * 2. The API's holder is unknown → as with probes (wait; `api-unreachable`
 *    decides whether a master keeps the address).
 * 3. The source says hold: the API routes the IP here → master (the address
 *    is put back if missing); it routes it elsewhere or nowhere → claim,
 *    within the dwell and anti-flap brakes. This is the re-assert: a notify
 *    that went stale (both nodes were master, the other one moved the IP
 *    last) is repaired at the next read of the API. Taking the IP back from
 *    another node also waits until that node has held it for `dwell`: at a
 *    handover both engines say master for a moment (ucarp for about two
 *    advertisement intervals), and the old master must not move it back.
 * 4. The source cannot say (unknown) → claim nothing; a master keeps the
 *    address while the API routes the IP here, and drops it when the API
 *    routes it elsewhere.
 */
import { type Action, Decider, type Facts } from './decide.js'

export class FollowDecider extends Decider {
  protected override rules(facts: Facts, now: number, notes: string[]): Action {
    const s = this.state
    const source = facts.source ?? { wish: 'unknown', why: 'the source has not answered yet' }

    // Even while a claim runs (it may hang on an API this node no longer reaches): a lease holder
    // that fenced itself must have dropped the address before another node can be elected.
    if (source.wish === 'release') {
      const wasMaster = s.role !== 'backup'
      s.role = 'backup'
      if (wasMaster || facts.carried || s.claiming) return { do: 'yield', why: source.why }
      return { do: 'nothing' }
    }
    if (s.claiming) return { do: 'nothing' }

    const read = this.apiRead(facts.api)
    if ('do' in read) return read
    const api = read

    if (source.wish === 'unknown') {
      if (api.holder !== 'self' && (s.role === 'master' || facts.carried)) {
        s.role = 'backup'
        return { do: 'yield', why: `the API routes the IP elsewhere and ${source.why}` }
      }
      return { do: 'nothing', why: `not claiming: ${source.why}` }
    }

    if (api.holder === 'self') {
      if (s.role !== 'master') {
        s.role = 'master'
        return { do: 'claim', why: `${source.why}; the API routes the IP here` }
      }
      if (facts.carried === false) {
        return this.claim(now, `${source.why}; the API routes the IP here, but the address is missing`, notes)
      }
      return { do: 'nothing' }
    }
    const where = api.holder === 'nobody' ? 'nowhere' : `to ${api.holderName ?? 'another node'}`
    const heldFor = s.holderSince === undefined ? undefined : now - s.holderSince
    if (api.holder === 'other' && heldFor !== undefined && heldFor < this.policy.dwellMs) {
      return {
        do: 'nothing',
        why: `${source.why}; the API routes the IP ${where} since ${heldFor} ms: dwell ${this.policy.dwellMs} ms before taking it back (its engine may be handing over)`,
      }
    }
    return this.claim(now, `${source.why}; the API routes the IP ${where}`, notes)
  }
}
