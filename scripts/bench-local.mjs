// `npm run bench`, the LAN part: how long after `ipmove --provider local` starts
// does an observer's neighbour entry for the address carry the new MAC, against
// the seeds' way (`ip addr add`, then `arping -U -c 1`) in the same run and rig.
// The rig is throw-away network namespaces (a bridge, nodes a and b, an
// observer) on documentation addresses, removed whatever happens. Needs root,
// iproute2 and iputils' arping; skips with a message otherwise.
// Run alone with `node scripts/bench-local.mjs` (after `npm run build`).
import { execFile, spawn, spawnSync } from 'node:child_process'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { pathToFileURL } from 'node:url'
import { BIN, isolatedEnv } from './emulator-process.mjs'

const RUNS = Number(process.env.BENCH_LOCAL_RUNS ?? 5)
const ADDRESS = '192.0.2.50'
const PREFIX = `ipm-${process.pid}-bench`
export const NODES = [
  { name: 'a', mac: '02:00:00:00:00:0a', ipv4: '192.0.2.10' },
  { name: 'b', mac: '02:00:00:00:00:0b', ipv4: '192.0.2.11' },
  { name: 'obs', mac: '02:00:00:00:00:0c', ipv4: '192.0.2.12' },
]
export const ns = (name) => `${PREFIX}-${name}`

export function run(argv) {
  return new Promise((resolve) => {
    execFile(argv[0], argv.slice(1), { env: { ...process.env, LC_ALL: 'C' } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr })
    })
  })
}

export async function must(argv) {
  const result = await run(argv)
  if (result.code !== 0) throw new Error(`${argv.join(' ')} failed: ${result.stderr.trim()}`)
  return result.stdout
}

export function inNs(name, argv) {
  return ['ip', 'netns', 'exec', ns(name), ...argv]
}

/** Why the bench cannot run here, or undefined. */
export async function problem() {
  if (process.platform !== 'linux') return `needs Linux network namespaces (this is ${process.platform})`
  if (process.getuid?.() !== 0) return 'needs root (network namespaces): run `sudo npm run bench`'
  const arping = await run(['arping', '-V']).catch(() => undefined)
  if (!/iputils/.test(`${arping?.stdout}${arping?.stderr}`)) return "the seeds' way needs iputils' arping"
  return undefined
}

const made = []
/** Delete the namespaces, ending first whatever still runs in them (after a signal: daemons, pings). */
export function destroy() {
  for (const name of made.splice(0)) {
    const pids = spawnSync('ip', ['netns', 'pids', ns(name)], { encoding: 'utf8' }).stdout ?? ''
    for (const pid of pids.split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL')
      } catch {
        // Gone meanwhile.
      }
    }
    spawnSync('ip', ['netns', 'del', ns(name)])
  }
}

export async function setup() {
  process.once('exit', destroy)
  // 'exit' does not run on a signal: delete the namespaces, then die of that signal as before.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(signal, () => {
      destroy()
      process.kill(process.pid, signal)
    })
  }
  for (const name of ['br', ...NODES.map((n) => n.name)]) {
    await must(['ip', 'netns', 'add', ns(name)])
    made.push(name)
  }
  await must(['ip', '-n', ns('br'), 'link', 'add', 'br0', 'type', 'bridge'])
  for (const n of NODES) {
    await must([
      'ip',
      '-n',
      ns('br'),
      'link',
      'add',
      `p-${n.name}`,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      ns(n.name),
    ])
    await must(['ip', '-n', ns('br'), 'link', 'set', `p-${n.name}`, 'master', 'br0', 'up'])
    await must(['ip', '-n', ns(n.name), 'link', 'set', 'eth0', 'address', n.mac])
    await must(['ip', '-n', ns(n.name), 'addr', 'add', `${n.ipv4}/24`, 'dev', 'eth0'])
    await must(['ip', '-n', ns(n.name), 'link', 'set', 'lo', 'up'])
    await must(['ip', '-n', ns(n.name), 'link', 'set', 'eth0', 'up'])
  }
  await must(['ip', '-n', ns('br'), 'link', 'set', 'br0', 'up'])
}

/**
 * The observer's neighbour events, as the kernel reports them (`ip monitor
 * neigh`), so a flip is timed when it happens rather than when a poll sees it.
 */
