/**
 * Probes that need neither root nor a namespace: the shared runner, the
 * command probe (real processes), and HTTP(S) details against servers on
 * loopback. The network kinds against the real kernel are in probes-kernel.test.ts.
 */
import { type SpawnOptions, spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { createServer as createHttpServer, type Server } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateTls } from '../emulator/tls.js'
import { icmpProbe } from '../src/probes/icmp.js'
import { createProbe, type Probe, type ProbeResult, type ProbeSpec } from '../src/probes/index.js'
import { periodicProbe } from '../src/probes/probe.js'
import { usage } from './helpers/errors.js'

/** Start `probe`, wait until it has given `count` results, stop it; every result it gave. */
async function collect(probe: Probe, count: number, timeoutMs = 5000): Promise<ProbeResult[]> {
  const results: ProbeResult[] = []
  probe.start((r) => results.push(r))
  const deadline = Date.now() + timeoutMs
  while (results.length < count && Date.now() < deadline) await sleep(5)
  await probe.stop()
  if (results.length < count) throw new Error(`${probe.label}: ${results.length} of ${count} results`)
  return results
}

/** The process exists and is not a zombie. */
function running(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z'
  } catch {
    return false
  }
}

describe('periodicProbe, the runner of one-question probes', () => {
  it('starts a run every interval and never two at once, even when a run is slow', async () => {
    let active = 0
    let most = 0
    const starts: number[] = []
    // An interval longer than a busy machine delays a timer (106 ms was seen with 20 ms here), so that
    // "at once" and "an interval later" stay apart.
    const intervalMs = 200
    const probe = periodicProbe('slow', { intervalMs, timeoutMs: 1000 }, async () => {
      starts.push(Date.now())
      active++
      most = Math.max(most, active)
      await sleep(starts.length === 2 ? 3 * intervalMs : 1)
      active--
      return { ok: true, detail: 'fine' }
    })
    const results = await collect(probe, 5)
    expect(most).toBe(1)
    expect(results.every((r) => r.ok)).toBe(true)
    // After the slow second run (600 ms), the third starts at once rather than 200 ms later.
    expect(starts[2]! - starts[1]!).toBeGreaterThanOrEqual(3 * intervalMs - 5)
    expect(starts[2]! - starts[1]!).toBeLessThan(3 * intervalMs + intervalMs * 0.75)
    expect(starts[4]! - starts[3]!).toBeGreaterThanOrEqual(intervalMs - 2)
  })

  it('aborts a run at its timeout and reports it as a failure', async () => {
    let aborted = 0
    const probe = periodicProbe('stuck', { intervalMs: 50, timeoutMs: 30 }, (signal) => {
      return new Promise((resolve) => {
        signal.addEventListener('abort', () => {
          aborted++
          resolve({ ok: true, detail: 'too late to count' })
        })
      })
    })
    const [first] = await collect(probe, 1)
    expect(first).toMatchObject({ ok: false, detail: 'no answer within 30 ms' })
    expect(first!.ms).toBeGreaterThanOrEqual(29)
    expect(first!.ms).toBeLessThan(200)
    expect(aborted).toBeGreaterThanOrEqual(1)
  })

  it('gives no result once stop() has resolved, and stop aborts a run in progress', async () => {
    const results: ProbeResult[] = []
    let signalled = false
    const probe = periodicProbe('long', { intervalMs: 20, timeoutMs: 10_000 }, (signal) => {
      return new Promise((resolve) => {
        signal.addEventListener('abort', () => {
          signalled = true
          resolve({ ok: false, detail: 'stopped' })
        })
      })
    })
    probe.start((r) => results.push(r))
    await sleep(30)
    const started = Date.now()
    await probe.stop()
    expect(Date.now() - started).toBeLessThan(100)
    expect(signalled).toBe(true)
    await sleep(50)
    expect(results).toEqual([])
  })

  it('turns a thrown error into a failure with its message', async () => {
    const probe = periodicProbe('throws', { intervalMs: 20, timeoutMs: 100 }, async () => {
      throw Object.assign(new Error('connect failed'), { code: 'EHOSTUNREACH' })
    })
    const [first] = await collect(probe, 1)
    expect(first).toMatchObject({ ok: false, detail: 'EHOSTUNREACH: connect failed' })
  })
})

