/**
 * `ipmove watch`: one IpWatcher per `[watch.NAME]`, a reload that keeps
 * unchanged IPs as they are, and a stop that may release the addresses.
 * Signals are wired by `runWatch` (src/services/watch.ts); this class only
 * knows start, reload and stop, so tests drive it directly.
 */
import { isDeepStrictEqual } from 'node:util'
import type { AddressDriver } from '../alias/driver.js'
import type { Provider } from '../core/provider.js'
import { notFound } from '../errors.js'
import type { Logger } from '../output.js'
import { now } from '../probes/probe.js'
import type { WatchedIp } from './config.js'
import { IpWatcher } from './ip-watcher.js'
import { type DaemonSnapshot, SNAPSHOT_VERSION } from './snapshot.js'
import { sourceNamed } from './sources/index.js'
import type { ToldWish } from './sources/source.js'

export interface DaemonOptions {
  log: Logger
  /** The file the config came from, for status. */
  configPath: string
  /** Called after any IP changed role (systemd's STATUS= line). */
  onTransition?: () => void
  /** Loads the provider of one watched IP (the registry's, by default in the service). */
  loadProvider(watched: WatchedIp): Promise<Provider>
  driver?: AddressDriver
  pollMs?: { first: number; max: number }
  announce?: false
}

export class WatchDaemon {
  private readonly watchers = new Map<string, IpWatcher>()
  readonly startedAt = now()

  constructor(private readonly options: DaemonOptions) {}

  get names(): string[] {
    return [...this.watchers.keys()]
  }

  watcher(name: string): IpWatcher | undefined {
    return this.watchers.get(name)
  }

  /** Start watching every IP; all providers load before the first probe starts. */
  async start(config: readonly WatchedIp[]): Promise<void> {
    const created = await Promise.all(config.map((w) => this.create(w)))
    for (const watcher of created) {
      this.watchers.set(watcher.watched.name, watcher)
      watcher.start()
    }
  }

  /**
   * Apply a new, already validated config: an IP whose settings did not
   * change keeps running untouched (its address and state); a changed one
   * restarts its checks without dropping the address (the API, read at
   * start, says it is here); a removed one stops being watched, and keeps
   * whatever it carries.
   */
  async reload(
    config: readonly WatchedIp[],
  ): Promise<{ kept: string[]; restarted: string[]; added: string[]; removed: string[] }> {
    const { log } = this.options
    const next = new Map(config.map((w) => [w.name, w]))
    const report = {
      kept: [] as string[],
      restarted: [] as string[],
      added: [] as string[],
      removed: [] as string[],
    }
    for (const [name, watcher] of this.watchers) {
      if (!next.has(name)) {
        await watcher.stop(false)
        this.watchers.delete(name)
        report.removed.push(name)
      }
    }
    for (const watched of config) {
      const current = this.watchers.get(watched.name)
      if (current && isDeepStrictEqual(current.watched, watched)) {
        report.kept.push(watched.name)
        continue
      }
      const watcher = await this.create(watched)
      if (current) await current.stop(false)
      this.watchers.set(watched.name, watcher)
      watcher.start()
      ;(current ? report.restarted : report.added).push(watched.name)
    }
    log.info(
      `reloaded: ${
        Object.entries(report)
          .filter(([, names]) => names.length > 0)
          .map(([what, names]) => `${what} ${names.join(', ')}`)
          .join('; ') || 'nothing watched'
      }`,
    )
    return report
  }

  /** Stop every watcher; with `release`, or an IP's release-on-stop, drop its address first. */
  async stop(release = false): Promise<void> {
    await Promise.all([...this.watchers.values()].map((w) => w.stop(release || w.watched.releaseOnStop)))
    this.watchers.clear()
  }

  /** What `ipmove status --watch`, the metrics and systemd's STATUS= show. */
  snapshot(): DaemonSnapshot {
    return {
      version: SNAPSHOT_VERSION,
      pid: process.pid,
      startedAt: this.startedAt,
      takenAt: now(),
      configPath: this.options.configPath,
      ips: [...this.watchers.values()].map((w) => w.snapshot()),
    }
  }

  /** An operator clears one IP's anti-flap stop. */
  clearFlap(name: string): void {
    this.watcherNamed(name).clearFlapping()
  }

  private watcherNamed(name: string): IpWatcher {
    const watcher = this.watchers.get(name)
    if (!watcher) throw notFound(`${name} is not watched (watched: ${this.names.join(', ') || 'none'})`)
    return watcher
  }

  /** An engine's script tells one IP's wish (source = ucarp). */
  tell(name: string, wish: ToldWish): void {
    this.watcherNamed(name).tell(wish)
  }

  private async create(watched: WatchedIp): Promise<IpWatcher> {
    const provider = await this.options.loadProvider(watched)
    const createSource = await sourceNamed(watched.source.kind)?.load()
    return new IpWatcher(watched, {
      createSource,
      provider,
      log: this.options.log,
      driver: this.options.driver,
      pollMs: this.options.pollMs,
      announce: this.options.announce,
      onTransition: this.options.onTransition,
    })
  }
}
