// `npm run bench`, the `ipmove watch` part, on the rig of bench-local.mjs
// (nodes a and b, a client obs, one bridge): A is master, B backup, both
// running the built daemon; A's link dies.
//  - the gap the client sees in its pings (every 10 ms) to the failover IP,
//    local provider, default timings and the fast profile, each side by side
//    with keepalived in the same rig and run (bench-keepalived.mjs): the
//    defaults against keepalived's default (VRRPv2, advert_int 1), the fast
//    profile against VRRPv3 with 100 ms adverts, rounds interleaved;
//  - with the OVH emulator (no pending delay) on the client's address: link
//    death → attach request received, against deadtime + 0.2 s.
// Needs root; skips with a message otherwise. Run alone with
// `node scripts/bench-watch.mjs` (after `npm run build`); `npm run
// bench:failover` runs the comparison with keepalived alone
// (`node scripts/bench-watch.mjs failover [defaults|fast] [--json]`).
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { pathToFileURL } from 'node:url'
import { keepalivedProblem, keepalivedVersion, startKeepalived } from './bench-keepalived.mjs'
import { destroy, inNs, must, NODES, ns, problem, run, setup } from './bench-local.mjs'
import { BIN, isolatedEnv, startEmulator } from './emulator-process.mjs'

const RUNS = Number(process.env.BENCH_WATCH_RUNS ?? 3)
/** USER_HZ, the unit of /proc/PID/stat's times: 100 on every Linux ipmove targets. */
const CLOCK_TICKS = 100
const LAN_IP = '192.0.2.50'
const OVH_IP = '203.0.113.10'
const [A, B, OBS] = NODES

/** One shielded environment for every local-provider daemon (each daemon has its own lock and cache directories). */
let sharedEnv
const lanEnv = () => {
  sharedEnv ??= isolatedEnv()
  return sharedEnv
}

