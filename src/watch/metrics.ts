/**
 * The optional Prometheus endpoint: `metrics = 127.0.0.1:9479` in the watch
 * config. This module is all the daemon loads when it starts; prom-client and
 * the HTTP server (./prometheus.ts) are imported only when an address is
 * configured, so a daemon without metrics starts as fast as before.
 */
import { isIP } from 'node:net'
import { isDeepStrictEqual } from 'node:util'
import { usageError } from '../errors.js'
import type { Logger } from '../output.js'
import { shown } from '../validate.js'
import type { DaemonSnapshot } from './snapshot.js'

export interface MetricsAddress {
  host: string
  port: number
}

export interface MetricsServer {
  /** Where it listens (the port chosen, when 0 was asked). */
  readonly address: MetricsAddress
  close(): Promise<void>
}

/** `127.0.0.1:9479`, `[::1]:9479`, or a port alone (loopback). An address, never a name: no lookup at start. */
export function parseMetricsAddress(text: string, what = 'metrics'): MetricsAddress {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(text) ?? /^()()(\d{1,5})$/.exec(text)
  const host = match?.[1] || match?.[2] || '127.0.0.1'
  const port = Number(match?.[3])
  if (!match || !isIP(host) || !(port >= 0 && port <= 65_535)) {
    throw usageError(`${what}: ${shown(text)} is not ADDRESS:PORT (such as 127.0.0.1:9479 or [::1]:9479)`)
  }
  return { host, port }
}

/** Serve GET /metrics on `address`, each scrape read from a fresh snapshot. */
export async function startMetrics(
  address: MetricsAddress,
  snapshot: () => DaemonSnapshot,
  log: Logger,
): Promise<MetricsServer> {
  const { servePrometheus } = await import('./prometheus.js')
  return servePrometheus(address, snapshot, log)
}

/** A running endpoint and the address the config asked for (port 0 there, the chosen port in `server`). */
export interface MetricsEndpoint {
  wanted: MetricsAddress
  server: MetricsServer
}

const shownAddress = (a: MetricsAddress) =>
  a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`

/**
 * Follow a reloaded config (SIGHUP): open, move or close the endpoint. The
 * old one closes first, so a new address on the same port can be taken; if
 * the new address cannot be listened on, the old one is reopened and a
 * warning says so, as a config with errors keeps the running one.
 */
export async function reapplyMetrics(
  current: MetricsEndpoint | undefined,
  wanted: MetricsAddress | undefined,
  snapshot: () => DaemonSnapshot,
  log: Logger,
): Promise<MetricsEndpoint | undefined> {
  if (isDeepStrictEqual(current?.wanted, wanted)) return current
  await current?.server.close()
  if (!wanted) {
    log.info('metrics: no longer served')
    return undefined
  }
  try {
    const server = await startMetrics(wanted, snapshot, log)
    log.info(`metrics: now served on ${shownAddress(server.address)}`)
    return { wanted, server }
  } catch (error) {
    const message = (error as Error).message
    if (!current) {
      log.warn(`${message}; no metrics served`)
      return undefined
    }
    log.warn(`${message}; kept on ${shownAddress(current.wanted)}`)
    return reapplyMetrics(undefined, current.wanted, snapshot, log)
  }
}
