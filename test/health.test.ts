import { describe, expect, it } from 'vitest'
import {
  Check,
  type CheckEvent,
  FAST_PROFILE,
  HEALTH_DEFAULTS,
  type HealthEvent,
  type HealthTimings,
  HealthTracker,
  PROBE_DEFAULTS,
} from '../src/health.js'
import { usage } from './helpers/errors.js'

const T: HealthTimings = { initdeadMs: 2000, warntimeMs: 300, deadtimeMs: 600, rise: 3 }

/** A clock the test moves by hand. */
function fakeClock(start = 1_000_000) {
  let t = start
  return {
    now: () => t,
    advance(ms: number) {
      t += ms
    },
    set(at: number) {
      t = at
    },
  }
}

const types = (events: HealthEvent[]) => events.map((e) => e.type)

/** Feed `n` results `interval` ms apart, gathering the events. */
function feed(
  tracker: HealthTracker,
  clock: ReturnType<typeof fakeClock>,
  n: number,
  ok: boolean,
  interval = 50,
): HealthEvent[] {
  const events: HealthEvent[] = []
  for (let i = 0; i < n; i++) {
    clock.advance(interval)
    events.push(...tracker.observe(ok))
  }
  return events
}

describe('HealthTracker', () => {
  it('stays pending until `rise` successes in a row, then goes up once', () => {
    const clock = fakeClock()
    const tracker = new HealthTracker(T, clock.now)
    expect(tracker.state).toBe('pending')
    expect(feed(tracker, clock, 2, true)).toEqual([])
    expect(tracker.state).toBe('pending')
    const events = feed(tracker, clock, 1, true)
    expect(events).toEqual([{ type: 'up', at: clock.now() }])
    expect(feed(tracker, clock, 5, true)).toEqual([])
    expect(tracker.state).toBe('up')
  })

  it('declares a silent target dead exactly when initdead ends, not before', () => {
    const clock = fakeClock()
    const start = clock.now()
    const tracker = new HealthTracker(T, clock.now)
    expect(tracker.nextDeadline()).toBe(start + T.initdeadMs)
    clock.set(start + T.initdeadMs - 1)
    expect(tracker.poll()).toEqual([])
    expect(feed(tracker, clock, 0, false)).toEqual([])
    clock.set(start + T.initdeadMs)
    expect(tracker.poll()).toEqual([
      { type: 'down', at: start + T.initdeadMs, silentMs: T.initdeadMs, after: 'initdead' },
    ])
    expect(tracker.state).toBe('down')
    expect(tracker.nextDeadline()).toBeUndefined()
    expect(tracker.poll()).toEqual([])
  })

  it('gives initdead, not deadtime, to a target that has not risen yet', () => {
    const clock = fakeClock()
    const start = clock.now()
    const tracker = new HealthTracker(T, clock.now)
    feed(tracker, clock, 2, true) // two of three
    clock.set(start + T.deadtimeMs + 500)
    expect(tracker.poll()).toEqual([])
    clock.set(start + T.initdeadMs)
    const [down] = tracker.poll()
    expect(down).toMatchObject({ type: 'down', after: 'initdead', silentMs: T.initdeadMs - 100 })
  })

  it('warns once at warntime, then reports how long the silence lasted', () => {
    const clock = fakeClock()
    const tracker = new HealthTracker(T, clock.now)
    feed(tracker, clock, 3, true)
    const last = clock.now()
    expect(tracker.nextDeadline()).toBe(last + T.warntimeMs)
    clock.set(last + T.warntimeMs)
    expect(tracker.poll()).toEqual([{ type: 'late', at: last + T.warntimeMs, silentMs: T.warntimeMs }])
    expect(tracker.nextDeadline()).toBe(last + T.deadtimeMs)
    clock.advance(50)
    expect(tracker.poll()).toEqual([])
    expect(tracker.observe(false)).toEqual([])
    clock.set(last + 420)
    expect(tracker.observe(true)).toEqual([{ type: 'resumed', at: last + 420, gapMs: 420 }])
    expect(tracker.state).toBe('up')
    expect(tracker.nextDeadline()).toBe(last + 420 + T.warntimeMs)
  })

  it('declares an up target dead deadtime after its last success; failures do not hasten it', () => {
    const clock = fakeClock()
    const tracker = new HealthTracker(T, clock.now)
    feed(tracker, clock, 4, true)
    const last = clock.now()
    const during = feed(tracker, clock, 11, false) // 550 ms of failures
    expect(types(during)).toEqual(['late'])
    expect(tracker.state).toBe('up')
    clock.set(last + T.deadtimeMs)
    expect(tracker.poll()).toEqual([
      { type: 'down', at: last + T.deadtimeMs, silentMs: T.deadtimeMs, after: 'deadtime' },
    ])
  })

  it('notices deadtime even when the next result comes before any poll', () => {
    const clock = fakeClock()
    const tracker = new HealthTracker(T, clock.now)
    feed(tracker, clock, 3, true)
    clock.advance(T.deadtimeMs + 200)
    // A late timer: the result arrives first. The silence still counts, and one success is not a rise.
    expect(types(tracker.observe(true))).toEqual(['down'])
    expect(tracker.state).toBe('down')
  })

  it('needs `rise` successes in a row to come back; a failure starts the count again', () => {
    const clock = fakeClock()
    const tracker = new HealthTracker(T, clock.now)
    clock.advance(T.initdeadMs)
    tracker.poll()
    expect(tracker.state).toBe('down')
    expect(feed(tracker, clock, 2, true)).toEqual([])
    expect(feed(tracker, clock, 1, false)).toEqual([])
    expect(feed(tracker, clock, 2, true)).toEqual([])
    expect(types(feed(tracker, clock, 1, true))).toEqual(['up'])
  })

  it('rejects timings that cannot work, with a usage error', () => {
    const bad: Array<[Partial<HealthTimings>, RegExp]> = [
      [{ rise: 0 }, /rise must be a whole number from 1 to 100/],
      [{ rise: 1.5 }, /rise/],
      [{ deadtimeMs: 0 }, /deadtime must be above 0/],
      [{ warntimeMs: Number.NaN }, /warntime/],
      [{ initdeadMs: 4_000_000 }, /initdead must be above 0 and at most 1 hour/],
    ]
    for (const [change, message] of bad) {
      const timings = { ...T, ...change }
      expect(usage(() => new Check('peer', [{ label: 'icmp 192.0.2.11', intervalMs: 50 }], timings))).toMatch(
        message,
      )
    }
  })
})