describe('command probe', () => {
  const spec = (argv: string[], timeoutMs = 2000): ProbeSpec => ({
    kind: 'command',
    argv,
    intervalMs: 50,
    timeoutMs,
  })

  it('exit 0 is healthy; any other exit fails with the first line the command printed', async () => {
    const [ok] = await collect(createProbe(spec(['true'])), 1)
    expect(ok).toMatchObject({ ok: true, detail: 'exit 0' })
    const [bad] = await collect(
      createProbe(spec(['sh', '-c', 'echo "  "; echo "service down" >&2; exit 3'])),
      1,
    )
    expect(bad).toMatchObject({ ok: false, detail: 'exit 3: service down' })
  })

  it('passes argv as is, without a shell', async () => {
    const [result] = await collect(createProbe(spec(['test', '$(true)', '=', '$(true)'])), 1)
    expect(result).toMatchObject({ ok: true })
    const [glob] = await collect(createProbe(spec(['ls', '/nonexistent-ipmove/*'])), 1)
    expect(glob!.detail).toMatch(/^exit 2: .*nonexistent-ipmove\/\*/)
  })

  it('a missing program fails with the reason', async () => {
    const [result] = await collect(createProbe(spec(['ipmove-no-such-check'])), 1)
    expect(result).toMatchObject({ ok: false })
    expect(result!.detail).toMatch(/ENOENT/)
  })

  it('kills the command and what it started when the timeout passes', async () => {
    // The command starts a grandchild and waits on it: both must go.
    const results: ProbeResult[] = []
    const probe = createProbe(spec(['sh', '-c', SLEEPER], 300))
    probe.start((r) => results.push(r))
    let seen = ''
    const deadline = Date.now() + 3000
    while (results.length === 0 && Date.now() < deadline) {
      seen ||= sleepers()
      await sleep(20)
    }
    await probe.stop()
    expect(results[0]).toMatchObject({ ok: false, detail: 'no answer within 300 ms' })
    expect(results[0]!.ms).toBeLessThan(1000)
    const pids = seen.split(' ').map(Number)
    expect(pids).toHaveLength(2)
    for (const pid of pids) expect(running(pid), `process ${pid} is still running`).toBe(false)
  })

  it('keeps only the start of a flood of output, and the command never blocks on it', async () => {
    const [result] = await collect(
      createProbe(spec(['sh', '-c', 'head -c 5000000 /dev/zero | tr "\\0" x; exit 1'])),
      1,
    )
    expect(result!.ok).toBe(false)
    expect(result!.detail.length).toBeLessThan(220)
    expect(result!.detail).toMatch(/^exit 1: x+…$/)
  })

  it('rejects an empty argv', () => {
    expect(() => createProbe(spec([]))).toThrow('command probe: argv is empty')
  })
})

const SLEEPER = 'sleep 30 & wait'

/** `sh -c SLEEPER` and its sleep, as "PID PID", from /proc; empty until both exist. */
function sleepers(): string {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0')
      if (cmd[0] !== 'sh' || cmd[2] !== SLEEPER) continue
      const children = readFileSync(`/proc/${entry}/task/${entry}/children`, 'utf8').trim()
      if (children) return `${entry} ${children}`
    } catch {
      // Gone meanwhile.
    }
  }
  return ''
}

describe('HTTP(S) probe on loopback', () => {
  let plain: Server
  let secure: Server
  const hosts: string[] = []
  beforeAll(async () => {
    const handler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
      hosts.push(req.headers.host ?? '')
      if (req.url === '/big') return res.end('x'.repeat(300_000))
      // Headers, then a body that never ends.
      if (req.url === '/stall') return res.writeHead(200).write('<html>')
      res.end('<html>fine</html>')
    }
    const tls = await generateTls(['www.example.test'])
    plain = createHttpServer(handler)
    secure = createHttpsServer({ cert: tls.cert, key: tls.key }, handler)
    await Promise.all([plain, secure].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))))
  })
  afterAll(async () => {
    await Promise.all(
      [plain, secure].map((s) => new Promise((r) => s.close(r)).then(() => s.closeAllConnections())),
    )
  })
  const port = (s: Server) => (s.address() as AddressInfo).port
  const timing = { intervalMs: 50, timeoutMs: 2000 }

  it('a body larger than the limit fails instead of being read without end', async () => {
    const url = `http://127.0.0.1:${port(plain)}/big`
    const [big] = await collect(
      createProbe({ kind: 'http', url, body: /y/, maxBodyBytes: 100_000, ...timing }),
      1,
    )
    expect(big).toMatchObject({ ok: false, detail: 'HTTP 200, body larger than 100000 bytes' })
    const [pattern] = await collect(createProbe({ kind: 'http', url, body: /^x+$/, ...timing }), 1)
    expect(pattern).toMatchObject({ ok: true, detail: 'HTTP 200' })
  })

  it('a body that never ends is a timeout, and the probe still stops', async () => {
    const url = `http://127.0.0.1:${port(plain)}/stall`
    const results = await collect(
      createProbe({ kind: 'http', url, body: '</html>', intervalMs: 50, timeoutMs: 100 }),
      2,
    )
    expect(results.slice(0, 2).map((r) => r.detail)).toEqual([
      'no answer within 100 ms',
      'no answer within 100 ms',
    ])
  })

  it('HTTPS checks the certificate unless told not to, and sends the given host name', async () => {
    const url = `https://127.0.0.1:${port(secure)}/`
    const [strict] = await collect(createProbe({ kind: 'http', url, ...timing }), 1)
    expect(strict!.ok).toBe(false)
    expect(strict!.detail).toMatch(/certificate/)
    hosts.length = 0
    const insecure = { kind: 'http', url, host: 'www.example.test', insecure: true, body: '</html>' } as const
    const [lax] = await collect(createProbe({ ...insecure, ...timing }), 1)
    expect(lax).toMatchObject({ ok: true, detail: 'HTTP 200' })
    expect(hosts).toEqual(['www.example.test'])
  })
})

