/**
 * Memory stays flat over 100,000 probe cycles of the watch loop: the real
 * daemon (its probes, checks, decisions, API reads and status snapshot)
 * against the in-memory cloud, with TCP probes every 10 ms to listeners on
 * loopback. Some answer, one port refuses every time, and one witness
 * listener comes and goes, so failures, late/dead/up events, decisions and
 * log lines all recur. The heap after full collections is compared after a
 * warm-up and at the end: a leak of a few bytes per probe cycle fails.
 * IPMOVE_MEMORY_CYCLES sets the count (the README's long run: 1,000,000).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, expect, it } from 'vitest'
import { loadConfig } from '../src/config.js'
import type { Logger } from '../src/output.js'
import { parseWatchConfig } from '../src/watch/config.js'
import { WatchDaemon } from '../src/watch/daemon.js'
import { FakeDriver, FakeProvider } from './helpers/fake-provider.js'

const CYCLES = Number(process.env.IPMOVE_MEMORY_CYCLES ?? 100_000)
const WARM_UP = 10_000
/** Listeners answering the peer probes; each probe runs every 10 ms. */
const LISTENERS = 100
/** Heap growth allowed from the warm-up to the end: a leak of 10 bytes per cycle over 100,000 is about 1 MB. */
const MAX_GROWTH_BYTES = 1024 * 1024

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

/** A loopback listener that counts connections and closes each at once. */
async function listener(count: () => void, port = 0): Promise<Server> {
  const server = createServer((socket) => {
    count()
    socket.destroy()
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
  return server
}

const portOf = (server: Server) => (server.address() as { port: number }).port
const close = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()))

/**
 * The heap's floor while the loop runs: the least of a few readings after
 * full collections (Vitest runs with --expose-gc). A hundred probes in
 * flight hold sockets and promises that come and go (about 2 MB here); a
 * leak stays in every reading.
 */
async function heapFloor(): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('run with --expose-gc (vitest.config.ts does)')
  let least = Number.POSITIVE_INFINITY
  for (let i = 0; i < 8; i++) {
    gc()
    least = Math.min(least, process.memoryUsage().heapUsed)
    await sleep(15)
  }
  return least
}

it(`the watch loop's memory is flat over ${CYCLES.toLocaleString('en')} probe cycles`, async () => {
  let cycles = 0
  const counted = () => {
    cycles += 1
  }
  const servers = await Promise.all(Array.from({ length: LISTENERS }, () => listener(counted)))
  cleanup.push(() => Promise.all(servers.map(close)).then(() => {}))
  const refused = await listener(() => {})
  const refusedPort = portOf(refused)
  await close(refused)
  let witness: Server | undefined = await listener(counted)
  const witnessPort = portOf(witness)
  cleanup.push(() => (witness ? close(witness) : undefined))

  const dir = mkdtempSync(join(tmpdir(), 'ipmove-watchmem-'))
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
  const tcp = (label: string, check: string, port: number) =>
    `[watch.web.probe.${label}]\ncheck = ${check}\nkind = tcp\nhost = 127.0.0.1\nport = ${port}\ninterval = 0.01\ntimeout = 0.25\n`
  const path = join(dir, 'ipmove.conf')
  writeFileSync(
    path,
    `[ip.web]
ip = 203.0.113.10
provider = ovh
interface = lo

[watch.web]
api-interval = 0.05
; The witness must go down and up with its listener; the peer and this node must not, on a busy machine.
witness-initdead = 0.5
witness-warntime = 0.05
witness-deadtime = 0.1
peer-initdead = 10
peer-deadtime = 10
self-initdead = 10
self-deadtime = 10

${servers.map((s, i) => tcp(`p${i}`, 'peer', portOf(s))).join('\n')}
${tcp('refused', 'peer', refusedPort)}
${tcp('site', 'witness', witnessPort)}
[watch.web.probe.lo]
check = self
kind = link
interval = 0.01
; Its sysfs reads queue in libuv's thread pool behind the forced collections of heapFloor(): on a busy
; machine the 0.2 s default timeout failed them for 10 s, and the node went to fault.
timeout = 2
`,
    { mode: 0o600 },
  )
  const watched = parseWatchConfig(loadConfig({ path, env: {}, home: dir, uid: 1000 })).ips
  const lines = { info: 0, warn: 0 }
  const log: Logger = {
    info: () => {
      lines.info += 1
    },
    warn: () => {
      lines.warn += 1
    },
    debug: () => {},
    progress: () => {},
  }
  const cloud = new FakeProvider({ holder: 'web-2' })
  const daemon = new WatchDaemon({
    log,
    configPath: path,
    loadProvider: async () => cloud,
    driver: new FakeDriver(),
    announce: false,
  })
  cleanup.push(() => daemon.stop())
  await daemon.start(watched)

  // The witness answers for 300 ms, then refuses for 300 ms: its check goes down and up, and the decision runs.
  let flips = 0
  const flipping = setInterval(() => {
    flips += 1
    if (witness) {
      const closing = witness
      witness = undefined
      void close(closing)
    } else void listener(counted, witnessPort).then((s) => (witness = s))
  }, 300)
  cleanup.push(() => clearInterval(flipping))

  const until = async (n: number) => {
    while (cycles < n) {
      await sleep(50)
      // What `ipmove status --watch` and the metrics read, taken as often as a busy operator would.
      daemon.snapshot()
    }
  }
  const started = performance.now()
  await until(WARM_UP)
  const before = await heapFloor()
  const rssBefore = process.memoryUsage().rss
  const from = cycles
  // Readings on the way, for the log: a leak climbs through them, noise does not.
  const floors: number[] = []
  for (let next = from + 20_000; next < from + CYCLES; next += 20_000) {
    await until(next)
    floors.push(await heapFloor())
  }
  await until(from + CYCLES)
  const after = await heapFloor()
  const rssAfter = process.memoryUsage().rss
  const seconds = (performance.now() - started) / 1000

  const snap = daemon.snapshot().ips[0]!
  const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(2)
  console.log(
    `${(cycles - from).toLocaleString('en')} probe cycles in ${seconds.toFixed(1)} s: heap floor ${[before, ...floors, after].map(mb).join(' → ')} MB ` +
      `(${after - before >= 0 ? '+' : ''}${((after - before) / 1024).toFixed(0)} KB, ${((after - before) / (cycles - from)).toFixed(2)} bytes per cycle); ` +
      `RSS ${mb(rssBefore)} → ${mb(rssAfter)} MB; ${flips} witness flips, ${lines.info} log lines, ${cloud.calls.length} API calls`,
  )
  // The loop really ran: the peer is up, the refusing probe failed, the witness came and went, the API was
  // read; and nothing was claimed.
  expect(snap.role).toBe('backup')
  expect(cloud.calls.filter((c) => c.startsWith('write'))).toEqual([])
  expect(snap.checks.peer.health).toBe('up')
  expect(snap.checks.peer.probes.find((p) => p.label.endsWith(`:${refusedPort}`))?.ok).toBe(false)
  expect(lines.info).toBeGreaterThan(flips)
  expect(cloud.calls.filter((c) => c === 'read').length).toBeGreaterThan(seconds * 5)
  expect(after - before).toBeLessThan(MAX_GROWTH_BYTES)
}, 600_000)
