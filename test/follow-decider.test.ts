/**
 * The decision for an IP that follows a source (src/watch/follow.ts), as the
 * etcd source needs it: a release while a claim still runs drops the address
 * at once (a fenced lease holder must not wait for an API it may no longer
 * reach), and again once the claim ends.
 */
import { describe, expect, it } from 'vitest'
import type { Policy } from '../src/watch/config.js'
import type { Facts } from '../src/watch/decide.js'
import { FollowDecider } from '../src/watch/follow.js'

const POLICY: Policy = {
  priority: 100,
  peerPriority: 100,
  preempt: false,
  preemptDelayMs: 5000,
  dwellMs: 0,
  maxMoves: 3,
  moveWindowMs: 300_000,
  apiUnreachable: 'hold',
}

const facts = (wish: 'hold' | 'release', carried: boolean): Facts => ({
  peer: 'pending',
  self: 'pending',
  witness: undefined,
  api: { reachable: true, holder: 'other', holderName: 'node-b', pending: false },
  carried,
  source: { wish, why: wish === 'hold' ? 'etcd: this node holds the lease' : 'etcd: fenced', at: 0 },
})

describe('following a source', () => {
  it('a release while a claim runs drops the address at once, and again when the claim ends', () => {
    const decider = new FollowDecider(POLICY)
    expect(decider.decide(facts('hold', false), 1000).action.do).toBe('claim')
    // The claim put the address on and now waits for the API; the lease holder fences itself.
    const during = decider.decide(facts('release', true), 1500)
    expect(during.action).toEqual({ do: 'yield', why: 'etcd: fenced' })
    expect(during.role).toBe('backup')
    // The claim ends (its move landed): the source still says release, so the address goes again.
    decider.claimDone(true, 4000)
    expect(decider.decide(facts('release', true), 4001).action).toEqual({ do: 'yield', why: 'etcd: fenced' })
  })
})