describe('probe specs', () => {
  const bad: Array<[ProbeSpec, string]> = [
    [
      { kind: 'icmp', target: 'peer.example', intervalMs: 40, timeoutMs: 250 },
      'icmp probe target "peer.example" is not an IP address or block',
    ],
    [
      { kind: 'icmp', target: '192.0.2.11', intervalMs: 5, timeoutMs: 250 },
      'icmp 192.0.2.11: interval must be between 10 ms and 1 hour',
    ],
    [
      { kind: 'tcp', host: '192.0.2.11', port: 0, intervalMs: 100, timeoutMs: 250 },
      'tcp probe 192.0.2.11: port must be a whole number from 1 to 65535',
    ],
    [
      { kind: 'tcp', host: '192.0.2.11', port: 22, intervalMs: 100, timeoutMs: 0 },
      'tcp 192.0.2.11:22: timeout must be above 0 and at most 1 hour',
    ],
    [
      { kind: 'http', url: 'ftp://192.0.2.11/', intervalMs: 100, timeoutMs: 250 },
      'http probe: "ftp://192.0.2.11/" must start with http:// or https://',
    ],
    [
      { kind: 'http', url: 'not a url', intervalMs: 100, timeoutMs: 250 },
      'http probe: "not a url" is not a URL',
    ],
    [
      { kind: 'link', interface: 'eth0; reboot', intervalMs: 100, timeoutMs: 250 },
      'link probe interface "eth0; reboot" is not a valid interface name (at most 15 of letters, digits, _ . -)',
    ],
  ]
  it.each(bad)('refuses %j with a usage error', (spec, message) => {
    expect(usage(() => createProbe(spec))).toBe(message)
  })

  it('labels probes by what they reach', () => {
    const labels = [
      createProbe({ kind: 'icmp', target: '2001:DB8::0011', intervalMs: 40, timeoutMs: 250 }),
      createProbe({ kind: 'tcp', host: '2001:db8::11', port: 22, intervalMs: 100, timeoutMs: 250 }),
      createProbe({ kind: 'link', interface: 'eth0', intervalMs: 50, timeoutMs: 50 }),
    ].map((p) => p.label)
    expect(labels).toEqual(['icmp 2001:db8::11', 'tcp [2001:db8::11]:22', 'link eth0'])
  })
})

/**
 * A stand-in for ping (sh) that prints a script of lines with pauses between them,
 * then waits to be stopped (or ends as `end` says): how the ICMP probe reads every kind of line ping
 * prints, on a timeline the test controls. The probe's real argv is kept.
 */
function scriptedPing(script: Array<[afterMs: number, line: string]>, end = 'exec sleep 60') {
  const calls: string[][] = []
  // sh starts in a millisecond, as ping does; node would take longer than the watchdog.
  const steps = script.map(
    ([after, line]) => `${after ? `sleep ${after / 1000}; ` : ''}printf '%s\\n' '${line}'`,
  )
  const program = [...steps, end].join('; ')
  const spawnFake = ((file: string, args: string[], options: SpawnOptions) => {
    calls.push([file, ...args])
    return spawn('sh', ['-c', program], options)
  }) as typeof spawn
  return { calls, spawn: spawnFake }
}

