/**
 * `ipmove watch`: validate the whole config, then run the daemon in the
 * foreground until SIGTERM or SIGINT; SIGHUP reloads the config (a file with
 * errors is refused and the running config kept).
 */
import { homedir } from 'node:os'
import { providerNamed } from '../../providers/index.js'
import { FileCache } from '../cache.js'
import { loadConfig } from '../config.js'
import type { Logger } from '../output.js'
import { parseWatchConfig, type WatchedIp } from '../watch/config.js'
import { WatchDaemon } from '../watch/daemon.js'

export interface WatchOptions {
  configPath?: string
  /** Only validate the config. */
  check: boolean
  /** On SIGTERM or SIGINT, drop every address before exiting. */
  releaseOnStop: boolean
  env?: NodeJS.ProcessEnv
}

export interface WatchSummary {
  ips: Array<{ name: string; ip: string; provider: string; probes: number; actions: number }>
}

/** Read and validate the whole file: nothing starts unless all of it is valid. */
export function readWatchConfig(options: Pick<WatchOptions, 'configPath' | 'env'>): WatchedIp[] {
  const env = options.env ?? process.env
  return parseWatchConfig(loadConfig({ path: options.configPath, env, home: env.HOME || homedir() }))
}

function summary(config: readonly WatchedIp[]): WatchSummary {
  return {
    ips: config.map((w) => ({
      name: w.name,
      ip: w.ip.block,
      provider: w.provider,
      probes: w.probes.length,
      actions: w.actions.length,
    })),
  }
}

export async function runWatch(options: WatchOptions, log: Logger): Promise<WatchSummary> {
  const env = options.env ?? process.env
  const config = readWatchConfig(options)
  if (options.check) {
    for (const w of config) {
      log.info(
        `${w.name}: ${w.ip.block} with ${w.provider}, ${w.probes.length} probes, ${w.actions.length} actions: valid`,
      )
    }
    return summary(config)
  }
  const daemon = new WatchDaemon({
    log,
    loadProvider: (watched) => {
      const descriptor = providerNamed(watched.provider)
      const settings = watched.providerSettings
      const cache = FileCache.forAccount(env, descriptor.name, descriptor.accountKey(env, settings), log)
      return descriptor.load({ env, cache, log, settings })
    },
  })
  await daemon.start(config)
  log.info(`ipmove watch running: ${config.map((w) => w.name).join(', ')} (pid ${process.pid})`)

  await new Promise<void>((resolve) => {
    let reloading = Promise.resolve()
    const onHup = () => {
      reloading = reloading.then(async () => {
        log.info('SIGHUP: reloading the config')
        try {
          await daemon.reload(readWatchConfig(options))
        } catch (error) {
          log.warn(`config not reloaded, the running one is kept: ${(error as Error).message}`)
        }
      })
    }
    const onStop = (signal: NodeJS.Signals) => {
      process.off('SIGHUP', onHup)
      process.off('SIGTERM', onStop)
      process.off('SIGINT', onStop)
      log.info(`${signal}: stopping${options.releaseOnStop ? ', releasing the addresses first' : ''}`)
      void reloading.then(() => daemon.stop(options.releaseOnStop)).then(resolve, resolve)
    }
    process.on('SIGHUP', onHup)
    process.on('SIGTERM', onStop)
    process.on('SIGINT', onStop)
  })
  log.info('ipmove watch stopped')
  return summary(config)
}
