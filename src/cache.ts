import { createHash, randomBytes } from 'node:crypto'
import { closeSync, constants, openSync, readFileSync, renameSync, unlinkSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import type { Logger } from './output.js'
import { createExclusive, privateDirProblem } from './secure-file.js'

/**
 * A small on-disk map of ids and the API clock delta, so a warm hook skips the
 * look-ups a cold one makes (project by name, failover IP by address…). Entries
 * expire after a TTL and providers drop them on a 404. The cache holds no
 * secrets: keys are hashed with the account they belong to.
 */
export interface IdCache {
  get(key: string): string | undefined
  set(key: string, value: string, ttlMs?: number): void
  delete(key: string): void
  /** Write changes to disk; failures are ignored (the cache is an optimisation). */
  save(): void
}

interface Entry {
  v: string
  /** Expiry, ms since epoch. */
  e: number
}

const DEFAULT_TTL_MS = 24 * 3600_000

export function defaultCacheDir(env: NodeJS.ProcessEnv): string {
  if (env.IPMOVE_CACHE_DIR) return env.IPMOVE_CACHE_DIR
  if (process.getuid?.() === 0) return '/var/cache/ipmove'
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'ipmove')
}

export class FileCache implements IdCache {
  private entries: Record<string, Entry> = {}
  private dirty = false

  /** `file` undefined: a cache in memory only, forgotten at exit. */
  constructor(
    private readonly file: string | undefined,
    private readonly now: () => number = Date.now,
  ) {
    if (file === undefined) return
    try {
      // O_NOFOLLOW: the cache is read only from a file of ours, never through a symlink.
      const fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW)
      try {
        const parsed = JSON.parse(readFileSync(fd, 'utf8')) as unknown
        if (parsed && typeof parsed === 'object') this.entries = parsed as Record<string, Entry>
      } finally {
        closeSync(fd)
      }
    } catch {
      // Missing, a symlink or corrupt: start empty.
    }
  }

  /**
   * One file per account, so two accounts on one host never share ids. The
   * directory must be private (see privateDirProblem): ids planted by another
   * user could send the IP to an instance of their choosing. If it is not, the
   * run goes on with a cache in memory, and a warning says what to configure.
   */
  static forAccount(env: NodeJS.ProcessEnv, provider: string, account: string, log: Logger): FileCache {
    const dir = defaultCacheDir(env)
    const problem = privateDirProblem(dir, 'IPMOVE_CACHE_DIR')
    if (problem) {
      // A directory that cannot be created (a read-only disk) is no news; one others control is.
      if (problem.unsafe) log.warn(`id cache not used: ${problem.reason}`)
      else log.debug(`id cache not used: ${problem.reason}`)
      return new FileCache(undefined)
    }
    const digest = createHash('sha256').update(`${provider}\0${account}`).digest('hex').slice(0, 16)
    return new FileCache(join(dir, `${provider}-${digest}.json`))
  }

  get(key: string): string | undefined {
    const entry = this.entries[key]
    if (!entry) return undefined
    if (entry.e <= this.now()) {
      this.delete(key)
      return undefined
    }
    return entry.v
  }

  set(key: string, value: string, ttlMs = DEFAULT_TTL_MS): void {
    this.entries[key] = { v: value, e: this.now() + ttlMs }
    this.dirty = true
  }

  delete(key: string): void {
    if (key in this.entries) {
      delete this.entries[key]
      this.dirty = true
    }
  }

  save(): void {
    if (!this.dirty || this.file === undefined) return
    // Write then rename, so a concurrent reader never sees half a file.
    const tmp = `${this.file}.${randomBytes(8).toString('hex')}.tmp`
    try {
      createExclusive(tmp, JSON.stringify(this.entries))
      renameSync(tmp, this.file)
      this.dirty = false
    } catch {
      // A read-only or full disk must not fail a failover.
      try {
        unlinkSync(tmp)
      } catch {
        // Never created.
      }
    }
  }
}

/** A cache that forgets everything at exit (`--no-cache`). */
export class MemoryCache extends FileCache {
  constructor(now?: () => number) {
    super(undefined, now)
  }
}
