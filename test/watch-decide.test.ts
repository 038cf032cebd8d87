import { describe, expect, it } from 'vitest'
import type { Policy } from '../src/watch/config.js'
import { type ApiView, Decider, type Facts } from '../src/watch/decide.js'
import { FollowDecider } from '../src/watch/follow.js'
import { drive } from './helpers/decider.js'

const POLICY: Policy = {
  priority: 100,
  peerPriority: 100,
  preempt: false,
  preemptDelayMs: 5000,
  dwellMs: 10_000,
  maxMoves: 3,
  moveWindowMs: 300_000,
  apiUnreachable: 'hold',
}

const api = (holder: 'self' | 'other' | 'nobody', pending = false): ApiView => ({
  reachable: true,
  holder,
  pending,
})
const down: ApiView = { reachable: false, reason: 'connect ECONNREFUSED' }

/** A decider driven by a fake clock: `at(ms, facts)` decides at that time. */
function node(policy: Partial<Policy> = {}) {
  return drive(new Decider({ ...POLICY, ...policy }))
}

/** A healthy backup at t=3000 that knows the peer holds the IP. */
function settledBackup(policy: Partial<Policy> = {}) {
  const n = node(policy)
  n.at(0, { api: api('other') })
  n.at(3000, { self: 'up', peer: 'up' })
  return n
}

