/**
 * The decision of an IP that follows a source (src/watch/follow.ts), pure,
 * with a fake clock: what the source says against what the API says.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { MemoryLogger } from '../src/output.js'
import { runWatch } from '../src/services/watch.js'
import { FOLLOW_DEFAULTS, type Policy } from '../src/watch/config.js'
import type { ApiView } from '../src/watch/decide.js'
import { FollowDecider } from '../src/watch/follow.js'
import type { SourceAnswer, Wish } from '../src/watch/sources/source.js'
import { drive } from './helpers/decider.js'

const POLICY: Policy = {
  priority: 100,
  peerPriority: 100,
  preempt: false,
  preemptDelayMs: 5000,
  apiUnreachable: 'hold',
  ...FOLLOW_DEFAULTS,
}

const api = (holder: 'self' | 'other' | 'nobody', pending = false): ApiView => ({
  reachable: true,
  holder,
  holderName: holder === 'other' ? 'node-b' : undefined,
  pending,
})
const says = (wish: Wish): SourceAnswer => ({ wish, why: `keepalived says ${wish}`, at: 0 })

function node(policy: Partial<Policy> = {}) {
  return drive(new FollowDecider({ ...POLICY, ...policy }))
}

describe('following a source', () => {
  it('hold: claims against another holder or nobody, becomes master where the API already routes here', () => {
    const n = node()
    expect(n.at(0, { api: api('other'), source: says('hold') }).action).toEqual({
      do: 'claim',
      why: 'keepalived says hold; the API routes the IP to node-b',
    })
    n.decider.claimDone(true, 100)
    expect(n.at(200, { api: api('self'), carried: true })).toMatchObject({
      role: 'master',
      action: { do: 'nothing' },
    })
    // The address went missing: put it back (no API write counted as a move).
    expect(n.at(300, { carried: false }).action).toMatchObject({ do: 'claim' })
    const fresh = node()
    expect(fresh.at(0, { api: api('self'), carried: false, source: says('hold') })).toMatchObject({
      role: 'master',
      action: { do: 'claim', why: 'keepalived says hold; the API routes the IP here' },
    })
    expect(node().at(0, { api: api('nobody'), source: says('hold') }).action).toMatchObject({ do: 'claim' })
  })

  it('a stale move is re-asserted at the next read, within the anti-flap stop', () => {
    const n = node({ maxMoves: 2, moveWindowMs: 60_000 })
    for (const t of [0, 10_000]) {
      expect(n.at(t, { api: api('other'), source: says('hold') }).action.do).toBe('claim')
      n.decider.claimDone(true, t + 100)
      n.at(t + 200, { api: api('self'), carried: true })
    }
    const third = n.at(20_000, { api: api('other') })
    expect(third.action).toMatchObject({ do: 'nothing', why: expect.stringContaining('anti-flap') })
    expect(third.notes.join('\n')).toMatch(/FLAPPING: 2 claims within 60 s/)
  })

  it('release: backup, the address dropped, whatever the API says (even unread)', () => {
    const n = node()
    n.at(0, { api: api('other'), source: says('hold') })
    n.decider.claimDone(true, 100)
    expect(n.at(200, { api: undefined, source: says('release') })).toMatchObject({
      role: 'backup',
      action: { do: 'yield', why: 'keepalived says release' },
    })
    // A backup that carries nothing has nothing to do; one that carries the address drops it.
    expect(n.at(300).action).toEqual({ do: 'nothing' })
    expect(n.at(400, { carried: true }).action).toMatchObject({ do: 'yield' })
  })

  it('unknown: claims nothing; a master keeps the address while the API routes here, drops it when not', () => {
    const n = node()
    expect(n.at(0, { api: api('other') }).action).toEqual({
      do: 'nothing',
      why: 'not claiming: the source has not answered yet',
    })
    n.at(100, { source: says('hold') })
    n.decider.claimDone(true, 200)
    expect(n.at(300, { api: api('self'), carried: true, source: says('unknown') })).toMatchObject({
      role: 'master',
      action: { do: 'nothing' },
    })
    expect(n.at(400, { api: api('other') })).toMatchObject({
      role: 'backup',
      action: { do: 'yield', why: 'the API routes the IP elsewhere and keepalived says unknown' },
    })
  })

  it('nothing while an operation is pending or the API is unread; a release drops the address even while a claim runs; api-unreachable = release drops a master', () => {
    const n = node({ apiUnreachable: 'release' })
    expect(n.at(0, { source: says('hold') }).action).toMatchObject({
      do: 'nothing',
      why: 'waiting for the first read of the API',
    })
    expect(n.at(10, { api: api('other', true) }).action).toMatchObject({
      do: 'nothing',
      why: expect.stringContaining('in progress'),
    })
    expect(n.at(20, { api: api('other') }).action.do).toBe('claim')
    // The claim may hang on an API this node no longer reaches (a fenced etcd leader): the address goes at once
    // (follow-decider.test.ts: and again once the claim ends).
    expect(n.at(30, { source: says('release'), carried: true }).action).toEqual({
      do: 'yield',
      why: 'keepalived says release',
    })
    n.decider.claimDone(true, 40)
    n.at(50, { api: api('self'), carried: true, source: says('hold') })
    expect(n.at(60, { api: { reachable: false, reason: 'connect ECONNREFUSED' } })).toMatchObject({
      role: 'backup',
      action: { do: 'yield', why: 'the API is unreachable (connect ECONNREFUSED); policy release' },
    })
  })
})

describe('ipmove watch --check with a source', () => {
  it('names the source it follows, in the line and in the summary', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ipmove-follow-'))
    try {
      const path = join(dir, 'ipmove.conf')
      writeFileSync(
        path,
        '[ip.web]\nip = 203.0.113.10\nprovider = ovh\ninterface = eth0\n\n[watch.web]\nsource = keepalived-fifo\nkeepalived-fifo = /run/k.fifo\nkeepalived-instance = VI_1\n',
        { mode: 0o600 },
      )
      const log = new MemoryLogger()
      const summary = await runWatch(
        { configPath: path, check: true, releaseOnStop: false, env: { HOME: dir } },
        log,
      )
      expect(log.lines.join('\n')).toContain(
        'web: 203.0.113.10/32 with ovh, following keepalived-fifo, 0 actions: valid',
      )
      expect(summary.ips).toEqual([
        {
          name: 'web',
          ip: '203.0.113.10/32',
          provider: 'ovh',
          source: 'keepalived-fifo',
          probes: 0,
          actions: 0,
        },
      ])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
