/**
 * ICMP echo without a fork per probe. Node has no raw sockets and an
 * unprivileged ICMP socket would need a native addon, so one long-lived
 * iputils `ping` per target does the sending, and this module reads its
 * output line by line (ping flushes each line into a pipe):
 *
 *   ping -n -O -i 0.05 [-I SOURCE] -4|-6 TARGET
 *
 * `-O` makes ping print `no answer yet for icmp_seq=N` when it sends the next
 * request, so a lost echo is reported one interval after it was sent, without
 * a timer per request here; with a timeout longer than the interval the loss
 * is confirmed only once the timeout has passed. A reply slower than the
 * timeout counts as lost (a link that queues packets while its carrier is
 * down delivers replies seconds late). `-W` is not used: it only matters to a
 * ping that stops after a count. Intervals below 2 ms need root in iputils
 * 20221126 (below 200 ms in releases before 20210202); the daemon runs as root.
 *
 * If ping exits (no route to the target at start, say) it is started again
 * after a back-off, and a watchdog reports a failure whenever nothing was
 * heard for longer than a loss takes to show, so results keep coming whatever ping
 * does. Should ipmove die without stopping the probe, ping dies too: its next
 * line, due within one interval, meets a closed pipe (SIGPIPE).
 */
import { type ChildProcess, spawn as nodeSpawn } from 'node:child_process'
import { parseIp } from '../validate.js'
import { checkTiming, now, type Probe, type ProbeResult, reason, type Timing } from './probe.js'

export interface IcmpSpec extends Timing {
  /** An IPv4 or IPv6 address (no name: a resolver must not stall a health probe). */
  target: string
  /** Send from this interface or address (`ping -I`), to test one path of several. */
  source?: string
}

export interface IcmpOptions {
  /** How to start ping: node's spawn, or a wrapper around it (the tests count the calls). */
  spawn?: typeof nodeSpawn
}

/** The longest pause before ping is started again after it exited. */
const MAX_RESTART_MS = 5000
/** Line length beyond which ping's output is not ping's (never expected). */
const MAX_LINE = 4096
/** How many answered sequence numbers are remembered, to ignore their duplicates and late replies. */
const REMEMBER_SEQS = 1024
/** How long ping may take to exit on SIGTERM before it gets SIGKILL. */
const STOP_GRACE_MS = 1000

const REPLY = /bytes from .*icmp_seq=(\d+) .*time=([\d.]+) ms/
const MISSING = /^no answer yet for icmp_seq=(\d+)/
/** `From 192.0.2.10 icmp_seq=4 Destination Host Unreachable`; a redirect is advice, not a failure. */
const ERROR = /^From \S+ icmp_seq=(\d+) (.*)$/

export function pingArgv(spec: IcmpSpec): string[] {
  const target = parseIp(spec.target, 'icmp probe target')
  const interval = (spec.intervalMs / 1000).toFixed(3)
  const source = spec.source ? ['-I', spec.source] : []
  return ['ping', '-n', '-O', '-i', interval, ...source, `-${target.version}`, target.address]
}