describe('the decision', () => {
  it('waits for its own health and the first API read before anything', () => {
    const n = node()
    expect(n.at(0).action).toMatchObject({ do: 'nothing', why: 'waiting for the first read of the API' })
    expect(n.at(10, { api: api('nobody') }).action).toMatchObject({ do: 'nothing' })
    expect(n.decider.state.role).toBe('backup')
  })

  it('claims once the peer dies after the IP went to it, and becomes master when the claim lands', () => {
    const n = settledBackup()
    expect(n.at(4000).action.do).toBe('nothing')
    const d = n.at(5000, { peer: 'down' })
    expect(d.action).toEqual({ do: 'claim', why: 'the peer is dead' })
    // Nothing else while the claim runs.
    expect(n.at(5100).action).toEqual({ do: 'nothing' })
    expect(n.done(5200).notes).toEqual(['backup → master'])
    expect(n.at(5300, { api: api('self') })).toMatchObject({ role: 'master', action: { do: 'nothing' } })
  })

  it('the witness vetoes a takeover while the IP still answers', () => {
    const n = settledBackup()
    n.at(3500, { witness: 'up' })
    const d = n.at(5000, { peer: 'down' })
    expect(d.action.do).toBe('nothing')
    expect(d.notes[0]).toContain('the witness still answers at the IP (up)')
    // Still pending counts as a veto too; only down lets the claim through.
    expect(n.at(5100, { witness: 'pending' }).action.do).toBe('nothing')
    expect(n.at(5200, { witness: 'down' }).action.do).toBe('claim')
  })

  it('own health failing → fault and yield, even as master; recovery → backup', () => {
    const n = node()
    n.at(0, { api: api('self'), self: 'up', peer: 'up' })
    n.done(1)
    expect(n.decider.state.role).toBe('master')
    const fault = n.at(100, { self: 'down' })
    expect(fault).toMatchObject({
      role: 'fault',
      action: { do: 'yield' },
      notes: ['master → fault: own health check failed'],
    })
    // Never claims while in fault, even with the peer dead and nobody holding the IP.
    expect(n.at(200, { peer: 'down', api: api('nobody') }).action.do).toBe('yield')
    expect(n.at(300, { self: 'pending' }).action.do).toBe('nothing')
    const back = n.at(400, { self: 'up' })
    expect(back).toMatchObject({ role: 'backup', notes: ['fault → backup: own health is back'] })
  })

  it('a fault during a claim drops the address at once, and the claim landing does not make it master', () => {
    const n = settledBackup()
    expect(n.at(5000, { peer: 'down' }).action.do).toBe('claim')
    expect(n.at(5100, { self: 'down' })).toMatchObject({ role: 'fault', action: { do: 'yield' } })
    n.done(5200)
    expect(n.decider.state.role).toBe('fault')
    expect(n.at(5300).action.do).toBe('yield')
  })

  it('claims an IP nobody holds, unless the live peer has the higher priority', () => {
    const low = node({ priority: 50 })
    low.at(0, { api: api('nobody'), self: 'up', peer: 'up' })
    expect(low.at(10).action).toMatchObject({
      do: 'nothing',
      why: 'nobody holds the IP; the peer has the higher priority',
    })
    expect(low.at(20, { peer: 'down' }).action.do).toBe('claim')
    const high = node({ priority: 150 })
    expect(high.at(0, { api: api('nobody'), self: 'up', peer: 'up' }).action.do).toBe('claim')
  })

  it('becomes master when the API routes the IP here (after a restart), putting the address back', () => {
    const n = node()
    const d = n.at(0, { api: api('self'), self: 'up' })
    expect(d).toMatchObject({ role: 'master', action: { do: 'claim', why: 'the API routes the IP here' } })
    n.done(50)
    // A claim that moved nothing does not count toward anti-flap.
    expect(n.decider.state.claims).toEqual([])
    expect(n.at(100, { carried: false }).action.do).toBe('claim')
  })

  it('a master seeing the API route elsewhere while the peer lives becomes backup and drops the address', () => {
    const n = node()
    n.at(0, { api: api('self'), self: 'up', peer: 'up' })
    n.done(10)
    const d = n.at(10_000, { api: api('other') })
    expect(d).toMatchObject({
      role: 'backup',
      action: { do: 'yield', why: 'the API routes the IP elsewhere' },
    })
  })

  it('a master re-asserts when the IP was moved behind its back to a peer dead before it took over', () => {
    const n = settledBackup()
    n.at(4000, { peer: 'down' })
    n.done(4100)
    n.at(4200, { api: api('self') })
    const d = n.at(60_000, { api: api('other') })
    expect(d.action).toMatchObject({ do: 'claim', why: expect.stringContaining('re-asserting') })
  })

  it('partition between the peers: the IP moves once and stays (no ping-pong)', () => {
    // A holds the IP; the path between A and B breaks; both still reach the API.
    const a = node()
    a.at(0, { api: api('self'), self: 'up', peer: 'up' })
    a.done(10)
    const b = settledBackup()
    // Both see each other die.
    a.at(5000, { peer: 'down' })
    expect(b.at(5000, { peer: 'down' }).action.do).toBe('claim')
    b.done(5100)
    // A's next read shows B as the holder: B was alive when A became master, so A yields.
    expect(a.at(8000, { api: api('other') })).toMatchObject({ role: 'backup', action: { do: 'yield' } })
    // And stays backup: the peer died before the IP went to it.
    for (let t = 9000; t < 400_000; t += 10_000) {
      expect(a.at(t).action.do).not.toBe('claim')
      expect(b.at(t, { api: api('self') }).action.do).toBe('nothing')
    }
    expect([a.decider.state.role, b.decider.state.role]).toEqual(['backup', 'master'])
    // Once the partition heals and B then really dies, A takes over again.
    a.at(500_000, { peer: 'up' })
    expect(a.at(510_000, { peer: 'down' }).action.do).toBe('claim')
  })

  it('a backup carrying the address while the API routes it elsewhere drops it', () => {
    const n = settledBackup()
    expect(n.at(4000, { carried: true }).action).toMatchObject({ do: 'yield' })
  })

  it('preempt: a higher-priority node takes the IP back after the preempt delay of good health', () => {
    const n = node({ preempt: true, priority: 150, preemptDelayMs: 5000 })
    n.at(0, { api: api('other') })
    n.at(1000, { self: 'up', peer: 'up' })
    expect(n.at(3000).action).toMatchObject({
      do: 'nothing',
      why: expect.stringContaining('preempt: waiting'),
    })
    expect(n.decider.nextDeadline(3000)).toBe(6000)
    expect(n.at(6000).action).toMatchObject({
      do: 'claim',
      why: 'preempt: this node has the higher priority',
    })
  })

  it('preempt off, or a lower priority: nothing moves while the peer holds the IP', () => {
    for (const policy of [
      { preempt: false, priority: 150 },
      { preempt: true, priority: 50 },
      { preempt: true },
    ]) {
      const n = node(policy)
      n.at(0, { api: api('other'), self: 'up', peer: 'up' })
      expect(n.at(100_000).action.do).toBe('nothing')
    }
  })

  it('dwell: no second claim within the dwell time of the last', () => {
    const n = node({ dwellMs: 10_000 })
    n.at(0, { api: api('nobody'), self: 'up', peer: 'down' })
    n.done(100, false)
    const d = n.at(5000)
    expect(d.action).toMatchObject({ do: 'nothing', why: expect.stringContaining('dwell') })
    expect(n.decider.nextDeadline(5000)).toBe(10_000)
    expect(n.at(10_000).action.do).toBe('claim')
  })

  it('anti-flap: more than max-moves claims in the window stops claiming, loudly, until the window passes', () => {
    const n = node({ dwellMs: 1000, maxMoves: 3, moveWindowMs: 60_000 })
    expect(n.at(0, { api: api('nobody'), self: 'up', peer: 'down' }).action.do).toBe('claim')
    n.done(10, false)
    for (const t of [2000, 4000]) {
      expect(n.at(t).action.do).toBe('claim')
      n.done(t + 10, false)
    }
    const stop = n.at(6000)
    expect(stop.action.do).toBe('nothing')
    expect(
      stop.notes.some((l) => l.startsWith('FLAPPING: 3 claims within 60 s; not claiming for 54 s')),
    ).toBe(true)
    expect(n.decider.state.flappingUntil).toBe(60_000)
    expect(n.at(30_000).action.do).toBe('nothing')
    expect(n.at(60_000).action.do).toBe('claim')
  })

  it('an operator clears the anti-flap stop', () => {
    const n = node({ dwellMs: 1, maxMoves: 1 })
    n.at(0, { api: api('nobody'), self: 'up', peer: 'down' })
    n.done(1, false)
    expect(n.at(10).action.do).toBe('nothing')
    n.decider.clearFlapping()
    expect(n.at(20).action.do).toBe('claim')
  })

  it('API unreachable, policy hold: a master keeps the address, a backup claims nothing', () => {
    const m = node()
    m.at(0, { api: api('self'), self: 'up', peer: 'up' })
    m.done(1)
    expect(m.at(100, { api: down })).toMatchObject({ role: 'master', action: { do: 'nothing' } })
    const b = settledBackup()
    expect(b.at(5000, { api: down, peer: 'down' }).action.do).toBe('nothing')
  })

  it('API unreachable, policy release: a master drops the address and becomes backup', () => {
    const m = node({ apiUnreachable: 'release' })
    m.at(0, { api: api('self'), self: 'up', peer: 'up' })
    m.done(1)
    const d = m.at(100, { api: down })
    expect(d).toMatchObject({
      role: 'backup',
      action: { do: 'yield', why: expect.stringContaining('policy release') },
    })
  })

  it('waits while an operation on the IP is pending at the API', () => {
    const n = settledBackup()
    expect(n.at(5000, { peer: 'down', api: api('other', true) }).action).toMatchObject({ do: 'nothing' })
  })

  it('a superseded claim leaves the node backup; the same reason is noted once', () => {
    const n = settledBackup()
    n.at(5000, { peer: 'down' })
    n.done(5100, false, true)
    expect(n.decider.state.role).toBe('backup')
    // The peer died before the IP went to the new holder: no claim, even after the dwell time.
    const first = n.at(20_000)
    const second = n.at(30_000)
    expect(first.action.do).toBe('nothing')
    expect(first.notes).toEqual([expect.stringContaining('not claiming back (no ping-pong)')])
    expect(second.notes).toEqual([])
  })
})

