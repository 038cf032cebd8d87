/**
 * The Prometheus exposition of a DaemonSnapshot, through prom-client. Loaded
 * lazily by ./metrics.ts. Every value is read from the snapshot at scrape time
 * (prom-client's collect), so nothing here can drift from `ipmove status`.
 */
import { createServer, type Server } from 'node:http'
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client'
import { usageError } from '../errors.js'
import type { Logger } from '../output.js'
import type { MetricsAddress, MetricsServer } from './metrics.js'
import {
  type DaemonSnapshot,
  type FailoverTimeline,
  type IpSnapshot,
  type ProbeSnapshot,
  ROLES,
  TIMELINE_STEPS,
} from './snapshot.js'

/** Scrapes are small and quick; anything slower is not Prometheus. */
const REQUEST_TIMEOUT_MS = 5000
const MAX_CONNECTIONS = 8

/** Seconds from the first step of a failover to the last one reached. */
export function timelineSeconds(timeline: FailoverTimeline): number | undefined {
  const times = TIMELINE_STEPS.map((step) => timeline[step]).filter((t): t is number => t !== null)
  if (times.length < 2) return undefined
  return (Math.max(...times) - Math.min(...times)) / 1000
}

const PROBE_LABELS = ['ip', 'check', 'probe']

/** Every probe of every check of every IP, with its labels. */
function* probesOf(snapshot: DaemonSnapshot): Generator<[Record<string, string>, ProbeSnapshot]> {
  for (const ip of snapshot.ips)
    for (const check of Object.values(ip.checks))
      for (const probe of check.probes) yield [{ ip: ip.name, check: check.kind, probe: probe.label }, probe]
}

/** A registry whose metrics all come from `snapshot()` when scraped. */
export function metricsRegistry(snapshot: () => DaemonSnapshot): Registry {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  // One snapshot per scrape, shared by every metric's collect().
  let current: DaemonSnapshot | undefined
  const take = () => {
    current ??= snapshot()
    queueMicrotask(() => {
      current = undefined
    })
    return current
  }
  const gauge = (
    name: string,
    help: string,
    labelNames: string[],
    fill: (g: Gauge, s: DaemonSnapshot) => void,
  ) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset()
        fill(this, take())
      },
    })
  gauge(
    'ipmove_watch_start_time_seconds',
    'When the daemon started, in seconds since the epoch.',
    [],
    (g, s) => g.set(s.startedAt / 1000),
  )
  gauge(
    'ipmove_watch_role',
    'The role of this node for each IP: 1 for the current role, 0 for the others.',
    ['ip', 'address', 'role'],
    (g, s) => {
      for (const ip of s.ips)
        for (const role of ROLES) g.set({ ip: ip.name, address: ip.address, role }, ip.role === role ? 1 : 0)
    },
  )
  /** One value per IP; undefined leaves the IP out (not known yet). */
  const perIp = (
    name: string,
    help: string,
    value: (ip: IpSnapshot, s: DaemonSnapshot) => number | undefined,
  ) =>
    gauge(name, help, ['ip'], (g, s) => {
      for (const ip of s.ips) {
        const v = value(ip, s)
        if (v !== undefined) g.set({ ip: ip.name }, v)
      }
    })
  /** The API's answer about the holder, once there is one. */
  const read = (ip: IpSnapshot, v: (readAt: number) => number) =>
    ip.holder.readAt === null ? undefined : v(ip.holder.readAt)
  perIp('ipmove_watch_holder_is_self', 'Whether the API routes the IP to this node, as last read.', (ip) =>
    read(ip, () => Number(ip.holder.isSelf)),
  )
  // Neither series exists for an IP the cloud maps onto hosts' own addresses: there is nothing to carry.
  perIp('ipmove_watch_carried', 'Whether this host carries the address on its interface.', (ip) =>
    ip.carried === null ? undefined : Number(ip.carried),
  )
  perIp(
    'ipmove_watch_holder_match',
    'Whether the API and this host agree: the address is carried here exactly when the API routes it here.',
    (ip) => (ip.carried === null ? undefined : read(ip, () => Number(ip.holder.isSelf === ip.carried))),
  )
  perIp(
    'ipmove_watch_holder_read_age_seconds',
    'How old the last answer of the API about the holder is.',
    (ip, s) => read(ip, (readAt) => (s.takenAt - readAt) / 1000),
  )
  gauge(
    'ipmove_watch_check_up',
    'Each check (peer, self, witness): 1 up, 0 down; absent while pending.',
    ['ip', 'check'],
    (g, s) => {
      for (const ip of s.ips)
        for (const check of Object.values(ip.checks))
          if (check.health !== 'pending')
            g.set({ ip: ip.name, check: check.kind }, check.health === 'up' ? 1 : 0)
    },
  )
  gauge('ipmove_watch_probe_up', "Each probe's last answer: 1 success, 0 failure.", PROBE_LABELS, (g, s) => {
    for (const [labels, probe] of probesOf(s)) if (probe.ok !== null) g.set(labels, probe.ok ? 1 : 0)
  })
  gauge(
    'ipmove_watch_probe_latency_seconds',
    "Each probe's last answer time: round trip, connect, request or run time.",
    PROBE_LABELS,
    (g, s) => {
      for (const [labels, probe] of probesOf(s)) if (probe.ms !== null) g.set(labels, probe.ms / 1000)
    },
  )
  perIp('ipmove_watch_antiflap_stopped', 'Whether claims are stopped by the anti-flap rule.', (ip) =>
    Number(ip.antiFlap.stopped),
  )
  perIp(
    'ipmove_watch_last_failover_seconds',
    'The last move of the IP, from its first step (peer declared dead, or the decision) to the last one reached.',
    (ip) => {
      const last = ip.transitions.findLast((t) => t.timeline !== null)?.timeline
      return last ? timelineSeconds(last) : undefined
    },
  )
  new Counter({
    name: 'ipmove_watch_transitions_total',
    help: 'Role changes since the daemon started.',
    labelNames: ['ip'],
    registers: [registry],
    collect() {
      this.reset()
      for (const ip of take().ips) this.inc({ ip: ip.name }, ip.transitionsTotal)
    },
  })
  return registry
}

/** Listen on `address` and answer GET /metrics; everything else is a 404. */
export async function servePrometheus(
  address: MetricsAddress,
  snapshot: () => DaemonSnapshot,
  log: Logger,
): Promise<MetricsServer> {
  const registry = metricsRegistry(snapshot)
  const server: Server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n')
      return
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (error: unknown) => {
        log.warn(`metrics: ${String(error)}`)
        response.writeHead(500, { 'content-type': 'text/plain' }).end('metrics failed\n')
      },
    )
  })
  server.requestTimeout = REQUEST_TIMEOUT_MS
  server.headersTimeout = REQUEST_TIMEOUT_MS
  server.maxConnections = MAX_CONNECTIONS
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        usageError(
          `metrics: cannot listen on ${address.host}:${address.port} (${error.code ?? error.message})`,
        ),
      ),
    )
    server.listen(address.port, address.host, () => resolve())
  })
  const bound = server.address()
  const port = typeof bound === 'object' && bound ? bound.port : address.port
  return {
    address: { host: address.host, port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
