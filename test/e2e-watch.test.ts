/**
 * `ipmove watch` end to end on the real kernel: two nodes (A, B) and a client
 * (obs) on a bridge, the OVH emulator in the client's namespace on the LAN
 * address, so both nodes reach it. Each node runs the built CLI's daemon in
 * its namespace; tests break links, isolate bridge ports and drop packets,
 * and read what the daemons log, what the emulator saw, and what the kernel
 * carries. Run `npm run build` first (`npm test` does).
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest'
import { ipmoveArgv, requireBuild } from './helpers/cli.js'
import { type NamespacedEmulator, startNamespacedEmulator } from './rig/emulator.js'
import { createRig, describeRoot, exec, type Rig, type RigNode, waitFor } from './rig/netns.js'
import { dropIn, ping } from './rig/observe.js'

const IP = '203.0.113.10'
const INSTANCE = { a: 'bi-edge-sbg-1', b: 'bi-edge-sbg-2' } as const

interface Daemon {
  node: RigNode
  config: string
  /** stdout and stderr lines so far. */
  lines(): string[]
  waitFor(pattern: RegExp, ms?: number): Promise<string>
  /** Send a signal; resolves with the exit code once the daemon exited (for SIGTERM). */
  signal(signal: NodeJS.Signals): void
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

