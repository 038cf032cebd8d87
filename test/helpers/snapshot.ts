/** A daemon snapshot to render, serve and scrape in tests. */
import { type DaemonSnapshot, type IpSnapshot, SNAPSHOT_VERSION } from '../../src/watch/snapshot.js'

export const T0 = 1_700_000_000_000

/** A snapshot of one IP that failed over 5 s before it was taken. */
export function sampleSnapshot(overrides: Partial<IpSnapshot> = {}): DaemonSnapshot {
  const check = (kind: 'peer' | 'self' | 'witness', health: 'up' | 'down') => ({
    kind,
    health,
    lastSuccessAt: T0 - 6000,
    lastFailureAt: health === 'down' ? T0 - 5200 : null,
    lastFailure: health === 'down' ? 'icmp 192.0.2.11: no answer within 250 ms' : null,
    probes: [{ label: 'icmp 192.0.2.11', ok: health === 'up', at: T0 - 100, ms: 0.2, detail: 'rtt 0.2 ms' }],
  })
  return {
    version: SNAPSHOT_VERSION,
    pid: 4242,
    startedAt: T0 - 3_600_000,
    takenAt: T0,
    configPath: '/etc/ipmove/watch.conf',
    ips: [
      {
        name: 'web',
        address: '203.0.113.10',
        provider: 'ovh',
        role: 'master',
        roleSince: T0 - 5000,
        holder: { id: 'i-2', name: 'node-b', isSelf: true, readAt: T0 - 1500, error: null },
        carried: true,
        checks: { peer: check('peer', 'down'), self: check('self', 'up'), witness: check('witness', 'down') },
        antiFlap: {
          stopped: false,
          stoppedUntil: null,
          movesInWindow: 1,
          maxMoves: 3,
          windowMs: 600_000,
          dwellUntil: T0 + 25_000,
        },
        transitions: [
          {
            at: T0 - 5000,
            from: 'backup',
            to: 'master',
            reason: 'peer dead (no answer for 700 ms)',
            timeline: {
              peerDeclaredDead: T0 - 5000,
              decision: T0 - 4998,
              apiAccepted: T0 - 4950,
              apiDone: T0 - 4700,
              aliasAdded: T0 - 4690,
              announced: T0 - 4685,
              witnessAnswers: T0 - 4500,
            },
            error: null,
          },
        ],
        source: null,
        transitionsTotal: 3,
        ...overrides,
      },
    ],
  }
}