describe('Check: the three questions', () => {
  const icmp = { label: 'icmp 192.0.2.11', intervalMs: 50 }
  const tcp = { label: 'tcp 192.0.2.11:22', intervalMs: 100 }
  const verdicts = (events: CheckEvent[]) =>
    events.flatMap((e) => (e.type === 'check' ? [`${e.check} ${e.state}`] : []))

  /** Step the clock 50 ms at a time; each probe answers as `answers` says. */
  function run(
    check: Check,
    clock: ReturnType<typeof fakeClock>,
    ms: number,
    answers: Record<string, boolean>,
  ): CheckEvent[] {
    const events: CheckEvent[] = []
    for (let t = 0; t < ms; t += 50) {
      clock.advance(50)
      for (const [probe, ok] of Object.entries(answers)) events.push(...check.observe(probe, ok))
      events.push(...check.poll())
    }
    return events
  }

  it('the peer is alive while any path answers, dead when all are silent', () => {
    const clock = fakeClock()
    const check = new Check('peer', [icmp, tcp], T, clock.now)
    expect(verdicts(run(check, clock, 200, { [icmp.label]: true, [tcp.label]: true }))).toEqual(['peer up'])
    // One path breaks: its probe goes down, the peer stays up.
    const oneLost = run(check, clock, 1000, { [icmp.label]: false, [tcp.label]: true })
    expect(verdicts(oneLost)).toEqual([])
    expect(oneLost).toContainEqual(
      expect.objectContaining({
        type: 'probe',
        probe: icmp.label,
        event: expect.objectContaining({ type: 'down' }),
      }),
    )
    expect(check.probes.map((p) => p.state)).toEqual(['down', 'up'])
    const allLost = run(check, clock, 1000, { [icmp.label]: false, [tcp.label]: false })
    expect(verdicts(allLost)).toEqual(['peer down'])
    expect(check.state).toBe('down')
  })

  it('this node is healthy only while all its probes are: one failing probe is a fault', () => {
    const clock = fakeClock()
    const check = new Check('self', [icmp, tcp], T, clock.now)
    expect(verdicts(run(check, clock, 200, { [icmp.label]: true }))).toEqual([])
    expect(check.state).toBe('pending')
    expect(verdicts(run(check, clock, 200, { [icmp.label]: true, [tcp.label]: true }))).toEqual(['self up'])
    expect(verdicts(run(check, clock, 1000, { [icmp.label]: true, [tcp.label]: false }))).toEqual([
      'self down',
    ])
    expect(verdicts(run(check, clock, 200, { [icmp.label]: true, [tcp.label]: true }))).toEqual(['self up'])
  })

  it('the witness answers while any probe does; pending again while a silent probe is in its grace', () => {
    const clock = fakeClock()
    const check = new Check('witness', [icmp, tcp], T, clock.now)
    expect(check.state).toBe('pending')
    run(check, clock, 200, { [icmp.label]: false, [tcp.label]: true })
    expect(check.state).toBe('up')
    // TCP dies at 0.8 s; ICMP never answered and is down only when initdead ends, at 2 s.
    const events = run(check, clock, 2000, { [icmp.label]: false, [tcp.label]: false })
    expect(verdicts(events)).toEqual(['witness pending', 'witness down'])
  })

  it('wakes its owner at the earliest deadline of its probes', () => {
    const clock = fakeClock()
    const check = new Check('peer', [icmp, tcp], T, clock.now)
    expect(check.nextDeadline()).toBe(clock.now() + T.initdeadMs)
    run(check, clock, 150, { [icmp.label]: true })
    expect(check.nextDeadline()).toBe(clock.now() + T.warntimeMs)
  })

  it('refuses a deadtime shorter than two intervals of a probe, naming it', () => {
    const http = { label: 'http http://192.0.2.11/', intervalMs: 500 }
    expect(() => new Check('peer', [icmp, http], T)).toThrow(
      'peer check: deadtime 600 ms is under twice the interval of http http://192.0.2.11/ (500 ms)',
    )
    expect(() => new Check('peer', [], T)).toThrow('peer check: no probe')
    expect(() => new Check('peer', [icmp, icmp], T)).toThrow('the same probe is listed twice')
  })
})