function watchObserver() {
  const child = spawn('ip', ['-n', ns('obs'), 'monitor', 'neigh'], { stdio: ['ignore', 'pipe', 'ignore'] })
  let waiter
  let buffer = ''
  child.stdout.on('data', (chunk) => {
    const at = performance.now()
    buffer += chunk
    const lines = buffer.split('\n')
    buffer = lines.pop()
    for (const line of lines) {
      if (waiter && line.startsWith(`${ADDRESS} dev eth0 lladdr ${waiter.mac} `)) {
        waiter.resolve(at)
        waiter = undefined
      }
    }
  })
  return {
    /** When the entry first carries `mac`, from now on. */
    flip(mac, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`the observer's entry never flipped to ${mac}`)),
          timeoutMs,
        )
        waiter = {
          mac,
          resolve: (at) => {
            clearTimeout(timer)
            resolve(at)
          },
        }
      })
    },
    stop: () => child.kill('SIGTERM'),
  }
}

/**
 * A carried the address and the observer learnt A's MAC for it; then A died
 * (the address is gone from it) or, with `aAlive`, still answers.
 */
async function reset(aAlive) {
  await run(['ip', '-n', ns('b'), 'addr', 'del', `${ADDRESS}/32`, 'dev', 'eth0'])
  await run(['ip', '-n', ns('a'), 'addr', 'add', `${ADDRESS}/32`, 'dev', 'eth0'])
  await run(['ip', '-n', ns('obs'), 'neigh', 'flush', 'to', ADDRESS, 'dev', 'eth0'])
  await must(inNs('obs', ['ping', '-c', '1', '-W', '1', ADDRESS]))
  const entry = JSON.parse(
    await must(['ip', '-n', ns('obs'), '-j', 'neigh', 'show', ADDRESS, 'dev', 'eth0']),
  )[0]
  if (entry?.lladdr !== NODES[0].mac)
    throw new Error(`the observer did not learn A's MAC: ${JSON.stringify(entry)}`)
  if (!aAlive) await must(['ip', '-n', ns('a'), 'addr', 'del', `${ADDRESS}/32`, 'dev', 'eth0'])
}

const WAYS = {
  /** The built CLI as a hook runs it (the default command is move). */
  async ipmove(env) {
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns('b'),
        process.execPath,
        BIN,
        '--provider',
        'local',
        '--ip',
        ADDRESS,
        '--interface',
        'eth0',
      ],
      { env, stdio: ['ignore', 'ignore', 'pipe'] },
    )
    let stderr = ''
    child.stderr.on('data', (chunk) => {
      stderr += chunk
    })
    return new Promise((resolve, reject) => {
      child.on('close', (code) => {
        // A warning that A still answers is expected; anything else is a failed run.
        if (code !== 0) reject(new Error(`ipmove exited ${code}: ${stderr.trim()}`))
        else resolve()
      })
    })
  },
  /** The seeds' hook: two commands, one after the other. */
  async seeds() {
    await must(inNs('b', ['ip', 'addr', 'add', `${ADDRESS}/32`, 'dev', 'eth0']))
    await must(inNs('b', ['arping', '-U', '-c', '1', '-I', 'eth0', ADDRESS]))
  },
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

/** Milliseconds from starting a way until the observer's entry carries B's MAC; the way then runs to its end. */
async function measure(watcher, way, env, aAlive) {
  await reset(aAlive)
  const flipped = watcher.flip(NODES[1].mac)
  const started = performance.now()
  const done = WAYS[way](env)
  const at = await flipped
  await done
  return at - started
}

export async function benchLocal() {
  const why = await problem()
  if (why) {
    console.log(`ipmove --provider local vs ip addr add + arping: skipped (${why})`)
    return
  }
  const env = isolatedEnv()
  const watcher = { stop() {} }
  try {
    await setup()
    Object.assign(watcher, watchObserver())
    await sleep(100) // let the monitor subscribe
    await measure(watcher, 'ipmove', env, false) // warm the file and compile caches
    const figures = {}
    for (const aAlive of [false, true]) {
      const samples = { ipmove: [], seeds: [] }
      for (let i = 0; i < RUNS; i++) {
        // Alternate, so a slow moment of the machine weighs on both ways alike.
        for (const way of ['seeds', 'ipmove']) samples[way].push(await measure(watcher, way, env, aAlive))
      }
      figures[aAlive ? 'alive' : 'dead'] = { ipmove: median(samples.ipmove), seeds: median(samples.seeds) }
    }
    for (const [state, { ipmove, seeds }] of Object.entries(figures)) {
      const what = state === 'dead' ? 'old holder gone (probe waits it out)' : 'old holder still answers'
      console.log(
        `LAN claim, ${what}: ipmove --provider local ${ipmove.toFixed(1)} ms, ip addr add + arping -U ` +
          `${seeds.toFixed(1)} ms, ratio ${(ipmove / seeds).toFixed(1)}x (start to the observer's entry flipping, median of ${RUNS})`,
      )
    }
  } finally {
    watcher.stop()
    destroy()
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await benchLocal()
