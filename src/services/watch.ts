/**
 * `ipmove watch`: validate the whole config, then run the daemon in the
 * foreground until SIGTERM or SIGINT; SIGHUP reloads the config (a file with
 * errors is refused and the running config kept). Around the daemon: the
 * control socket (`ipmove status --watch`), systemd's notify protocol and
 * watchdog, and the optional Prometheus endpoint.
 */
import { homedir } from 'node:os'
import { providerNamed } from '../../providers/index.js'
import { FileCache } from '../cache.js'
import { loadConfig } from '../config.js'
import type { Logger } from '../output.js'
import { parseWatchConfig, type WatchConfig } from '../watch/config.js'
import { controlSocketPath, startControlServer } from '../watch/control.js'
import { WatchDaemon } from '../watch/daemon.js'
import { type MetricsEndpoint, reapplyMetrics, startMetrics } from '../watch/metrics.js'
import { summarizeSnapshot } from '../watch/snapshot.js'
import { PROBES } from '../watch/sources/index.js'
import { systemdNotifier } from '../watch/systemd.js'

export interface WatchOptions {
  configPath?: string
  /** Only validate the config. */
  check: boolean
  /** On SIGTERM or SIGINT, drop every address before exiting. */
  releaseOnStop: boolean
  env?: NodeJS.ProcessEnv
}

export interface WatchSummary {
  config: string
  ips: Array<{ name: string; ip: string; provider: string; source: string; probes: number; actions: number }>
}

/** Read and validate the whole file: nothing starts unless all of it is valid. */
export function readWatchConfig(options: Pick<WatchOptions, 'configPath' | 'env'>): WatchConfig {
  const env = options.env ?? process.env
  return parseWatchConfig(loadConfig({ path: options.configPath, env, home: env.HOME || homedir() }))
}

function summary(config: WatchConfig): WatchSummary {
  return {
    config: config.path,
    ips: config.ips.map((w) => ({
      name: w.name,
      ip: w.ip.block,
      provider: w.provider,
      source: w.source.kind,
      probes: w.probes.length,
      actions: w.actions.length,
    })),
  }
}

export async function runWatch(options: WatchOptions, log: Logger): Promise<WatchSummary> {
  const env = options.env ?? process.env
  const config = readWatchConfig(options)
  if (options.check) {
    for (const w of config.ips) {
      log.info(
        `${w.name}: ${w.ip.block} with ${w.provider}, ${w.source.kind === PROBES ? `${w.probes.length} probes` : `following ${w.source.kind}`}, ${w.actions.length} actions: valid`,
      )
    }
    return summary(config)
  }

  // Taken before any probe runs: a second daemon on this host is refused here.
  const notifier = systemdNotifier({ env, log })
  let daemon: WatchDaemon | undefined
  const snapshot = () => daemon!.snapshot()
  const control = await startControlServer({
    path: controlSocketPath(env),
    handlers: {
      status: snapshot,
      clearFlap: (name) => daemon!.clearFlap(name),
      tell: (name, wish) => daemon!.tell(name, wish),
    },
    log,
  })
  let metrics: MetricsEndpoint | undefined
  try {
    daemon = new WatchDaemon({
      log,
      configPath: config.path,
      onTransition: () => notifier.status(summarizeSnapshot(snapshot())),
      loadProvider: (watched) => {
        const descriptor = providerNamed(watched.provider)
        const settings = watched.providerSettings
        const cache = FileCache.forAccount(env, descriptor.name, descriptor.accountKey(env, settings), log)
        return descriptor.load({ env, cache, log, settings })
      },
    })
    if (config.metrics)
      metrics = { wanted: config.metrics, server: await startMetrics(config.metrics, snapshot, log) }
    await daemon.start(config.ips)
    log.info(`ipmove watch running: ${config.ips.map((w) => w.name).join(', ')} (pid ${process.pid})`)
    notifier.ready(summarizeSnapshot(snapshot()))
    notifier.startWatchdog()
    // SIGHUP: the IPs, then the metrics endpoint, follow the file.
    const reload = async (next: WatchConfig) => {
      await daemon!.reload(next.ips)
      metrics = await reapplyMetrics(metrics, next.metrics, snapshot, log)
    }
    await untilStopped(daemon, reload, options, notifier, log)
  } finally {
    await metrics?.server.close()
    await control.close()
    await notifier.close()
  }
  log.info('ipmove watch stopped')
  return summary(config)
}

/** Serve signals: SIGHUP reloads, SIGTERM and SIGINT stop (after a reload under way). */
function untilStopped(
  daemon: WatchDaemon,
  reload: (config: WatchConfig) => Promise<void>,
  options: WatchOptions,
  notifier: ReturnType<typeof systemdNotifier>,
  log: Logger,
): Promise<void> {
  return new Promise<void>((resolve) => {
    let reloading = Promise.resolve()
    const onHup = () => {
      reloading = reloading.then(async () => {
        log.info('SIGHUP: reloading the config')
        notifier.reloading()
        try {
          await reload(readWatchConfig(options))
        } catch (error) {
          log.warn(`config not reloaded, the running one is kept: ${(error as Error).message}`)
        }
        notifier.ready(summarizeSnapshot(daemon.snapshot()))
      })
    }
    const onStop = (signal: NodeJS.Signals) => {
      process.off('SIGHUP', onHup)
      process.off('SIGTERM', onStop)
      process.off('SIGINT', onStop)
      log.info(`${signal}: stopping${options.releaseOnStop ? ', releasing the addresses first' : ''}`)
      notifier.stopping()
      void reloading.then(() => daemon.stop(options.releaseOnStop)).then(resolve, resolve)
    }
    process.on('SIGHUP', onHup)
    process.on('SIGTERM', onStop)
    process.on('SIGINT', onStop)
  })
}