describeRoot('ipmove watch end to end, two nodes, a client and the OVH emulator', () => {
  let rig: Rig
  let dir: string
  let emulator: NamespacedEmulator | undefined
  const daemons: Daemon[] = []

  beforeAll(async () => {
    requireBuild()
    rig = await createRig('wat')
    dir = mkdtempSync(join(tmpdir(), 'ipmove-wat-'))
    chmodSync(dir, 0o755)
    // The failover IP is outside the LAN's subnet, as on OVH: the client reaches it on-link.
    const route = await rig.run(rig.obs, ['ip', 'route', 'add', `${IP}/32`, 'dev', 'eth0'])
    expect(route.code, route.stderr).toBe(0)
  })
  afterEach(async () => {
    for (const d of daemons.splice(0)) await d.stop('SIGKILL')
    await emulator?.stop()
    emulator = undefined
    for (const node of [rig.a, rig.b]) {
      await exec(['ip', '-n', node.ns, 'link', 'set', 'eth0', 'up'])
      await exec(['ip', '-n', node.ns, 'addr', 'del', `${IP}/32`, 'dev', 'eth0'])
      await exec([
        'ip',
        '-n',
        rig.bridgeNs,
        'link',
        'set',
        `p-${node.name}`,
        'type',
        'bridge_slave',
        'isolated',
        'off',
      ])
    }
  })
  afterAll(async () => {
    await rig?.destroy()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  /** The emulator on the client's LAN address, the IP on A. */
  async function emulate(): Promise<NamespacedEmulator> {
    emulator = await startNamespacedEmulator(rig.obs, dir, ['--host', rig.obs.ipv4])
    return emulator
  }

  function ovhConfig(node: 'a' | 'b', watch: string, probes = ''): string {
    const peer = node === 'a' ? rig.b : rig.a
    return `[ip.web]
ip = ${IP}
provider = ovh
project = t18s
instance = ${INSTANCE[node]}
interface = eth0

[watch.web]
api-interval = 1
dwell = 1
preempt-delay = 1
peer-initdead = 1
self-initdead = 3
self-deadtime = 1
${watch}

[watch.web.probe.peer]
check = peer
kind = icmp
target = ${peer.ipv4}

[watch.web.probe.upstream]
check = self
kind = icmp
target = ${rig.obs.ipv4}

[watch.web.probe.link]
check = self
kind = link
${probes}`
  }

  function writeConfig(name: string, text: string): string {
    const path = join(dir, name)
    writeFileSync(path, text, { mode: 0o600 })
    return path
  }

  function daemon(node: RigNode, config: string, flags: string[] = []): Daemon {
    const path = writeConfig(`${node.name}.conf`, config)
    const env = {
      ...emulator?.env,
      IPMOVE_CACHE_DIR: join(dir, `cache-${node.name}`),
      // Each node's own control socket: the namespaces share one file system.
      IPMOVE_LOCK_DIR: join(dir, `run-${node.name}`),
    }
    const child: ChildProcessWithoutNullStreams = spawn(
      'ip',
      ['netns', 'exec', node.ns, ...ipmoveArgv(['watch', '--config', path, ...flags])],
      { env: { ...process.env, ...env } },
    )
    let out = ''
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString()
    })
    child.stderr.on('data', (c: Buffer) => {
      out += c.toString()
    })
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)))
    const d: Daemon = {
      node,
      config: path,
      lines: () => out.split('\n').filter(Boolean),
      waitFor: (pattern, ms = 10_000) =>
        waitFor(
          `${node.name} to log ${pattern} (so far:\n${out})`,
          async () => d.lines().find((l) => pattern.test(l)),
          ms,
          20,
        ),
      signal: (signal) => child.kill(signal),
      stop: async (signal = 'SIGTERM') => {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal)
        return exited
      },
    }
    daemons.push(d)
    return d
  }

  /**
   * Which node the client's pings reach: they must all be answered, and the
   * client's neighbour entry for the IP names the MAC (echo counters would
   * count the daemons' own probes too).
   */
  async function answeredBy(): Promise<string> {
    const run = await ping(rig, rig.obs, IP, 3)
    expect(run.code, run.stdout).toBe(0)
    const mac = (await rig.neigh(rig.obs, IP))?.lladdr
    return [rig.a, rig.b].find((n) => n.mac === mac)?.name ?? `unknown MAC ${mac}`
  }

  const carries = async (node: RigNode) => (await rig.address(node, IP)) !== undefined
  const attaches = () => emulator!.requests().filter((l) => /POST \S+\/attach -> 200/.test(l)).length

  async function holder(): Promise<string> {
    const run = await rig.run(rig.obs, ipmoveArgv(['status', '--project', 't18s', '--ip', IP, '--json']), {
      env: {
        ...emulator!.env,
        IPMOVE_CACHE_DIR: join(dir, 'cache-obs'),
        IPMOVE_CONFIG: writeConfig('obs.conf', ''),
      },
    })
    expect(run.code, run.stderr).toBe(0)
    return (JSON.parse(run.stdout).holder as { name: string }).name
  }

  /**
   * An operator (or a stray hook) moves the IP at the API from the client's node, behind the daemons' back;
   * without waiting for the move to settle, since a daemon may rightly move it back before.
   */
  async function operatorMove(instance: string): Promise<void> {
    const move = await rig.run(
      rig.obs,
      ipmoveArgv(['move', '--project', 't18s', '--ip', IP, '--instance', instance, '--no-wait']),
      {
        env: {
          ...emulator!.env,
          IPMOVE_CACHE_DIR: join(dir, 'cache-obs'),
          IPMOVE_CONFIG: writeConfig('obs.conf', ''),
        },
      },
    )
    expect(move.code, move.stderr).toBe(0)
  }

  /** A master on A (it holds the IP in the emulator's fixture) and a backup on B. */
  async function pair(a: string, b: string) {
    await emulate()
    const da = daemon(rig.a, ovhConfig('a', a))
    const db = daemon(rig.b, ovhConfig('b', b))
    await da.waitFor(/\[web\] backup → master/)
    await db.waitFor(/\[web\] peer check: up/)
    await waitFor('A to carry the IP', async () => ((await carries(rig.a)) ? true : undefined), 5000)
    return { da, db }
  }

  it("master's link dies → B claims, the API and the alias follow, the client's pings resume; A takes it back (preempt)", async () => {
    const { da, db } = await pair('priority = 150\npeer-priority = 100\npreempt = yes', 'peer-priority = 150')
    expect(await answeredBy()).toBe('a')

    const died = Date.now()
    await exec(['ip', '-n', rig.a.ns, 'link', 'set', 'eth0', 'down'])
    await db.waitFor(/\[web\] backup → master/)
    const tookMs = Date.now() - died
    expect(attaches()).toBe(1)
    expect(await holder()).toBe(INSTANCE.b)
    expect(await carries(rig.b)).toBe(true)
    expect(await answeredBy()).toBe('b')
    // Peer deadtime 0.7 s, then the API (300 ms pending in the emulator) and the alias.
    expect(tookMs).toBeLessThan(4000)
    // `ipmove status --watch` on B reads the daemon's control socket: role, holder, the takeover's timeline.
    const status = await rig.run(rig.b, ipmoveArgv(['status', '--watch', '--json']), {
      env: { IPMOVE_LOCK_DIR: join(dir, 'run-b') },
    })
    expect(status.code, status.stderr).toBe(0)
    const [web] = JSON.parse(status.stdout).watch.ips
    expect(web).toMatchObject({
      name: 'web',
      role: 'master',
      carried: true,
      holder: { name: INSTANCE.b, isSelf: true },
    })
    const timeline = web.transitions.at(-1).timeline
    for (const step of [
      'peerDeclaredDead',
      'decision',
      'apiAccepted',
      'apiDone',
      'aliasAdded',
      'announced',
    ]) {
      expect(timeline[step], step).toBeTypeOf('number')
    }
    await da.waitFor(/\[web\] master → fault/)
    await waitFor('A to drop the IP', async () => ((await carries(rig.a)) ? undefined : true), 5000)

    // A returns; after its preempt delay of good health it takes the IP back, and B steps down.
    await exec(['ip', '-n', rig.a.ns, 'link', 'set', 'eth0', 'up'])
    await da.waitFor(/\[web\] fault → backup/, 20_000)
    await da.waitFor(/preempt: this node has the higher priority/, 15_000)
    await db.waitFor(/\[web\] master → backup/)
    await waitFor('B to drop the IP', async () => ((await carries(rig.b)) ? undefined : true), 5000)
    expect(await holder()).toBe(INSTANCE.a)
    expect(await carries(rig.a)).toBe(true)
    expect(attaches()).toBe(2)
  })

  it('with preempt off, the returning master leaves the IP where it is', async () => {
    const { da, db } = await pair('priority = 150\npeer-priority = 100\npreempt = no', 'peer-priority = 150')
    await exec(['ip', '-n', rig.a.ns, 'link', 'set', 'eth0', 'down'])
    await db.waitFor(/\[web\] backup → master/)
    await exec(['ip', '-n', rig.a.ns, 'link', 'set', 'eth0', 'up'])
    await da.waitFor(/\[web\] fault → backup/, 20_000)
    await new Promise((r) => setTimeout(r, 3000))
    expect(await holder()).toBe(INSTANCE.b)
    expect(attaches()).toBe(1)
    expect([await carries(rig.a), await carries(rig.b)]).toEqual([false, true])
  })

  it('a partition between the peers only moves the IP at most once, and it ends on exactly one node', async () => {
    const { da, db } = await pair('', '')
    for (const port of ['p-a', 'p-b']) {
      const r = await exec([
        'ip',
        'netns',
        'exec',
        rig.bridgeNs,
        'bridge',
        'link',
        'set',
        'dev',
        port,
        'isolated',
        'on',
      ])
      expect(r.code, r.stderr).toBe(0)
    }
    await db.waitFor(/\[web\] peer check: down/)
    await da.waitFor(/\[web\] peer check: down/)
    // Several API reads (every second) on both sides.
    await new Promise((r) => setTimeout(r, 5000))
    expect(attaches()).toBeLessThanOrEqual(1)
    const carried = [await carries(rig.a), await carries(rig.b)]
    expect(carried.filter(Boolean)).toHaveLength(1)
    expect(await holder()).toBe(carried[0] ? INSTANCE.a : INSTANCE.b)
  })

  it('own upstream witness fails → fault, the alias dropped', async () => {
    const { da } = await pair('', '')
    const undo = await dropIn(rig, rig.a, ['ip', 'saddr', rig.obs.ipv4, 'icmp', 'type', 'echo-reply'])
    try {
      await da.waitFor(/\[web\] master → fault: own health check failed/)
      await waitFor('A to drop the IP', async () => ((await carries(rig.a)) ? undefined : true), 5000)
    } finally {
      await undo()
    }
    await da.waitFor(/\[web\] fault → backup/, 20_000)
  })

  it('the API moved to the live peer behind the daemons’ back: A yields, B takes the role', async () => {
    const { da, db } = await pair('', '')
    await operatorMove(INSTANCE.b)
    await da.waitFor(/\[web\] master → backup: the API routes the IP elsewhere/)
    await db.waitFor(/\[web\] backup → master/)
    await waitFor(
      'B alone to carry the IP',
      async () => ((await carries(rig.b)) && !(await carries(rig.a)) ? true : undefined),
      5000,
    )
  })

  it('the address removed by hand from the master: put back at the next API read, the API untouched', async () => {
    const { da } = await pair('', '')
    const removed = await exec(['ip', '-n', rig.a.ns, 'addr', 'del', `${IP}/32`, 'dev', 'eth0'])
    expect(removed.code, removed.stderr).toBe(0)
    await da.waitFor(/claiming 203\.0\.113\.10\/32: the API routes the IP here, but the address is missing/)
    await waitFor('A to carry the IP again', async () => ((await carries(rig.a)) ? true : undefined), 5000)
    expect(await answeredBy()).toBe('a')
    expect(attaches()).toBe(0)
    expect(da.lines().some((l) => l.includes('master → '))).toBe(false)
  })

  it('the API moved back to the dead old master by an operator: the new master re-asserts, once', async () => {
    const { db } = await pair('', '')
    await exec(['ip', '-n', rig.a.ns, 'link', 'set', 'eth0', 'down'])
    await db.waitFor(/\[web\] backup → master/)
    expect(attaches()).toBe(1)
    // A stale hook, or an operator, routes the IP to A, whose link is still down.
    await operatorMove(INSTANCE.a)
    await db.waitFor(/the API routes the IP elsewhere while the peer is dead: re-asserting/)
    await waitFor(
      'the API to route the IP to B again',
      async () => ((await holder()) === INSTANCE.b ? true : undefined),
      10_000,
      200,
    )
    expect(await carries(rig.b)).toBe(true)
    expect(await answeredBy()).toBe('b')
    // B's takeover, the operator's move, B's re-assertion; then it stays.
    await new Promise((r) => setTimeout(r, 2500))
    expect(attaches()).toBe(3)
    expect(db.lines().filter((l) => l.includes('master → backup'))).toEqual([])
  })

  it('the API down: policy release drops the address, and nobody claims it without the API', async () => {
    const { da, db } = await pair('api-unreachable = release', 'api-unreachable = release')
    await emulator!.stop()
    emulator = undefined
    await da.waitFor(/\[web\] master → backup: the API is unreachable \(.*\); policy release/)
    await waitFor('A to drop the IP', async () => ((await carries(rig.a)) ? undefined : true), 5000)
    await db.waitFor(/cannot read the API/)
    await new Promise((r) => setTimeout(r, 1500))
    expect([await carries(rig.a), await carries(rig.b)]).toEqual([false, false])
    expect(db.lines().some((l) => l.includes('backup → master'))).toBe(false)
  })

  it('the API down: policy hold keeps the address and claims nothing', async () => {
    const { da } = await pair('', '')
    await emulator!.stop()
    emulator = undefined
    await da.waitFor(/cannot read the API/)
    await new Promise((r) => setTimeout(r, 1500))
    expect(await carries(rig.a)).toBe(true)
    expect(da.lines().some((l) => l.includes('master → '))).toBe(false)
  })

  it('SIGHUP with a changed probe restarts the checks without dropping the address; SIGTERM keeps it, --release-on-stop drops it', async () => {
    await emulate()
    const monitor = spawn('ip', ['netns', 'exec', rig.a.ns, 'ip', '-o', 'monitor', 'address'])
    let events = ''
    monitor.stdout.on('data', (c: Buffer) => {
      events += c.toString()
    })
    try {
      const da = daemon(rig.a, ovhConfig('a', ''))
      await da.waitFor(/\[web\] backup → master/)
      // The address goes on after the role line: reload only once it is there, or a reload may cut the claim short.
      await waitFor('A to carry the IP', async () => ((await carries(rig.a)) ? true : undefined), 5000)
      writeConfig(
        'a.conf',
        ovhConfig('a', '', `\n[watch.web.probe.peer6]\ncheck = peer\nkind = icmp\ntarget = ${rig.b.ipv6}\n`),
      )
      da.signal('SIGHUP')
      await da.waitFor(/reloaded: restarted web/)
      await da.waitFor(/\[web\] peer check: up/)
      expect(await carries(rig.a)).toBe(true)
      expect(await da.stop('SIGTERM')).toBe(0)
      expect(await carries(rig.a)).toBe(true)
      expect(events.split('\n').filter((l) => l.startsWith('Deleted') && l.includes(IP))).toEqual([])

      const again = daemon(rig.a, ovhConfig('a', ''), ['--release-on-stop'])
      await again.waitFor(/\[web\] backup → master/)
      expect(await again.stop('SIGTERM')).toBe(0)
      expect(await carries(rig.a)).toBe(false)
    } finally {
      monitor.kill()
    }
  })

  it('SIGHUP with a changed metrics address moves the Prometheus endpoint', async () => {
    await emulate()
    const withMetrics = (port: number) => `[watch]\nmetrics = 127.0.0.1:${port}\n\n${ovhConfig('a', '')}`
    /** A scrape from A's namespace, where the daemon's loopback is: the role lines, or undefined when nothing answers. */
    const scrape = async (port: number) => {
      const run = await rig.run(rig.a, [
        process.execPath,
        '-e',
        `fetch('http://127.0.0.1:${port}/metrics').then((r) => r.text()).then((t) => process.stdout.write(t), () => process.exit(1))`,
      ])
      return run.code === 0
        ? run.stdout.split('\n').filter((l) => l.startsWith('ipmove_watch_role{'))
        : undefined
    }
    const da = daemon(rig.a, withMetrics(9479))
    await da.waitFor(/\[web\] backup → master/)
    expect(await scrape(9479)).toContain(
      'ipmove_watch_role{ip="web",address="203.0.113.10/32",role="master"} 1',
    )
    writeConfig('a.conf', withMetrics(9480))
    da.signal('SIGHUP')
    await da.waitFor(/metrics: now served on 127\.0\.0\.1:9480/)
    expect(await scrape(9479)).toBeUndefined()
    expect(await scrape(9480)).toContain(
      'ipmove_watch_role{ip="web",address="203.0.113.10/32",role="master"} 1',
    )
    expect(da.lines()).toContain('reloaded: kept web')
  })

  it('a config with errors starts nothing and names the line', async () => {
    await emulate()
    const bad = ovhConfig('a', 'priority = high')
    const d = daemon(rig.a, bad)
    expect(await d.stop('SIGCONT')).toBe(2)
    const line = bad.split('\n').indexOf('priority = high') + 1
    expect(d.lines()).toContain(
      `ipmove: error: ${d.config}:${line}: [watch.web] priority: expected a whole number from 1 to 255, got "high"`,
    )
    expect(emulator!.requests()).toEqual([])
    expect(await carries(rig.a)).toBe(false)
    const check = await rig.run(
      rig.a,
      ipmoveArgv(['watch', '--check', '--config', writeConfig('ok.conf', ovhConfig('a', ''))]),
    )
    expect(check.code, check.stderr).toBe(0)
    expect(check.stdout).toContain('web: 203.0.113.10/32 with ovh, 3 probes, 0 actions: valid')
  })

  it('LAN only, the local provider: the higher priority claims at start, the backup takes over when its link dies', async () => {
    const local = (node: 'a' | 'b') => {
      const peer = node === 'a' ? rig.b : rig.a
      return `[ip.web]
ip = ${IP}
provider = local
interface = eth0

[watch.web]
priority = ${node === 'a' ? 150 : 100}
peer-priority = ${node === 'a' ? 100 : 150}
api-interval = 1
peer-initdead = 1
self-initdead = 3

[watch.web.probe.peer]
check = peer
kind = icmp
target = ${peer.ipv4}
`
    }
    const da = daemon(rig.a, local('a'))
    const db = daemon(rig.b, local('b'))
    await da.waitFor(/\[web\] backup → master/)
    await db.waitFor(/\[web\] peer check: up/)
    expect(await answeredBy()).toBe('a')
    await exec(['ip', '-n', rig.a.ns, 'link', 'set', 'eth0', 'down'])
    await db.waitFor(/\[web\] backup → master/)
    expect(await answeredBy()).toBe('b')
    await da.waitFor(/\[web\] master → fault/)
  })
})
