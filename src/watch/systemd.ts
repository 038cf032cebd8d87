/**
 * systemd's notify protocol (sd_notify(3)) for `Type=notify` and the watchdog:
 * READY=1 once the daemon probes, WATCHDOG=1 every half of WatchdogSec,
 * STATUS= with the roles, RELOADING=1 on SIGHUP, STOPPING=1 on SIGTERM.
 *
 * Node has no unix datagram sockets, so each message is sent by spawning
 * `systemd-notify` (argv, no shell) rather than through an npm package: the
 * ones that exist (sd-notify, unix-dgram) are native addons that compile at
 * install time, which ipmove's installs skip and its bundle cannot carry. A
 * spawn costs a few milliseconds (measured in test/watch-systemd.test.ts);
 * the daemon sends a message every few seconds at most, off the probe path.
 *
 * `--pid=` names this process as the sender: as root systemd-notify sends
 * with our credentials, so even NotifyAccess=main accepts it; without the
 * privilege to do so it sends as itself, which needs NotifyAccess=all, and
 * then waits on a barrier until systemd has read the message (systemd ≥ 246),
 * so the message is not lost when systemd-notify exits first. The unit file
 * sets NotifyAccess=all for that reason.
 *
 * Messages go out one at a time, in order. A WATCHDOG=1 or STATUS= queued
 * behind a message not sent yet joins it, so a slow systemd never piles up
 * processes. Nothing here throws: a notification that fails is logged once,
 * and the daemon goes on (systemd's watchdog is the one that acts).
 */
import { execFile } from 'node:child_process'
import type { Logger } from '../output.js'

/** The environment systemd gives a Type=notify service. */
export const NOTIFY_VARIABLES = ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID'] as const

/** systemd-notify waits at most 5 s on its barrier; a stuck one is killed after this. */
const SEND_TIMEOUT_MS = 6000

export interface SystemdNotifier {
  /** False when NOTIFY_SOCKET is unset (not under systemd): every call is then a no-op. */
  readonly enabled: boolean
  /** The watchdog ping interval (half of WATCHDOG_USEC), when systemd asked for one. */
  readonly watchdogIntervalMs: number | undefined
  ready(status?: string): void
  status(status: string): void
  /** SIGHUP: a reload begins; send `ready()` when it is done. */
  reloading(status?: string): void
  stopping(status?: string): void
  /**
   * Ping WATCHDOG=1 every half of WATCHDOG_USEC while `alive()` says the
   * daemon's loop is sound; when it is not, the pings stop and systemd
   * restarts the service.
   */
  startWatchdog(alive?: () => boolean): void
  /** Stop the watchdog pings and wait until every queued message has been sent. */
  close(): Promise<void>
}

export interface NotifierOptions {
  /** The environment to read NOTIFY_SOCKET and WATCHDOG_* from; process.env by default. */
  env?: NodeJS.ProcessEnv
  /** The systemd-notify binary; looked up in PATH by default. */
  command?: string
  log: Logger
}

/** CLOCK_MONOTONIC in microseconds, as RELOADING=1 wants it (libuv's hrtime reads that clock on Linux). */
export function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n
}

/** Keys whose latest value is all that matters: they may join a queued message. */
const MERGEABLE = new Set(['WATCHDOG', 'STATUS'])

type Message = Map<string, string>

/**
 * A notifier for this process. It takes NOTIFY_SOCKET and WATCHDOG_* out of
 * `env`, as sd_notify's unset_environment does, so that actions and probe
 * commands the daemon starts cannot speak for it.
 */
export function systemdNotifier(options: NotifierOptions): SystemdNotifier {
  const env = options.env ?? process.env
  const socket = env.NOTIFY_SOCKET
  const watchdogUsec = Number(env.WATCHDOG_USEC)
  const watchdogPid = env.WATCHDOG_PID === undefined ? process.pid : Number(env.WATCHDOG_PID)
  for (const name of NOTIFY_VARIABLES) delete env[name]
  const watchdogIntervalMs =
    socket && Number.isFinite(watchdogUsec) && watchdogUsec > 0 && watchdogPid === process.pid
      ? Math.max(1, Math.floor(watchdogUsec / 2000))
      : undefined
  const command = options.command ?? 'systemd-notify'
  const { log } = options

  const queue: Message[] = []
  let sending: Promise<void> | undefined
  let watchdog: NodeJS.Timeout | undefined
  let failing = false

  function send(message: Message): Promise<void> {
    const args = [`--pid=${process.pid}`, ...[...message].map(([k, v]) => `${k}=${v}`)]
    return new Promise((resolve) => {
      execFile(
        command,
        args,
        // Only what systemd-notify needs: no secret of ours reaches it.
        {
          env: { NOTIFY_SOCKET: socket, PATH: process.env.PATH ?? '/usr/bin:/bin' },
          timeout: SEND_TIMEOUT_MS,
        },
        (error, _stdout, stderr) => {
          if (error && !failing) {
            const why =
              (error as NodeJS.ErrnoException).code === 'ENOENT' ? `${command} not found` : stderr.trim()
            log.warn(`systemd notification failed: ${why || error.message.split('\n')[0]}`)
          } else if (!error && failing) {
            log.info('systemd notifications work again')
          }
          failing = Boolean(error)
          resolve()
        },
      )
    })
  }

  async function drain(): Promise<void> {
    for (let next = queue.shift(); next; next = queue.shift()) await send(next)
    sending = undefined
  }

  function notify(assignments: Record<string, string | undefined>): void {
    if (!socket) return
    const entries = Object.entries(assignments).filter((e): e is [string, string] => e[1] !== undefined)
    const last = queue.at(-1)
    if (last && entries.every(([k]) => MERGEABLE.has(k))) {
      for (const [k, v] of entries) last.set(k, v)
    } else {
      queue.push(new Map(entries))
    }
    sending ??= drain()
  }

  return {
    enabled: Boolean(socket),
    watchdogIntervalMs,
    ready: (status) => notify({ READY: '1', STATUS: status }),
    status: (status) => notify({ STATUS: status }),
    reloading: (status) =>
      notify({ RELOADING: '1', MONOTONIC_USEC: String(monotonicUsec()), STATUS: status }),
    stopping: (status) => notify({ STOPPING: '1', STATUS: status }),
    startWatchdog(alive = () => true) {
      if (watchdogIntervalMs === undefined || watchdog) return
      watchdog = setInterval(() => {
        if (alive()) notify({ WATCHDOG: '1' })
      }, watchdogIntervalMs)
      watchdog.unref()
    },
    async close() {
      clearInterval(watchdog)
      await sending
    },
  }
}
