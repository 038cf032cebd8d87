import { describe, expect, it } from 'vitest'
import { formatDuration, formatTimeline, renderSnapshot, summarizeSnapshot } from '../src/watch/snapshot.js'
import { sampleSnapshot, T0 } from './helpers/snapshot.js'

describe('daemon snapshot', () => {
  it('survives JSON unchanged (it crosses the control socket as is)', () => {
    const snapshot = sampleSnapshot()
    expect(JSON.parse(JSON.stringify(snapshot))).toEqual(snapshot)
  })

  it('renders role, holder, checks, dwell and the failover timeline', () => {
    const text = renderSnapshot(sampleSnapshot()).join('\n')
    expect(text).toContain('ipmove watch (pid 4242), up 1 h 0 min, config /etc/ipmove/watch.conf')
    expect(text).toContain('web 203.0.113.10 (ovh): master for 5.0 s, carried here')
    expect(text).toContain('API routes it to node-b (i-2), this node (read 1.5 s ago)')
    expect(text).toContain(
      'peer: down, last success 6.0 s ago; last failure 5.2 s ago: icmp 192.0.2.11: no answer',
    )
    expect(text).toContain('self: up, last success 6.0 s ago')
    expect(text).toContain('anti-flap: dwelling, no move for 25 s')
    expect(text).toContain('5.0 s ago: backup → master: peer dead (no answer for 700 ms)')
    expect(text).toContain(
      'peer dead → decision +2 ms → API accepted +50 ms → API done +300 ms → alias added +310 ms → announced +315 ms → witness answers +500 ms',
    )
  })

  it('says when the cloud maps the IP and no host carries an address', () => {
    const text = renderSnapshot(sampleSnapshot({ carried: null })).join('\n')
    expect(text).toContain(
      'web 203.0.113.10 (ovh): master for 5.0 s, mapped by the cloud (no address on hosts)',
    )
  })

  it('names the anti-flap stop and how to clear it', () => {
    const snapshot = sampleSnapshot({
      role: 'stopped',
      antiFlap: {
        stopped: true,
        stoppedUntil: T0 + 90_000,
        movesInWindow: 4,
        maxMoves: 3,
        windowMs: 600_000,
        dwellUntil: null,
      },
    })
    const text = renderSnapshot(snapshot).join('\n')
    expect(text).toContain('anti-flap: STOPPED claiming after 4 moves in 10 min 0 s, lifts in 1 min 30 s')
    expect(text).toContain('ipmove status --watch --clear-flap web')
    expect(summarizeSnapshot(snapshot)).toBe('web stopped (anti-flap stop)')
  })

  it('shows an IP routed nowhere and a failed read', () => {
    const text = renderSnapshot(
      sampleSnapshot({ holder: { id: null, name: null, isSelf: false, readAt: null, error: 'HTTP 503' } }),
    ).join('\n')
    expect(text).toContain('API routes it to nowhere (read never); last read failed: HTTP 503')
  })

  it('skips the steps not reached in a timeline', () => {
    expect(
      formatTimeline({
        peerDeclaredDead: null,
        decision: 100,
        apiAccepted: 140,
        apiDone: null,
        aliasAdded: null,
        announced: null,
        witnessAnswers: null,
      }),
    ).toBe('decision → API accepted +40 ms')
  })

  it('formats durations at every scale', () => {
    expect([
      formatDuration(12.4),
      formatDuration(1234),
      formatDuration(45_000),
      formatDuration(185_000),
    ]).toEqual(['12 ms', '1.2 s', '45 s', '3 min 5 s'])
  })
})
