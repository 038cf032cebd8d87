import { randomBytes } from 'node:crypto'
import { linkSync, readdirSync, readFileSync, unlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { IpmoveError, usageError } from './errors.js'
import type { Logger } from './output.js'
import { createExclusive, privateDirProblem, unusableDir } from './secure-file.js'

const RETRY_MS = 50
/** As long as a move may take by default, for callers with no --timeout of their own. */
export const DEFAULT_LOCK_WAIT_MS = 120_000
/** The content of a generation that holds nothing: the lock was released. */
const FREE = 'free'

/**
 * Where the per-IP lock files live: /run/ipmove for root (cleared at boot, so
 * no lock outlives a crash of the machine), else the user's runtime directory,
 * else a directory of the user's own in $TMPDIR (checked: see lockDirectory).
 */
export function lockDir(env: NodeJS.ProcessEnv): string {
  if (env.IPMOVE_LOCK_DIR) return env.IPMOVE_LOCK_DIR
  const uid = process.getuid?.()
  if (uid === 0) return '/run/ipmove'
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'ipmove')
  return join(tmpdir(), `ipmove-${uid ?? 'user'}`)
}

/** A lock holder: its pid, and when the process started where the system says (Linux /proc). */
interface Holder {
  pid: number
  started?: string
}

/**
 * When process `pid` started, in clock ticks since boot (field 22 of
 * /proc/PID/stat); undefined without /proc (OpenBSD) or when it is gone.
 * With the pid it names one process for the whole boot: a pid alone may be
 * reused by another process after the holder died.
 */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  } catch {
    return undefined
  }
}

/** What this process writes into a lock generation it holds: `PID [START]`. */
const ownMark = () => [process.pid, startTime(process.pid)].filter((v) => v !== undefined).join(' ')

