import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { afterEach, describe, expect, it } from 'vitest'
import { IpmoveError } from '../src/errors.js'
import { MemoryLogger } from '../src/output.js'
import {
  type MetricsEndpoint,
  type MetricsServer,
  parseMetricsAddress,
  reapplyMetrics,
  startMetrics,
} from '../src/watch/metrics.js'
import type { DaemonSnapshot } from '../src/watch/snapshot.js'
import { failure } from './helpers/errors.js'
import { sampleSnapshot, T0 } from './helpers/snapshot.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
let server: MetricsServer | undefined
afterEach(async () => {
  await server?.close()
  server = undefined
})

/** Scrape /metrics and index the samples by their name and labels as printed. */
async function scrape(at: MetricsServer): Promise<Map<string, number>> {
  const response = await fetch(`http://${at.address.host}:${at.address.port}/metrics`)
  expect(response.status).toBe(200)
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
  const samples = new Map<string, number>()
  for (const line of (await response.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue
    const space = line.lastIndexOf(' ')
    samples.set(line.slice(0, space), Number(line.slice(space + 1)))
  }
  return samples
}

describe('metrics address', () => {
  it('takes ADDRESS:PORT, [IPv6]:PORT, or a port alone on loopback', () => {
    expect(parseMetricsAddress('127.0.0.1:9479')).toEqual({ host: '127.0.0.1', port: 9479 })
    expect(parseMetricsAddress('[::1]:9479')).toEqual({ host: '::1', port: 9479 })
    expect(parseMetricsAddress('9479')).toEqual({ host: '127.0.0.1', port: 9479 })
  })

  it('refuses names, missing ports and ports out of range, with a one-line usage error', () => {
    for (const bad of ['localhost:9479', '127.0.0.1', '127.0.0.1:70000', '::1:9479', '300.1.1.1:80', '']) {
      expect(() => parseMetricsAddress(bad)).toThrow(IpmoveError)
    }
    expect(() => parseMetricsAddress('localhost:9479')).toThrow(
      'metrics: "localhost:9479" is not ADDRESS:PORT (such as 127.0.0.1:9479 or [::1]:9479)',
    )
  })
})

describe('Prometheus endpoint', () => {
  it('exposes roles, holder, checks, probes, anti-flap, transitions and the last failover, as scraped', async () => {
    server = await startMetrics({ host: '127.0.0.1', port: 0 }, () => sampleSnapshot(), new MemoryLogger())
    const m = await scrape(server)
    const web = 'ip="web"'
    expect(m.get('ipmove_watch_role{ip="web",address="203.0.113.10",role="master"}')).toBe(1)
    expect(m.get('ipmove_watch_role{ip="web",address="203.0.113.10",role="backup"}')).toBe(0)
    expect(m.get('ipmove_watch_role{ip="web",address="203.0.113.10",role="stopped"}')).toBe(0)
    expect(m.get(`ipmove_watch_holder_is_self{${web}}`)).toBe(1)
    expect(m.get(`ipmove_watch_carried{${web}}`)).toBe(1)
    expect(m.get(`ipmove_watch_holder_match{${web}}`)).toBe(1)
    expect(m.get(`ipmove_watch_holder_read_age_seconds{${web}}`)).toBe(1.5)
    expect(m.get(`ipmove_watch_check_up{${web},check="peer"}`)).toBe(0)
    expect(m.get(`ipmove_watch_check_up{${web},check="self"}`)).toBe(1)
    expect(m.get(`ipmove_watch_probe_up{${web},check="peer",probe="icmp 192.0.2.11"}`)).toBe(0)
    expect(m.get(`ipmove_watch_probe_up{${web},check="self",probe="icmp 192.0.2.11"}`)).toBe(1)
    expect(m.get(`ipmove_watch_probe_latency_seconds{${web},check="self",probe="icmp 192.0.2.11"}`)).toBe(
      0.0002,
    )
    expect(m.get(`ipmove_watch_antiflap_stopped{${web}}`)).toBe(0)
    expect(m.get(`ipmove_watch_transitions_total{${web}}`)).toBe(3)
    // Peer declared dead at T0-5000, witness answering at T0-4500.
    expect(m.get(`ipmove_watch_last_failover_seconds{${web}}`)).toBe(0.5)
    expect(m.get('ipmove_watch_start_time_seconds')).toBe((T0 - 3_600_000) / 1000)
    // prom-client's process metrics come along: resident memory is the flatness figure to watch.
    expect(m.get('process_resident_memory_bytes')).toBeGreaterThan(10_000_000)
  })

  it('reads a fresh snapshot at each scrape, and leaves out what is not known yet', async () => {
    let snapshot: DaemonSnapshot = sampleSnapshot()
    server = await startMetrics({ host: '127.0.0.1', port: 0 }, () => snapshot, new MemoryLogger())
    expect(
      (await scrape(server)).get('ipmove_watch_role{ip="web",address="203.0.113.10",role="master"}'),
    ).toBe(1)
    snapshot = sampleSnapshot({
      role: 'fault',
      carried: false,
      holder: { id: 'i-1', name: 'node-a', isSelf: false, readAt: null, error: 'HTTP 503' },
      transitions: [],
    })
    const m = await scrape(server)
    expect(m.get('ipmove_watch_role{ip="web",address="203.0.113.10",role="master"}')).toBe(0)
    expect(m.get('ipmove_watch_role{ip="web",address="203.0.113.10",role="fault"}')).toBe(1)
    expect(m.has('ipmove_watch_holder_is_self{ip="web"}')).toBe(false)
    expect(m.has('ipmove_watch_holder_match{ip="web"}')).toBe(false)
    expect(m.has('ipmove_watch_last_failover_seconds{ip="web"}')).toBe(false)
    expect(m.get('ipmove_watch_carried{ip="web"}')).toBe(0)
  })

  it('has no carried or holder-match series where the cloud maps the IP (hosts carry nothing)', async () => {
    const snapshot = sampleSnapshot({ carried: null })
    server = await startMetrics({ host: '127.0.0.1', port: 0 }, () => snapshot, new MemoryLogger())
    const m = await scrape(server)
    expect(m.get('ipmove_watch_holder_is_self{ip="web"}')).toBe(Number(snapshot.ips[0]!.holder.isSelf))
    expect(m.has('ipmove_watch_carried{ip="web"}')).toBe(false)
    expect(m.has('ipmove_watch_holder_match{ip="web"}')).toBe(false)
  })

  it('answers 404 outside /metrics', async () => {
    server = await startMetrics({ host: '127.0.0.1', port: 0 }, () => sampleSnapshot(), new MemoryLogger())
    const response = await fetch(`http://127.0.0.1:${server.address.port}/`)
    expect(response.status).toBe(404)
    await response.text()
  })

  it('refuses a port already taken with a one-line usage error', async () => {
    const taken = createServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    const { port } = taken.address() as { port: number }
    try {
      const error = await failure(
        startMetrics({ host: '127.0.0.1', port }, () => sampleSnapshot(), new MemoryLogger()),
      )
      expect([error.kind, error.message]).toEqual([
        'usage',
        `metrics: cannot listen on 127.0.0.1:${port} (EADDRINUSE)`,
      ])
    } finally {
      taken.close()
    }
  })

  it('keeps prom-client out of the daemon’s start-up: bundled, it is a chunk loaded only by startMetrics', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ipmove-metrics-bundle-'))
    try {
      const entry = join(dir, 'daemon.ts')
      writeFileSync(
        entry,
        `export { startMetrics } from ${JSON.stringify(join(ROOT, 'src/watch/metrics.ts'))}\n`,
      )
      // As scripts/build.mjs bundles the CLI: ESM with code splitting.
      const result = await build({
        entryPoints: [entry],
        outdir: join(dir, 'out'),
        bundle: true,
        splitting: true,
        format: 'esm',
        platform: 'node',
        metafile: true,
        write: false,
        logLevel: 'silent',
      })
      const outputs = result.metafile.outputs
      const key = (path: string) => relative(process.cwd(), path)
      const entryOut = Object.keys(outputs).find((o) => outputs[o]?.entryPoint === key(entry))!
      // Everything the entry loads before any call: itself and its static imports, transitively.
      const eager = new Set<string>()
      const visit = (out: string) => {
        if (eager.has(out)) return
        eager.add(out)
        for (const i of outputs[out]?.imports ?? [])
          if (i.kind === 'import-statement' && outputs[i.path]) visit(i.path)
      }
      visit(entryOut)
      const inputsOf = (outs: Iterable<string>) =>
        [...outs].flatMap((o) => Object.keys(outputs[o]?.inputs ?? {}))
      expect(inputsOf(eager).filter((input) => input.includes('prom-client'))).toEqual([])
      const lazy = Object.keys(outputs).filter((o) => !eager.has(o))
      expect(inputsOf(lazy).some((input) => input.includes('node_modules/prom-client/'))).toBe(true)
      expect(outputs[entryOut]?.imports.some((i) => i.kind === 'dynamic-import')).toBe(true)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

/** A port free on loopback right now (taken and let go). */
async function freePort(): Promise<number> {
  const probe = createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const { port } = probe.address() as { port: number }
  await new Promise<void>((resolve) => probe.close(() => resolve()))
  return port
}

/** Whether anything answers HTTP on loopback at `port`. */
async function answers(port: number): Promise<boolean> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/metrics`)
    await response.text()
    return response.status === 200
  } catch {
    return false
  }
}

describe('metrics endpoint on reload (SIGHUP)', () => {
  let endpoint: MetricsEndpoint | undefined
  afterEach(async () => {
    await endpoint?.server.close()
    endpoint = undefined
  })
  const snapshot = () => sampleSnapshot()

  it('moves to a changed address, keeps an unchanged one, and closes when the address is gone', async () => {
    const log = new MemoryLogger()
    const [first, second] = [await freePort(), await freePort()]
    endpoint = await reapplyMetrics(undefined, { host: '127.0.0.1', port: first }, snapshot, log)
    expect(await answers(first)).toBe(true)
    const same = await reapplyMetrics(endpoint, { host: '127.0.0.1', port: first }, snapshot, log)
    expect(same).toBe(endpoint)
    endpoint = await reapplyMetrics(endpoint, { host: '127.0.0.1', port: second }, snapshot, log)
    expect([await answers(first), await answers(second)]).toEqual([false, true])
    expect(endpoint?.server.address).toEqual({ host: '127.0.0.1', port: second })
    endpoint = await reapplyMetrics(endpoint, undefined, snapshot, log)
    expect(endpoint).toBeUndefined()
    expect(await answers(second)).toBe(false)
    expect(log.lines).toEqual([
      `metrics: now served on 127.0.0.1:${first}`,
      `metrics: now served on 127.0.0.1:${second}`,
      'metrics: no longer served',
    ])
  })

  it('keeps serving on the old address when the new one cannot be listened on, with a warning', async () => {
    const log = new MemoryLogger()
    const old = await freePort()
    endpoint = await reapplyMetrics(undefined, { host: '127.0.0.1', port: old }, snapshot, log)
    const taken = createServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    const { port } = taken.address() as { port: number }
    try {
      endpoint = await reapplyMetrics(endpoint, { host: '127.0.0.1', port }, snapshot, log)
      expect(endpoint?.wanted).toEqual({ host: '127.0.0.1', port: old })
      expect(await answers(old)).toBe(true)
      expect(log.lines).toContain(
        `warning: metrics: cannot listen on 127.0.0.1:${port} (EADDRINUSE); kept on 127.0.0.1:${old}`,
      )
    } finally {
      taken.close()
    }
  })
})