describe('the decision when following a source', () => {
  const hold = { wish: 'hold' as const, why: 'ucarp says hold', at: 0 }

  it('takes the IP back from another node only once that node has held it for dwell (a handover is no stale notify)', () => {
    const decider = new FollowDecider({ ...POLICY, dwellMs: 3000 })
    const facts = (holder: 'self' | 'other'): Facts => ({
      peer: 'pending',
      self: 'pending',
      witness: undefined,
      api: api(holder),
      source: hold,
    })
    expect(decider.decide(facts('self'), 0).action).toMatchObject({ do: 'claim' })
    decider.claimDone(true, 100)
    expect(decider.decide(facts('self'), 5000).action.do).toBe('nothing')
    // Another node took it at 10 s (its engine says master too, for a moment).
    const early = decider.decide(facts('other'), 10_000)
    expect(early.action).toMatchObject({ do: 'nothing' })
    expect(early.action.do === 'nothing' && early.action.why).toMatch(
      /since 0 ms: dwell 3000 ms before taking it back/,
    )
    expect(decider.nextDeadline(10_000)).toBe(13_000)
    expect(decider.decide(facts('other'), 12_999).action.do).toBe('nothing')
    // Still there after dwell: a stale notify, repaired.
    expect(decider.decide(facts('other'), 13_000).action).toMatchObject({ do: 'claim' })
  })
})