describe('ICMP probe reading ping', () => {
  it('runs one ping with -O and the interval, and reads each kind of line ping prints', async () => {
    const ping = scriptedPing([
      [0, 'PING 192.0.2.11 (192.0.2.11) 56(84) bytes of data.'],
      [0, '64 bytes from 192.0.2.11: icmp_seq=1 ttl=64 time=0.05 ms'],
      [0, '64 bytes from 192.0.2.11: icmp_seq=1 ttl=64 time=0.06 ms (DUP!)'],
      [20, 'From 192.0.2.1 icmp_seq=2 Redirect Host(New nexthop: 192.0.2.11)'],
      [0, '64 bytes from 192.0.2.11: icmp_seq=2 ttl=64 time=0.07 ms'],
      [20, 'no answer yet for icmp_seq=3'],
      [20, 'From 192.0.2.10 icmp_seq=4 Destination Host Unreachable'],
      [20, '64 bytes from 192.0.2.11: icmp_seq=3 ttl=64 time=70.1 ms'],
      [0, '64 bytes from 192.0.2.11: icmp_seq=5 ttl=64 time=45.0 ms'],
      [20, 'no answer yet for icmp_seq=6'],
      [50, 'no answer yet for icmp_seq=6'],
    ])
    const probe = icmpProbe({ target: '192.0.2.11', intervalMs: 50, timeoutMs: 30 }, { spawn: ping.spawn })
    const results = await collect(probe, 7)
    expect(ping.calls).toEqual([['ping', '-n', '-O', '-i', '0.050', '-4', '192.0.2.11']])
    expect(results.map((r) => [r.ok, r.detail])).toEqual([
      [true, 'rtt 0.05 ms'],
      [true, 'rtt 0.07 ms'],
      [false, 'no reply within 50 ms'],
      [false, 'Destination Host Unreachable'],
      // The late reply to 3 was counted lost already; 5 came back, but too late to count.
      [false, 'reply after 45 ms, over the 30 ms timeout'],
      [false, 'no reply within 50 ms'],
      [false, 'icmp_seq=6 still unanswered, ping cannot send'],
    ])
  })

  it('with a timeout longer than the interval, waits for the rest of it before counting a loss', async () => {
    const ping = scriptedPing([
      [0, 'no answer yet for icmp_seq=1'],
      [30, '64 bytes from 192.0.2.11: icmp_seq=1 ttl=64 time=50.0 ms'],
      [10, 'no answer yet for icmp_seq=2'],
    ])
    const probe = icmpProbe({ target: '2001:db8::11', intervalMs: 20, timeoutMs: 100 }, { spawn: ping.spawn })
    const started = Date.now()
    const results = await collect(probe, 3)
    expect(ping.calls[0]).toEqual(['ping', '-n', '-O', '-i', '0.020', '-6', '2001:db8::11'])
    expect(results.map((r) => [r.ok, r.detail])).toEqual([
      [true, 'rtt 50 ms'],
      [false, 'no reply within 100 ms'],
      // Then silence: the watchdog speaks for ping, two intervals plus the timeout after the last result.
      [false, 'no answer from ping for 140 ms'],
    ])
    // Loss of 2 confirmed 80 ms after ping's report at ~40 ms.
    expect(results[1]!.at - started).toBeGreaterThanOrEqual(110)
    expect(results[2]!.at - results[1]!.at).toBeGreaterThanOrEqual(139)
  })

  it('counts the sequence afresh when ping had to be started again', async () => {
    const ping = scriptedPing([[0, '64 bytes from 192.0.2.11: icmp_seq=1 ttl=64 time=0.05 ms']], 'exit 2')
    const probe = icmpProbe({ target: '192.0.2.11', intervalMs: 20, timeoutMs: 20 }, { spawn: ping.spawn })
    const results = await collect(probe, 3)
    expect(results.slice(0, 3).map((r) => [r.ok, r.detail])).toEqual([
      [true, 'rtt 0.05 ms'],
      [false, 'ping stopped: ping (exit 2)'],
      [true, 'rtt 0.05 ms'],
    ])
    expect(ping.calls.length).toBeGreaterThanOrEqual(2)
  })

  it('says what to install when ping is missing, and retries with a back-off', async () => {
    const calls: number[] = []
    const missing = ((_file: string, args: string[], options: SpawnOptions) => {
      calls.push(Date.now())
      return spawn('ipmove-no-such-ping', args, options)
    }) as typeof spawn
    const probe = icmpProbe({ target: '192.0.2.11', intervalMs: 20, timeoutMs: 20 }, { spawn: missing })
    const results = await collect(probe, 4)
    expect(results[0]).toMatchObject({
      ok: false,
      detail: 'ping stopped: ping not found: install iputils-ping',
    })
    // 20 ms, then 40, then 80 between starts: the second wait at least doubled. Checked against its
    // floor, not against the first wait, which a busy machine stretched past it (51 ms, then 50).
    expect(calls[1]! - calls[0]!).toBeGreaterThanOrEqual(20 - 1)
    expect(calls[2]! - calls[1]!).toBeGreaterThanOrEqual(2 * 20 - 1)
  })
})
