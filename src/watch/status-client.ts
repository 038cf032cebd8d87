/**
 * `ipmove status --watch`: the running daemon's state, read through its
 * control socket and shown as lines (or returned whole for --json); and
 * `--clear-flap NAME`, the operator's way out of an anti-flap stop; and
 * `--tell NAME=hold|release`, what an engine's scripts run (source = ucarp).
 */
import { existsSync } from 'node:fs'
import { dirname } from 'node:path'
import { IpmoveError, notFound, usageError } from '../errors.js'
import type { Logger } from '../output.js'
import { privateDirProblem } from '../secure-file.js'
import { shown, validateName } from '../validate.js'
import { askDaemon, controlSocketPath } from './control.js'
import { type DaemonSnapshot, renderSnapshot } from './snapshot.js'
import type { ToldWish } from './sources/source.js'
import { recordWish } from './sources/ucarp.js'

export interface WatchStatusOptions {
  /** The control socket; default: watch.sock in the lock directory. */
  socket?: string
  /** Only this IP, by its name in the config or its address. */
  ip?: string
  timeoutMs?: number
  env?: NodeJS.ProcessEnv
}

/** Where root's daemon listens (the lock directory of root). */
export const ROOT_SOCKET = '/run/ipmove/watch.sock'

/**
 * --socket, else the socket in this user's lock directory when there is one
 * there (a daemon of their own, or IPMOVE_LOCK_DIR), else root's: the daemon
 * is usually root's, and a user not allowed there is told so (exit 3) rather
 * than that no daemon runs.
 */
export function socketFor(options: WatchStatusOptions): string {
  if (options.socket !== undefined) return options.socket
  const env = options.env ?? process.env
  const own = controlSocketPath(env)
  return env.IPMOVE_LOCK_DIR || existsSync(own) ? own : ROOT_SOCKET
}

/** The daemon's snapshot, logged as lines; `ip` narrows it to one watched IP (not found: exit 4). */
export async function watchStatus(
  options: WatchStatusOptions,
  log: Logger,
): Promise<{ watch: DaemonSnapshot }> {
  const path = socketFor(options)
  const { snapshot } = (await askDaemon(path, { command: 'status' }, options.timeoutMs)) as {
    snapshot: DaemonSnapshot
  }
  const { ip } = options
  if (ip !== undefined) {
    snapshot.ips = snapshot.ips.filter((entry) => entry.name === ip || entry.address === ip)
    if (snapshot.ips.length === 0) throw notFound(`ipmove watch does not watch ${ip}`, { socket: path })
  }
  for (const line of renderSnapshot(snapshot)) log.info(line)
  return { watch: snapshot }
}

/** Clear the anti-flap stop of the watched IP `name`. */
export async function clearFlap(
  name: string,
  options: WatchStatusOptions,
  log: Logger,
): Promise<{ cleared: string }> {
  const path = socketFor(options)
  await askDaemon(path, { command: 'clear-flap', name }, options.timeoutMs)
  log.info(`${name}: anti-flap stop cleared; the daemon may claim it again`)
  return { cleared: name }
}

/**
 * `--tell NAME=hold|release`: record the wish beside the daemon's socket, so a
 * daemon (re)started later begins from it, then tell the running daemon. No
 * daemon running is not a failure of the script (it is recorded: a warning,
 * exit 0); a name not watched, or not following source = ucarp, is.
 */
export async function tell(
  spec: string,
  options: WatchStatusOptions,
  log: Logger,
): Promise<{ told: string; wish: ToldWish; delivered: boolean }> {
  const parsed = /^(.+)=(hold|release)$/.exec(spec)
  if (!parsed) throw usageError(`--tell takes NAME=hold or NAME=release, got ${shown(spec)}`)
  const name = validateName('--tell', parsed[1]!)
  const wish = parsed[2] as ToldWish
  const path = socketFor(options)
  const dir = dirname(path)
  const problem = privateDirProblem(dir, 'IPMOVE_LOCK_DIR')
  if (problem) throw usageError(`--tell: ${problem.reason}`, { socket: path })
  recordWish(dir, name, wish)
  try {
    await askDaemon(path, { command: 'tell', name, wish }, options.timeoutMs)
  } catch (error) {
    // askDaemon's own "nothing listens" carries the socket; the daemon's refusals do not.
    if (!(error instanceof IpmoveError && error.kind === 'not-found' && error.details?.socket)) throw error
    log.warn(`${error.message}: ${name}=${wish} is recorded for when it starts`)
    return { told: name, wish, delivered: false }
  }
  log.info(`${name}: told ipmove watch ${wish}`)
  return { told: name, wish, delivered: true }
}