function alive(holder: Holder): boolean {
  try {
    process.kill(holder.pid, 0)
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  // The pid lives; it is the holder unless it started at another time (a reused pid).
  const started = holder.started === undefined ? undefined : startTime(holder.pid)
  return started === undefined || started === holder.started
}

/** The lock directory, created if missing; refused (exit 2) when unusable or not private. */
function lockDirectory(env: NodeJS.ProcessEnv): string {
  const dir = lockDir(env)
  const problem = privateDirProblem(dir, 'IPMOVE_LOCK_DIR')
  if (problem) throw usageError(`lock directory: ${problem.reason}`, { lockDir: dir })
  return dir
}

const lockDirFailure = (dir: string, error: unknown) =>
  usageError(`lock directory: ${unusableDir(dir, 'IPMOVE_LOCK_DIR', error)}`, { lockDir: dir })

/**
 * Run `work` while holding this host's lock on one IP, so that two hooks fired
 * back to back (a flapping carp, keepalived's master then backup) act one after
 * the other instead of interleaving their cloud and interface changes. A lock
 * left by a dead process is taken over; waiting is bounded by `signal`, after
 * which the run fails as busy (exit 6).
 *
 * How it stays exclusive without flock (which Node lacks): the lock of `key`
 * is a chain of files `<key>.lock.<n>`, each created whole and exclusively
 * (hard link of a written file, which fails if the name exists) and never
 * changed. The highest n is the state: a live holder's pid, a dead holder's
 * pid, or "free". Whoever sees it free or dead creates n+1; one creator wins.
 * The highest file is never deleted, only lower ones, so no process can remove
 * the lock of another; a process whose view was stale (it created a number
 * below the highest, recreating a deleted one) sees the higher file after its
 * create and backs out. Release writes n+1 = "free".
 */
export async function withIpLock<T>(
  key: string,
  options: { env: NodeJS.ProcessEnv; signal: AbortSignal; log: Logger },
  work: () => Promise<T>,
): Promise<T> {
  const dir = lockDirectory(options.env)
  const chain = new LockChain(dir, fileName(key), 'lock')
  const held = await acquire(chain, key, options)
  try {
    return await work()
  } finally {
    chain.release(held)
  }
}

/** What a call that stood down for a newer one returns instead of its work's result. */
export interface Superseded {
  superseded: true
}

/**
 * withLatestIntent's `work` is told through this signal that a newer call for
 * the IP wants something else: it writes nothing more, re-reads what a write
 * of its own left (reconcile's `stop`), and says what it left behind.
 */
export interface StandDown {
  signal: AbortSignal
  /** What the newest call wants, as it said it (see `intent`); set once the signal fired. */
  readonly newer?: string
}

/**
 * withLatestIntent for a call that states an intent for the IP (move it here,
 * release it): the latest intent wins. The call takes an arrival number first;
 * while it waits for the lock, a newer arrival for the same IP makes it stand
 * down without running `work`, since whatever it would do is about to be
 * undone. Once it holds the lock and works, it keeps watching: when the
 * newest arrival states a different `intent`, `work` is asked to stand down
 * (see StandDown), so a release does not wait for a move's slow task to end.
 * A newer call with the same intent lets the holder finish (it would only
 * redo the same work). Hooks fired back to back thus end in the state of the
 * last one, and the ones in between touch nothing.
 *
 * Arrival numbers are `<key>.seq.<n>` files holding the caller's pid and
 * intent, each created exclusively (so two calls never share a number) and
 * then checked to be the highest: the order is the order in which calls got
 * there, as the file system saw it, not a clock that can step or a pid that
 * wraps. The highest number is never deleted, so once a newer call exists, a
 * newer number stays visible.
 */
export async function withLatestIntent<T>(
  key: string,
  options: { env: NodeJS.ProcessEnv; signal: AbortSignal; log: Logger; intent: string },
  work: (standDown: StandDown) => Promise<T>,
): Promise<T | Superseded> {
  const dir = lockDirectory(options.env)
  const name = fileName(key)
  const arrivals = new LockChain(dir, name, 'seq')
  const arrival = arrivals.arrive(`${process.pid} ${options.intent}`)
  options.log.debug(`lock: call #${arrival} for ${key} (${options.intent})`)
  const newer = () => arrivals.newerThan(arrival)
  const chain = new LockChain(dir, name, 'lock')
  const held = await acquire(chain, key, { ...options, newer })
  if (held === undefined || newer()) {
    if (held !== undefined) chain.release(held)
    options.log.info(
      `a newer ipmove call for ${key} arrived while this one waited: standing down (superseded)`,
    )
    return { superseded: true }
  }
  const standDown = new StandDownWatch(arrivals, arrival, options.intent)
  try {
    return await work(standDown)
  } finally {
    standDown.close()
    chain.release(held)
  }
}

/** Looks, every RETRY_MS while the lock is held, for a newer arrival that wants something else. */
class StandDownWatch implements StandDown {
  private readonly controller = new AbortController()
  private readonly timer: NodeJS.Timeout
  newer?: string

  constructor(arrivals: LockChain, arrival: number, intent: string) {
    this.timer = setInterval(() => {
      try {
        const latest = arrivals.latestIntent(arrival)
        if (latest === undefined || latest === intent) return
        this.newer = latest
        this.controller.abort()
        clearInterval(this.timer)
      } catch {
        // The directory broke under us: keep working; the lock itself fails loudly where it matters.
      }
    }, RETRY_MS)
    this.timer.unref()
  }

  get signal(): AbortSignal {
    return this.controller.signal
  }

  close(): void {
    clearInterval(this.timer)
  }
}

export function isSuperseded(result: unknown): result is Superseded {
  return typeof result === 'object' && result !== null && (result as Superseded).superseded === true
}

const fileName = (key: string) => key.replace(/[^0-9A-Za-z.-]/g, '_')

/**
 * Wait for the lock of `key` and take it: the generation held, or undefined
 * when `newer` says a newer call arrived meanwhile (the wait is then pointless).
 */
async function acquire(
  chain: LockChain,
  key: string,
  options: { signal: AbortSignal; log: Logger },
): Promise<number>
async function acquire(
  chain: LockChain,
  key: string,
  options: { signal: AbortSignal; log: Logger; newer: () => boolean },
): Promise<number | undefined>
async function acquire(
  chain: LockChain,
  key: string,
  options: { signal: AbortSignal; log: Logger; newer?: () => boolean },
): Promise<number | undefined> {
  let announced = false
  for (;;) {
    const top = chain.top()
    const holder = top === undefined ? undefined : chain.holder(top)
    if (holder !== undefined && holder !== 'gone' && alive(holder)) {
      if (!announced) {
        options.log.info(`waiting for another ipmove (pid ${holder.pid}) working on ${key}`)
        announced = true
      }
      if (options.newer?.()) return undefined
      try {
        await sleep(RETRY_MS, undefined, { signal: options.signal })
      } catch {
        throw busy(key, holder.pid)
      }
      continue
    }
    if (holder !== 'gone') {
      if (holder !== undefined)
        options.log.debug(`lock: taking over ${key} from pid ${holder.pid}, which is gone`)
      const held = chain.claim((top ?? 0) + 1, ownMark())
      if (held !== undefined) return held
    }
    // Another process moved the chain on meanwhile (it released, or won the
    // claim and holds the lock now): look again, within the wait.
    if (options.signal.aborted) throw busy(key, undefined)
  }
}

const busy = (key: string, holder: number | undefined) =>
  new IpmoveError(
    'busy',
    holder === undefined
      ? `another ipmove is still working on ${key}`
      : `another ipmove (pid ${holder}) is still working on ${key}`,
  )

/** The files `<name>.<kind>.<n>` of one IP in the lock directory: the lock's generations, or arrival numbers. */
class LockChain {
  private readonly prefix: string

  constructor(
    private readonly dir: string,
    name: string,
    kind: 'lock' | 'seq',
  ) {
    this.prefix = `${name}.${kind}.`
  }

  private path(n: number): string {
    return join(this.dir, `${this.prefix}${n}`)
  }

  /** The numbers in the chain, ascending. */
  private numbers(): number[] {
    let names: string[]
    try {
      names = readdirSync(this.dir)
    } catch (error) {
      throw lockDirFailure(this.dir, error)
    }
    return names
      .filter((name) => name.startsWith(this.prefix) && /^[0-9]{1,15}$/.test(name.slice(this.prefix.length)))
      .map((name) => Number(name.slice(this.prefix.length)))
      .sort((a, b) => a - b)
  }

  top(): number | undefined {
    return this.numbers().at(-1)
  }

  /**
   * Who holds generation `n`: a process, undefined when free (or unreadable, as
   * only a bug or a hand-written file leaves one), 'gone' when it was deleted.
   */
  holder(n: number): Holder | undefined | 'gone' {
    const text = this.read(n)
    if (text === undefined) return 'gone'
    const [pidText, started] = text.split(' ')
    const pid = Number(pidText)
    if (!Number.isSafeInteger(pid) || pid <= 0) return undefined
    return started && /^[0-9]{1,20}$/.test(started) ? { pid, started } : { pid }
  }

  /** The text of file `n`; undefined when it was deleted. */
  private read(n: number): string | undefined {
    try {
      return readFileSync(this.path(n), 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw lockDirFailure(this.dir, error)
    }
  }

  /** Try to hold generation `n`, marked `mark` (ownMark): n when we do, undefined when another process won or our view was stale. */
  claim(n: number, mark: string): number | undefined {
    if (!this.create(n, mark)) return undefined
    const numbers = this.numbers()
    if (numbers.some((m) => m > n)) {
      // Our view was stale: n had been used and deleted. Not the lock; undo.
      this.remove(n)
      return undefined
    }
    for (const m of numbers) if (m < n) this.remove(m)
    return n
  }

  /**
   * Take the next arrival number: created exclusively, then checked to be the
   * highest (a number created meanwhile above ours means our view was stale:
   * ours is given back and a higher one taken). Lower numbers are deleted,
   * the highest never, so the chain only grows.
   */
  arrive(text: string): number {
    for (;;) {
      const n = (this.top() ?? 0) + 1
      if (!this.create(n, text)) continue
      const numbers = this.numbers()
      if (numbers.some((m) => m > n)) {
        this.remove(n)
        continue
      }
      for (const m of numbers) if (m < n) this.remove(m)
      return n
    }
  }

  /** Whether a number above `n` was taken: a newer call arrived. */
  newerThan(n: number): boolean {
    return (this.top() ?? 0) > n
  }

  /**
   * The intent of the newest arrival above `n`, undefined when there is none.
   * A newer arrival deletes the file we looked at: then look again.
   */
  latestIntent(n: number): string | undefined {
    for (;;) {
      const top = this.top() ?? 0
      if (top <= n) return undefined
      const text = this.read(top)
      if (text === undefined) continue
      const space = text.indexOf(' ')
      return space < 0 ? '' : text.slice(space + 1)
    }
  }

  /** Mark the lock free with the next generation, then drop ours. */
  release(n: number): void {
    try {
      this.create(n + 1, FREE)
    } catch {
      // A full or broken directory: keep our file, as the highest must never be
      // deleted; the lock is taken over once this process is gone.
      return
    }
    this.remove(n)
  }

  /**
   * Create generation `n` with `text` in one step: written to a private file of
   * a random name (O_EXCL, so a planted symlink is never followed), then hard-
   * linked into place, which fails if the name exists. A generation is thus
   * never seen empty or half written.
   */
  private create(n: number, text: string): boolean {
    const scratch = join(this.dir, `.${this.prefix}${randomBytes(8).toString('hex')}`)
    try {
      createExclusive(scratch, text)
    } catch (error) {
      throw lockDirFailure(this.dir, error)
    }
    try {
      linkSync(scratch, this.path(n))
      return true
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
      throw lockDirFailure(this.dir, error)
    } finally {
      this.removePath(scratch)
    }
  }

  private remove(n: number): void {
    this.removePath(this.path(n))
  }

  private removePath(path: string): void {
    try {
      unlinkSync(path)
    } catch {
      // Already gone: cleaned up by the next holder.
    }
  }
}
