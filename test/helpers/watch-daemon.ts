/** A watch daemon on the in-memory cloud and address driver, with short polls: no root, no network. */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../../src/config.js'
import { MemoryLogger } from '../../src/output.js'
import { parseWatchConfig, type WatchedIp } from '../../src/watch/config.js'
import { WatchDaemon } from '../../src/watch/daemon.js'
import { waitFor } from '../rig/netns.js'
import { FakeDriver, FakeProvider } from './fake-provider.js'

export function memoryDaemon(
  configPath: string,
  watched: readonly WatchedIp[],
  cloud = new FakeProvider({ holder: 'web-2' }),
) {
  const driver = new FakeDriver()
  const log = new MemoryLogger()
  const daemon = new WatchDaemon({
    log,
    configPath,
    loadProvider: async () => cloud,
    driver,
    announce: false,
    pollMs: { first: 5, max: 20 },
  })
  return { cloud, driver, log, ready: daemon.start(watched), daemon }
}

/** Write `dir`/ipmove.conf: IP web (203.0.113.10 on eth0, OVH) and `[watch.web]` followed by `body`; parse it. */
export function webWatchConfig(dir: string, body: string): WatchedIp[] {
  const path = join(dir, 'ipmove.conf')
  writeFileSync(
    path,
    `[ip.web]
ip = 203.0.113.10
provider = ovh
interface = eth0

[watch.web]
${body}`,
    { mode: 0o600 },
  )
  return parseWatchConfig(loadConfig({ path, env: {}, home: dir, uid: 1000 })).ips
}

/** Wait until `check` holds, polling every 10 ms. */
export const until = (what: string, check: () => boolean, ms = 5000) =>
  waitFor(what, async () => (check() ? true : undefined), ms, 10)
