import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'

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
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as unknown
      if (parsed && typeof parsed === 'object') this.entries = parsed as Record<string, Entry>
    } catch {
      // Missing or corrupt: start empty.
    }
  }

  /** One file per account, so two accounts on one host never share ids. */
  static forAccount(env: NodeJS.ProcessEnv, provider: string, account: string): FileCache {
    const digest = createHash('sha256').update(`${provider}\0${account}`).digest('hex').slice(0, 16)
    return new FileCache(join(defaultCacheDir(env), `${provider}-${digest}.json`))
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
    try {
      mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 })
      // Write then rename, so a concurrent reader never sees half a file.
      const tmp = `${this.file}.${process.pid}.tmp`
      writeFileSync(tmp, JSON.stringify(this.entries), { mode: 0o600 })
      renameSync(tmp, this.file)
      this.dirty = false
    } catch {
      // A read-only or full disk must not fail a failover.
    }
  }
}

/** A cache that forgets everything at exit (`--no-cache`). */
export class MemoryCache extends FileCache {
  constructor(now?: () => number) {
    super(undefined, now)
  }
}