export function icmpProbe(spec: IcmpSpec, options: IcmpOptions = {}): Probe {
  const argv = pingArgv(spec)
  const label = `icmp ${argv.at(-1)}`
  const { intervalMs, timeoutMs } = checkTiming(label, spec)
  const spawn = options.spawn ?? nodeSpawn
  // A loss is reported max(interval, timeout) after its echo left, an interval after the last answer:
  // silence beyond that, plus an interval of slack, means ping itself is stuck.
  const silenceMs = 2 * intervalMs + Math.max(intervalMs, timeoutMs)

  let onResult: ((result: ProbeResult) => void) | undefined
  let child: ChildProcess | undefined
  let exited: Promise<void> = Promise.resolve()
  let stopped = false
  let restartMs = intervalMs
  let restartTimer: NodeJS.Timeout | undefined
  let watchdog: NodeJS.Timeout | undefined
  /** Sequence numbers already reported, oldest first. */
  const settled = new Set<number>()
  /** Losses waiting for the rest of a timeout longer than the interval. */
  const confirming = new Map<number, NodeJS.Timeout>()

  function emit(ok: boolean, ms: number, detail: string): void {
    if (stopped) return
    if (ok) restartMs = intervalMs
    armWatchdog()
    onResult?.({ ok, at: now(), ms, detail })
  }

  function armWatchdog(): void {
    clearTimeout(watchdog)
    watchdog = setTimeout(() => emit(false, silenceMs, `no answer from ping for ${silenceMs} ms`), silenceMs)
  }

  /** Report `seq` once; later lines about it (a late reply, a duplicate) are ignored. */
  function settle(seq: number, ok: boolean, ms: number, detail: string): void {
    if (settled.has(seq)) return
    settled.add(seq)
    if (settled.size > REMEMBER_SEQS) settled.delete(settled.values().next().value as number)
    clearTimeout(confirming.get(seq))
    confirming.delete(seq)
    emit(ok, ms, detail)
  }

  function onLine(line: string): void {
    const reply = REPLY.exec(line)
    if (reply) {
      if (line.includes('(DUP!)')) return
      const rtt = Number(reply[2])
      const ok = rtt <= timeoutMs
      settle(
        Number(reply[1]),
        ok,
        rtt,
        ok ? `rtt ${rtt} ms` : `reply after ${rtt} ms, over the ${timeoutMs} ms timeout`,
      )
      return
    }
    const missing = MISSING.exec(line)
    if (missing) {
      const seq = Number(missing[1])
      if (confirming.has(seq)) return
      if (settled.has(seq)) {
        // ping repeats the line while it cannot send (a full queue on a link without carrier).
        emit(false, intervalMs, `icmp_seq=${seq} still unanswered, ping cannot send`)
      } else if (timeoutMs > intervalMs) {
        const detail = `no reply within ${timeoutMs} ms`
        confirming.set(
          seq,
          setTimeout(() => settle(seq, false, timeoutMs, detail), timeoutMs - intervalMs),
        )
      } else {
        settle(seq, false, intervalMs, `no reply within ${intervalMs} ms`)
      }
      return
    }
    const error = ERROR.exec(line)
    if (error && !/redirect/i.test(error[2]!)) settle(Number(error[1]), false, 0, error[2]!)
  }

  function launch(): void {
    if (stopped) return
    // A new ping counts from icmp_seq=1 again.
    forgetSeqs()
    const proc = spawn(argv[0]!, argv.slice(1), {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    })
    child = proc
    let pending = ''
    let complaint = ''
    proc.stdout!.setEncoding('utf8')
    proc.stdout!.on('data', (chunk: string) => {
      const lines = (pending + chunk).split('\n')
      pending = lines.pop()!.slice(-MAX_LINE)
      for (const line of lines) onLine(line)
    })
    proc.stderr!.setEncoding('utf8')
    proc.stderr!.on('data', (chunk: string) => {
      complaint = (complaint + chunk).slice(-MAX_LINE)
    })
    exited = new Promise((resolve) => {
      let failed: Error | undefined
      proc.once('error', (error) => {
        failed = error
      })
      proc.once('close', (code, signal) => {
        if (child === proc) child = undefined
        resolve()
        const why = failed
          ? (failed as NodeJS.ErrnoException).code === 'ENOENT'
            ? `${argv[0]} not found: install iputils-ping`
            : reason(failed)
          : `${complaint.trim().split('\n').pop() || 'ping'} (${code === null ? signal : `exit ${code}`})`
        emit(false, 0, `ping stopped: ${why}`)
        scheduleRestart()
      })
    })
  }

  function forgetSeqs(): void {
    settled.clear()
    for (const timer of confirming.values()) clearTimeout(timer)
    confirming.clear()
  }

  function scheduleRestart(): void {
    if (stopped) return
    restartTimer = setTimeout(launch, restartMs)
    restartMs = Math.min(restartMs * 2, MAX_RESTART_MS)
  }

  return {
    label,
    intervalMs,
    timeoutMs,
    start(listener) {
      if (onResult) throw new Error(`${label} already started`)
      onResult = listener
      armWatchdog()
      launch()
    },
    async stop() {
      stopped = true
      clearTimeout(restartTimer)
      clearTimeout(watchdog)
      forgetSeqs()
      const proc = child
      if (!proc) return
      proc.kill('SIGTERM')
      const kill = setTimeout(() => proc.kill('SIGKILL'), STOP_GRACE_MS)
      await exited
      clearTimeout(kill)
    },
  }
}
