import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { IpmoveError } from './errors.js'
import type { Logger } from './output.js'

const RETRY_MS = 50
/** As long as a move may take by default, for callers with no --timeout of their own. */
export const DEFAULT_LOCK_WAIT_MS = 120_000

/**
 * Where the per-IP lock files live: /run/ipmove for root (cleared at boot, so
 * no lock outlives a crash of the machine), else the user's runtime directory.
 */
export function lockDir(env: NodeJS.ProcessEnv): string {
  if (env.IPMOVE_LOCK_DIR) return env.IPMOVE_LOCK_DIR
  if (process.getuid?.() === 0) return '/run/ipmove'
  return join(env.XDG_RUNTIME_DIR || tmpdir(), 'ipmove')
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Run `work` while holding this host's lock on one IP, so that two hooks fired
 * back to back (a flapping carp, keepalived's master then backup) act one after
 * the other instead of interleaving their cloud and interface changes. A lock
 * left by a dead process is taken over; waiting is bounded by `signal`, after
 * which the run fails as busy (exit 6).
 */
export async function withIpLock<T>(
  key: string,
  options: { env: NodeJS.ProcessEnv; signal: AbortSignal; log: Logger },
  work: () => Promise<T>,
): Promise<T> {
  const dir = lockDir(options.env)
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const file = join(dir, `${key.replace(/[^0-9A-Za-z.-]/g, '_')}.lock`)
  let announced = false
  for (;;) {
    if (tryLock(file)) break
    const holder = Number(readText(file))
    if (!Number.isInteger(holder) || holder <= 0 || !alive(holder)) {
      options.log.debug(`lock: taking over ${file} from a process that is gone`)
      unlinkQuietly(file)
      continue
    }
    if (!announced) {
      options.log.info(`waiting for another ipmove (pid ${holder}) working on ${key}`)
      announced = true
    }
    try {
      await sleep(RETRY_MS, undefined, { signal: options.signal })
    } catch {
      throw new IpmoveError('busy', `another ipmove (pid ${holder}) is still working on ${key}`)
    }
  }
  try {
    return await work()
  } finally {
    unlinkQuietly(file)
  }
}

/**
 * Create the lock with our pid already in it: written to a private file, then
 * hard-linked into place, which fails if the lock exists. A lock is thus never
 * seen empty, which another process would take for a dead holder's.
 */
function tryLock(file: string): boolean {
  const mine = `${file}.${process.pid}`
  writeFileSync(mine, String(process.pid), { mode: 0o600 })
  try {
    linkSync(mine, file)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    return false
  } finally {
    unlinkQuietly(mine)
  }
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim()
  } catch {
    return ''
  }
}

function unlinkQuietly(file: string): void {
  try {
    unlinkSync(file)
  } catch {
    // Already gone: another process took over a stale lock.
  }
}