/** Mulberry32: a small seeded generator, so the simulations below are the same on every run. */
function seeded(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Ten minutes of ICMP to a live peer over a lossy, jittery path, replayed
 * through the tracker at the real pace: each echo is lost on the way out or
 * back with probability `loss`, and otherwise comes back after 2 × (delay ±
 * jitter); a reply slower than the timeout is a failure, as in icmp.ts.
 */
function lossyTenMinutes(
  timing: { intervalMs: number; timeoutMs: number },
  health: HealthTimings,
  loss: number,
  jitterMs: number,
  seed: number,
) {
  const random = seeded(seed)
  const clock = fakeClock(0)
  const check = new Check('peer', [{ label: 'icmp', intervalMs: timing.intervalMs }], health, clock.now)
  const answers: Array<{ at: number; ok: boolean }> = []
  for (let sent = 0; sent < 600_000; sent += timing.intervalMs) {
    const lost = random() < loss || random() < loss
    const rtt = 2 * Math.max(0, 10 + (random() - 0.5) * 2 * jitterMs)
    const ok = !lost && rtt <= timing.timeoutMs
    answers.push({ at: sent + (ok ? rtt : Math.max(timing.intervalMs, timing.timeoutMs)), ok })
  }
  answers.sort((x, y) => x.at - y.at)
  const downs: CheckEvent[] = []
  let lost = 0
  for (const answer of answers) {
    let wakes = 0
    for (
      let next = check.nextDeadline();
      next !== undefined && next <= answer.at;
      next = check.nextDeadline()
    ) {
      // Bounded: a check that keeps asking to be woken at the same time fails instead of hanging.
      if (++wakes > 10) throw new Error(`the check keeps asking to be woken at ${next}`)
      clock.set(next)
      downs.push(...check.poll().filter((e) => e.type === 'check' && e.state === 'down'))
      if (check.state === 'down') break
    }
    clock.set(answer.at)
    if (!answer.ok) lost++
    downs.push(...check.observe('icmp', answer.ok).filter((e) => e.type === 'check' && e.state === 'down'))
  }
  return { downs, lost, sent: answers.length, state: check.state }
}

describe('default timings', () => {
  it('no false failover in 10 minutes with 20 % loss each way and 50 ms jitter', () => {
    for (const seed of [1, 2, 3]) {
      const { downs, lost, sent, state } = lossyTenMinutes(
        PROBE_DEFAULTS.icmp,
        HEALTH_DEFAULTS.peer,
        0.2,
        50,
        seed,
      )
      expect(sent).toBe(600_000 / PROBE_DEFAULTS.icmp.intervalMs)
      // About 36 % of round trips are lost: the simulation is as harsh as it says.
      expect(lost / sent).toBeGreaterThan(0.33)
      expect(lost / sent).toBeLessThan(0.39)
      expect(downs).toEqual([])
      expect(state).toBe('up')
    }
  })

  it('the same path with a deadtime of 4 intervals would fail over: the margin is real', () => {
    const tight = { ...HEALTH_DEFAULTS.peer, deadtimeMs: 4 * PROBE_DEFAULTS.icmp.intervalMs }
    const { downs } = lossyTenMinutes(PROBE_DEFAULTS.icmp, tight, 0.2, 50, 1)
    expect(downs.length).toBeGreaterThan(0)
  })

  it('the fast profile survives 1 % loss each way and 5 ms jitter (a clean LAN)', () => {
    const { downs } = lossyTenMinutes(FAST_PROFILE.icmp, FAST_PROFILE.health, 0.01, 5, 1)
    expect(downs).toEqual([])
  })

  it('a dead peer is declared dead within deadtime: defaults under 1 s, fast under 0.25 s', () => {
    for (const [timing, health, bound] of [
      [PROBE_DEFAULTS.icmp, HEALTH_DEFAULTS.peer, 1000],
      [FAST_PROFILE.icmp, FAST_PROFILE.health, 250],
    ] as const) {
      const clock = fakeClock(0)
      const check = new Check('peer', [{ label: 'icmp', intervalMs: timing.intervalMs }], health, clock.now)
      for (let i = 0; i < 10; i++) {
        clock.advance(timing.intervalMs)
        check.observe('icmp', true)
      }
      const death = clock.now() + 1 // the link dies just after an echo came back
      let declared: number | undefined
      // Bounded: a tracker that never declares the peer dead fails here instead of hanging.
      for (let wake = 0; wake < 100 && declared === undefined; wake++) {
        const next = check.nextDeadline()!
        clock.set(next)
        if (check.poll().some((e) => e.type === 'check' && e.state === 'down')) declared = next
      }
      if (declared === undefined) throw new Error('the peer was never declared dead')
      expect(declared - death).toBeLessThanOrEqual(health.deadtimeMs)
      // The move itself gets what is left of the budget.
      expect(declared - death + 100).toBeLessThanOrEqual(bound)
    }
  })
})