/** The built daemon in a node's namespace; `line(re)` resolves with the first line matching. */
function daemon(node, config, env) {
  const dir = mkdtempSync(join(tmpdir(), 'ipmove-benchw-'))
  const path = join(dir, 'ipmove.conf')
  writeFileSync(path, config, { mode: 0o600 })
  const child = spawn(
    'ip',
    ['netns', 'exec', ns(node.name), process.execPath, BIN, 'watch', '--config', path],
    {
      env: { ...env, IPMOVE_LOCK_DIR: join(dir, 'run'), IPMOVE_CACHE_DIR: join(dir, 'cache') },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let out = ''
  const waiters = []
  const onData = (chunk) => {
    out += chunk
    for (const w of [...waiters]) {
      const found = out.split('\n').find((l) => w.re.test(l))
      if (found) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve(found)
      }
    }
  }
  child.stdout.on('data', onData)
  child.stderr.on('data', onData)
  const exited = new Promise((resolve) => child.on('close', resolve))
  return {
    // `ip netns exec` execs node in place: this is the daemon's own pid.
    pid: child.pid,
    lines: () => out.split('\n'),
    line(re, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${node.name}: no line ${re} in:\n${out}`)),
          timeoutMs,
        )
        waiters.push({
          re,
          resolve: (l) => {
            clearTimeout(timer)
            resolve(l)
          },
        })
        onData('')
      })
    },
    async stop() {
      child.kill('SIGKILL')
      await exited
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

function watchConfig(node, peer, ip, provider, extra) {
  return `${provider}
[ip.web]
ip = ${ip}
interface = eth0

[watch.web]
priority = ${node === A ? 150 : 100}
peer-priority = ${node === A ? 100 : 150}
${extra}

[watch.web.probe.peer]
check = peer
kind = icmp
target = ${peer.ipv4}
`
}

/** The client pings `ip` every 10 ms, timestamps from ping itself (-D). */
function clientPings(ip) {
  const child = spawn('ip', ['netns', 'exec', ns(OBS.name), 'ping', '-n', '-D', '-i', '0.01', ip], {
    stdio: ['ignore', 'pipe', 'ignore'],
  })
  const replies = []
  child.stdout.on('data', (chunk) => {
    for (const m of String(chunk).matchAll(/^\[(\d+\.\d+)\] \d+ bytes from/gm))
      replies.push(Number(m[1]) * 1000)
  })
  return {
    replies,
    /** The longest silence between two replies, counting only silences that end after `epochMs`. */
    gapAfter(epochMs) {
      let gap = 0
      for (let i = 1; i < replies.length; i++) {
        if (replies[i] > epochMs) gap = Math.max(gap, replies[i] - replies[i - 1])
      }
      return gap
    },
    stop: () => child.kill('SIGTERM'),
  }
}

async function resetLinks(ip) {
  await must(['ip', '-n', ns(A.name), 'link', 'set', 'eth0', 'up'])
  for (const n of [A, B]) await run(['ip', '-n', ns(n.name), 'addr', 'del', `${ip}/32`, 'dev', 'eth0'])
  await run(['ip', '-n', ns(OBS.name), 'neigh', 'flush', 'to', ip, 'dev', 'eth0'])
}

async function carries(node, ip) {
  const out = await must(['ip', '-n', ns(node.name), '-j', 'addr', 'show', 'dev', 'eth0'])
  return JSON.parse(out).some((link) => (link.addr_info ?? []).some((a) => a.local === ip))
}

async function until(what, check, timeoutMs) {
  const deadline = performance.now() + timeoutMs
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

/**
 * The failover pairs measured, each on LAN_IP with A preferred: `start()`
 * resolves once A carries the address and B is a ready backup, with a
 * `stop()` for both nodes.
 */
const PAIRS = {
  ipmove(extra) {
    return async () => {
      const env = lanEnv()
      const provider = 'provider = local\n'
      const da = daemon(A, watchConfig(A, B, LAN_IP, provider, extra), env)
      const db = daemon(B, watchConfig(B, A, LAN_IP, provider, extra), env)
      const stop = async () => {
        await da.stop()
        await db.stop()
      }
      try {
        await da.line(/\[web\] backup → master/)
        await db.line(/\[web\] peer check: up/)
      } catch (error) {
        await stop()
        throw error
      }
      return { stop }
    }
  },
  keepalived(advertS, vrrpVersion) {
    return async () => {
      const [ka, kb] = [A, B].map((node) =>
        startKeepalived(node, { address: LAN_IP, priority: node === A ? 150 : 100, advertS, vrrpVersion }),
      )
      const stop = async () => {
        await ka.stop()
        await kb.stop()
      }
      try {
        await until('keepalived to make A master', () => carries(A, LAN_IP), 15_000)
        // B has heard A's adverts for a while: a settled backup, as ipmove's B is once its peer check is up.
        await sleep(Math.max(1500, 3000 * advertS))
        if (await carries(B, LAN_IP)) throw new Error(`keepalived made both nodes master:\n${kb.log()}`)
      } catch (error) {
        await stop()
        throw error
      }
      return { stop }
    }
  },
}

/** One failover of `start`'s pair: A's link dies; the longest gap in the client's pings until B answers. */
async function lanGap(start) {
  await resetLinks(LAN_IP)
  const pair = await start()
  const pings = clientPings(LAN_IP)
  try {
    await sleep(500)
    if (pings.replies.length === 0) throw new Error('the client gets no replies from the master')
    const died = Date.now()
    await must(['ip', '-n', ns(A.name), 'link', 'set', 'eth0', 'down'])
    await until('B to carry the address', () => carries(B, LAN_IP), 15_000)
    const carried = Date.now()
    await until('the client’s pings to resume', async () => (pings.replies.at(-1) ?? 0) > carried, 5000)
    return pings.gapAfter(died)
  } finally {
    pings.stop()
    await pair.stop()
  }
}

/** One failover with the OVH emulator: link death → attach received (ms). */
async function ovhAttach() {
  await resetLinks(OVH_IP)
  let attachAt
  const emulator = await startEmulator(['--host', OBS.ipv4, '--pending-ms', '1', '--debug'], {
    netns: ns(OBS.name),
    onStderr: (text, at) => {
      if (attachAt === undefined && /POST \S+\/attach/.test(text)) attachAt = at
    },
  })
  const env = isolatedEnv(emulator.env)
  const ovh = (instance) => `provider = ovh\nproject = t18s\ninstance = ${instance}\n`
  const da = daemon(A, watchConfig(A, B, OVH_IP, ovh('bi-edge-sbg-1'), ''), env)
  const db = daemon(B, watchConfig(B, A, OVH_IP, ovh('bi-edge-sbg-2'), ''), env)
  try {
    await da.line(/\[web\] backup → master/)
    await db.line(/\[web\] peer check: up/)
    await sleep(300)
    const died = performance.now()
    await must(['ip', '-n', ns(A.name), 'link', 'set', 'eth0', 'down'])
    await db.line(/\[web\] backup → master/)
    if (attachAt === undefined) throw new Error('the emulator saw no attach')
    return attachAt - died
  } finally {
    await da.stop()
    await db.stop()
    emulator.stop()
  }
}

/** CPU seconds (user + system) of a process and its children (the long-lived ping), and its resident memory in MB. */
function usage(pid) {
  const cpu = (p) => {
    const fields = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
  }
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
    .trim()
    .split(/\s+/)
    .filter(Boolean)
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024
  return { cpu: [pid, ...children].reduce((sum, p) => sum + cpu(p), 0), rss }
}

/**
 * The backup daemon at rest with the defaults (peer echoes every 30 ms, link
 * every 50 ms), local provider: its CPU share of one core over `seconds`, and
 * its resident memory at the start and the end.
 */
async function idle(seconds) {
  await resetLinks(LAN_IP)
  const env = lanEnv()
  const provider = 'provider = local\n'
  const da = daemon(A, watchConfig(A, B, LAN_IP, provider, ''), env)
  const db = daemon(B, watchConfig(B, A, LAN_IP, provider, ''), env)
  try {
    await db.line(/\[web\] peer check: up/)
    await sleep(2000)
    const before = usage(db.pid)
    const started = performance.now()
    await sleep(seconds * 1000)
    const after = usage(db.pid)
    const wall = (performance.now() - started) / 1000
    return { share: (after.cpu - before.cpu) / wall, rssStart: before.rss, rssEnd: after.rss }
  } finally {
    await da.stop()
    await db.stop()
  }
}

/**
 * Opt-in (BENCH_WATCH_SOAK_S=600): both daemons with the defaults while 20 %
 * of the packets arriving at each node are dropped at random (nftables, in
 * the nodes' namespaces); counts the false failovers (B claiming from a live
 * A), the late-peer warnings, and the probes' echo packets dropped. No
 * jitter is added: that needs `tc qdisc … netem`, and this host's kernel has
 * no queueing disciplines at all ("Specified qdisc kind is unknown"), so
 * jitter is covered only by the seeded simulation in test/health.test.ts.
 */
async function soak(seconds) {
  await resetLinks(LAN_IP)
  // Echo packets (the ICMP probes' requests and replies) are counted before and after the random drop.
  const echo = 'icmp type { echo-request, echo-reply }'
  const rules = join(mkdtempSync(join(tmpdir(), 'ipmove-benchloss-')), 'loss.nft')
  writeFileSync(
    rules,
    `table inet benchloss {\n  chain in {\n    type filter hook input priority 0;\n` +
      `    ${echo} counter\n    numgen random mod 5 == 0 drop\n    ${echo} counter\n  }\n}\n`,
  )
  for (const n of [A, B]) {
    await must(['ip', '-n', ns(n.name), 'link', 'set', 'eth0', 'up'])
    await must(inNs(n.name, ['nft', '-f', rules]))
  }
  /** Echo packets that arrived at both nodes, and how many of them were dropped. */
  const echoes = async () => {
    let arrived = 0
    let passed = 0
    for (const n of [A, B]) {
      const listed = await must(inNs(n.name, ['nft', 'list', 'table', 'inet', 'benchloss']))
      const [before, after] = [...listed.matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]))
      arrived += before
      passed += after
    }
    return { arrived, dropped: arrived - passed }
  }
  const env = lanEnv()
  const provider = 'provider = local\n'
  const da = daemon(A, watchConfig(A, B, LAN_IP, provider, ''), env)
  const db = daemon(B, watchConfig(B, A, LAN_IP, provider, ''), env)
  try {
    await da.line(/\[web\] backup → master/)
    await db.line(/\[web\] peer check: up/)
    const start = await echoes()
    await sleep(seconds * 1000)
    const end = await echoes()
    const count = (d, re) => d.lines().filter((l) => re.test(l)).length
    return {
      echoes: end.arrived - start.arrived,
      echoesDropped: end.dropped - start.dropped,
      falseFailovers: count(db, /\[web\] backup → master/),
      peerDown: count(db, /\[web\] peer check: down/) + count(da, /\[web\] peer check: down/),
      late: count(db, /peer probe .*: late/) + count(da, /peer probe .*: late/),
    }
  } finally {
    await da.stop()
    await db.stop()
    for (const n of [A, B]) await run(inNs(n.name, ['nft', 'delete', 'table', 'inet', 'benchloss']))
    rmSync(dirname(rules), { recursive: true, force: true })
  }
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

async function samples(fn) {
  const values = []
  for (let i = 0; i < RUNS; i++) values.push(await fn())
  return values
}

/** Each comparison: ipmove watch with timings against keepalived's nearest setting, in the same rig. */
const COMPARISONS = {
  defaults: {
    targetMs: 1000,
    ipmove: { label: 'ipmove watch, defaults', start: PAIRS.ipmove('') },
    keepalived: { label: 'keepalived, advert_int 1 (VRRPv2, its default)', start: PAIRS.keepalived(1, 2) },
  },
  fast: {
    targetMs: 250,
    // The fast profile, and the local provider's link probe shortened to match (it runs in the claim).
    ipmove: {
      label: 'ipmove watch, profile = fast',
      start: PAIRS.ipmove('profile = fast\n\n[local]\nprobe-timeout = 0.02'),
    },
    keepalived: { label: 'keepalived, VRRPv3 advert_int 0.1', start: PAIRS.keepalived(0.1, 3) },
  },
}

/**
 * ipmove and keepalived failovers, rounds interleaved so that a slow moment
 * of the machine weighs on both alike. The rig must be set up.
 */
async function compare(name) {
  const { ipmove, keepalived, targetMs } = COMPARISONS[name]
  const skipped = await keepalivedProblem()
  const gaps = { ipmove: [], keepalived: [] }
  for (let i = 0; i < RUNS; i++) {
    gaps.ipmove.push(await lanGap(ipmove.start))
    if (!skipped) gaps.keepalived.push(await lanGap(keepalived.start))
  }
  const figure = (label, values) => ({
    label,
    medianMs: Math.round(median(values)),
    samplesMs: values.map(Math.round),
  })
  const result = { name, targetMs, ipmove: figure(ipmove.label, gaps.ipmove) }
  if (skipped) result.keepalivedSkipped = skipped
  else {
    result.keepalived = { ...figure(keepalived.label, gaps.keepalived), version: await keepalivedVersion() }
    result.ratio = Number((result.keepalived.medianMs / result.ipmove.medianMs).toFixed(2))
  }
  return result
}

function showComparison(r) {
  const show = (f) => `${f.label} ${f.medianMs} ms (${f.samplesMs.join(', ')})`
  const other = r.keepalived
    ? `${show(r.keepalived)} [${r.keepalived.version}]; keepalived/ipmove ${r.ratio}x`
    : `keepalived: skipped (${r.keepalivedSkipped})`
  return (
    `LAN failover, ${r.name}: client ping gap after A's link dies, median of ${RUNS}: ` +
    `${show(r.ipmove)} (target <= ${r.targetMs} ms); ${other}`
  )
}

/** The rig for the duration of `fn`, or a skip message. */
async function withRig(what, fn) {
  const why = await problem()
  if (why) {
    console.log(`${what}: skipped (${why})`)
    return
  }
  try {
    await setup()
    await fn()
  } finally {
    destroy()
  }
}

/** `npm run bench:failover`: the comparisons alone, as lines or (--json) one JSON object. */
export async function benchFailover(names = Object.keys(COMPARISONS), json = false) {
  await withRig('ipmove watch vs keepalived', async () => {
    const results = []
    for (const name of names) {
      results.push(await compare(name))
      if (!json) console.log(showComparison(results.at(-1)))
    }
    if (json) console.log(JSON.stringify({ runs: RUNS, comparisons: results }))
  })
}

export async function benchWatch() {
  await withRig('ipmove watch failover', async () => {
    await must(inNs(OBS.name, ['ip', 'route', 'add', `${OVH_IP}/32`, 'dev', 'eth0']))
    for (const name of Object.keys(COMPARISONS)) console.log(showComparison(await compare(name)))
    const show = (values) =>
      `median ${median(values).toFixed(0)} ms of ${values.map((v) => v.toFixed(0)).join(', ')}`
    const attach = await samples(ovhAttach)
    console.log(
      `ipmove watch, OVH emulator: link death → attach received ${show(attach)} (target <= 700 + 200 ms)`,
    )
    const rest = await idle(10)
    console.log(
      `ipmove watch at rest, defaults: ${(rest.share * 100).toFixed(1)} % of one core (daemon and its ping), ` +
        `resident memory ${rest.rssStart.toFixed(0)} → ${rest.rssEnd.toFixed(0)} MB over 10 s (target <= 70 MB)`,
    )
    const soakSeconds = Number(process.env.BENCH_WATCH_SOAK_S ?? 0)
    if (soakSeconds > 0) {
      const r = await soak(soakSeconds)
      console.log(
        `ipmove watch, ${soakSeconds} s with 20 % of packets dropped into each node: ${r.falseFailovers} false failovers, ` +
          `${r.peerDown} peer declared dead, ${r.late} late-peer warnings; ${r.echoesDropped} of ${r.echoes} echo ` +
          `requests and replies dropped (${((100 * r.echoesDropped) / r.echoes).toFixed(1)} %), both daemons' probes (target: 0 false failovers)`,
      )
    } else {
      console.log('ipmove watch soak under packet loss: skipped (set BENCH_WATCH_SOAK_S=600 to run it)')
    }
  })
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [what, ...rest] = process.argv.slice(2)
  if (what === 'failover') {
    const names = rest.filter((a) => a !== '--json')
    const unknown = names.filter((n) => !(n in COMPARISONS))
    if (unknown.length > 0) {
      console.error(
        `bench-watch: unknown comparison ${unknown.join(', ')} (${Object.keys(COMPARISONS).join(', ')})`,
      )
      process.exit(2)
    }
    await benchFailover(names.length > 0 ? names : undefined, rest.includes('--json'))
  } else await benchWatch()
}
