/**
 * `ipmove watch` with `source = etcd`, end to end: three nodes running the
 * built CLI's daemon, a real three-member etcd (test/rig/etcd.ts), the OVH
 * emulator and a client in the observer's namespace. The lease holder must
 * end up holding the IP at the API and on its interface, alone; the tests
 * read the emulator's requests, the kernels' addresses and the client's
 * neighbour entry. A 2 s lease keeps it short. Run `npm run build` first.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest'
import { OVH_IDS } from '../emulator/ovh/fixture.js'
import { ipmoveArgv, requireBuild } from './helpers/cli.js'
import { type NamespacedEmulator, startNamespacedEmulator } from './rig/emulator.js'
import { ETCD_TOOLS, type EtcdCluster, startEtcd } from './rig/etcd.js'
import { createRig, describeRoot, exec, type Rig, type RigNode, waitFor } from './rig/netns.js'
import { ping } from './rig/observe.js'

const IP = '203.0.113.10'
const TTL_S = 2
/** IPMOVE_ETCD_FIGURES=1: the figures (the default TTL too, three rounds each), minutes instead of seconds. */
const FIGURES = process.env.IPMOVE_ETCD_FIGURES === '1'
/** The three candidates' instances in the emulator's fixture (one region: an IP moves only within it). */
const INSTANCES: Record<string, string> = {
  a: 'bi-edge-sbg-1',
  b: 'bi-edge-sbg-2',
  c: OVH_IDS.instances.twinA,
}

interface Daemon {
  node: RigNode
  lines(): string[]
  waitFor(pattern: RegExp, ms?: number): Promise<string>
  stop(signal?: NodeJS.Signals): Promise<void>
}

describeRoot('ipmove watch following an etcd lease, three nodes, a real etcd and the OVH emulator', () => {
  let rig: Rig
  let dir: string
  let etcd: EtcdCluster
  let emulator: NamespacedEmulator
  let nodes: RigNode[]
  const daemons: Daemon[] = []

  beforeAll(async () => {
    requireBuild()
    rig = await createRig('ee', ['c', 'e1', 'e2', 'e3'])
    dir = mkdtempSync(join(tmpdir(), 'ipmove-ee-'))
    chmodSync(dir, 0o755)
    const [c, ...members] = rig.extra as [RigNode, ...RigNode[]]
    nodes = [rig.a, rig.b, c]
    ;[etcd, emulator] = await Promise.all([
      startEtcd(rig, members, dir),
      startNamespacedEmulator(rig.obs, dir, ['--host', rig.obs.ipv4]),
    ])
    // The failover IP is outside the LAN's subnet, as on OVH: the client reaches it on-link.
    const route = await rig.run(rig.obs, ['ip', 'route', 'add', `${IP}/32`, 'dev', 'eth0'])
    expect(route.code, route.stderr).toBe(0)
  })
  afterEach(async () => {
    for (const d of daemons.splice(0)) await d.stop('SIGKILL')
    for (const node of nodes) {
      await exec(['ip', '-n', rig.bridgeNs, 'link', 'set', `p-${node.name}`, 'up'])
      await exec(['ip', '-n', node.ns, 'addr', 'del', `${IP}/32`, 'dev', 'eth0'])
    }
  })
  afterAll(async () => {
    await emulator?.stop()
    await etcd?.stop()
    await rig?.destroy()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  /** One election per test: the candidates of a test campaign together, never with an earlier test's. */
  let election = ''

  interface Setting {
    provider: 'ovh' | 'local'
    ttlS: number
    marginS: number
  }
  const FAST: Setting = { provider: 'ovh', ttlS: TTL_S, marginS: 0.7 }

  function config(node: RigNode, setting: Setting = FAST): string {
    const path = join(dir, `${node.name}.conf`)
    const ip =
      setting.provider === 'ovh'
        ? `provider = ovh\nproject = t18s\ninstance = ${INSTANCES[node.name]}`
        : 'provider = local'
    writeFileSync(
      path,
      `[ip.web]
ip = ${IP}
${ip}
interface = eth0

[watch.web]
source = etcd
etcd-endpoints = ${etcd.endpoints.join(',')}
etcd-ca = ${etcd.tls.ca}
etcd-cert = ${etcd.tls.cert}
etcd-key = ${etcd.tls.key}
etcd-election = ${election}
etcd-name = ${node.name}
etcd-ttl = ${setting.ttlS}
etcd-renew-margin = ${setting.marginS}
api-interval = 1
dwell = 1
`,
      { mode: 0o600 },
    )
    return path
  }

  function daemon(node: RigNode, path: string): Daemon {
    const child: ChildProcessWithoutNullStreams = spawn(
      'ip',
      ['netns', 'exec', node.ns, ...ipmoveArgv(['watch', '--config', path])],
      {
        env: {
          ...process.env,
          ...emulator.env,
          IPMOVE_CACHE_DIR: join(dir, `cache-${node.name}`),
          IPMOVE_LOCK_DIR: join(dir, `run-${node.name}`),
        },
      },
    )
    let out = ''
    const keep = (c: Buffer) => {
      out += c.toString()
    }
    child.stdout.on('data', keep)
    child.stderr.on('data', keep)
    const exited = new Promise<void>((resolve) => child.once('close', () => resolve()))
    const d: Daemon = {
      node,
      lines: () => out.split('\n').filter(Boolean),
      waitFor: (pattern, ms = 10_000) =>
        waitFor(
          `${node.name} to log ${pattern} (so far:\n${out.slice(-3000)})`,
          async () => d.lines().find((l) => pattern.test(l)),
          ms,
          20,
        ),
      stop: async (signal = 'SIGTERM') => {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal)
        await exited
      },
    }
    daemons.push(d)
    return d
  }

  const carriers = async () => {
    const out: string[] = []
    for (const node of nodes) if (await rig.address(node, IP)) out.push(node.name)
    return out
  }
  const attaches = () => emulator.requests().filter((l) => /POST \S+\/attach -> 200/.test(l)).length

  async function apiHolder(): Promise<string> {
    const run = await rig.run(rig.obs, ipmoveArgv(['status', '--project', 't18s', '--ip', IP, '--json']), {
      env: {
        ...emulator.env,
        IPMOVE_CACHE_DIR: join(dir, 'cache-obs'),
        IPMOVE_CONFIG: join(dir, 'empty.conf'),
      },
    })
    expect(run.code, run.stderr).toBe(0)
    const holder = JSON.parse(run.stdout).holder as { name: string; id: string }
    return Object.keys(INSTANCES).find((n) => [holder.name, holder.id].includes(INSTANCES[n]!)) ?? holder.name
  }

  /** Which node the client's pings reach now, by the MAC in its neighbour entry; undefined: none answered. */
  async function reachedNow(): Promise<string | undefined> {
    const run = await ping(rig, rig.obs, IP, 2)
    if (run.code !== 0) return undefined
    const mac = (await rig.neigh(rig.obs, IP))?.lladdr
    return nodes.find((n) => n.mac === mac)?.name ?? `unknown MAC ${mac}`
  }

  /** Which node the client's pings reach, once they are answered (its neighbour entry may lag a moment). */
  const answeredBy = () => waitFor('the client to get answers', reachedNow, 5000, 50)

  /** The one node that holds the IP everywhere: lease, API, alias and the client's view. */
  async function holdsAlone(timeoutMs: number, not?: string): Promise<string> {
    return withLogs(() =>
      waitFor(
        'one node to hold the lease, the API and the alias',
        async () => {
          const now = await carriers()
          if (now.length !== 1 || now[0] === not) return undefined
          return (await apiHolder()) === now[0] ? now[0] : undefined
        },
        timeoutMs,
        20,
      ),
    )
  }

  /** `run`, its failure carrying the daemons' last lines. */
  async function withLogs<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run()
    } catch (error) {
      const logs = daemons.map((d) => `${d.node.name}:\n${d.lines().slice(-12).join('\n')}`)
      throw new Error(`${(error as Error).message}\n${logs.join('\n')}`)
    }
  }

  it("the leader's link dies: another node holds the lease, the API and the alias within TTL + one converge, with one API write; nothing moves when it returns", async () => {
    writeFileSync(join(dir, 'empty.conf'), '', { mode: 0o600 })
    election = 'ipmove/e2e-link'
    const ds = nodes.map((n) => daemon(n, config(n)))
    const first = await holdsAlone(10_000)
    const leader = ds.find((d) => d.node.name === first)!
    await leader.waitFor(/source: hold: etcd: this node holds the lease/)
    // Its claim ended (the API showed it done): the failover below starts from rest.
    await leader.waitFor(/\[web\] backup → master/)
    expect(await answeredBy()).toBe(first)
    const before = attaches()

    // The client's own clock: the test's polls below (a CLI started per API read) take seconds on a busy machine.
    const pings = pingLoop()
    let answered: number
    let next: string
    try {
      const died = await pullCable(first, pings)
      next = await holdsAlone(TTL_S * 1000 + 8000, first)
      answered = (await answeredAgain(pings, died, 5000)) - died
    } finally {
      await pings.stop()
    }
    expect(await answeredBy()).toBe(next)
    console.log(
      `etcd source, OVH emulator: the leader's link died; ${next} holds lease, API and alias, and answers pings, ${Math.round(answered)} ms later (TTL ${TTL_S} s)`,
    )
    expect(attaches() - before).toBe(1)
    // TTL + one converge: the lease runs out (etcd looks for expired leases every 500 ms), then the claim.
    const holder = ds.find((d) => d.node.name === next)!
    const claimMs = Number(/claimed \S+ in (\d+) ms/.exec(await holder.waitFor(/claimed \S+ in \d+ ms/))![1])
    expect(answered).toBeLessThan(TTL_S * 1000 + 500 + claimMs + 1000)

    // ipmove status --watch on the new holder: the lease's holder, its revision, the TTL left.
    const status = await rig.run(
      nodes.find((n) => n.name === next)!,
      ipmoveArgv(['status', '--watch', '--json']),
      { env: { IPMOVE_LOCK_DIR: join(dir, `run-${next}`) } },
    )
    expect(status.code, status.stderr).toBe(0)
    const [web] = JSON.parse(status.stdout).watch.ips
    expect(web.source).toMatchObject({ kind: 'etcd', wish: 'hold' })
    expect(web.source.status.fields).toMatchObject({ holder: next, holderIsSelf: true, reachable: true })
    expect(Number(web.source.status.fields.revision)).toBeGreaterThan(0)
    expect(web.source.status.fields.ttlLeftMs).toBeGreaterThan(0)
    expect(web.source.status.fields.ttlLeftMs).toBeLessThanOrEqual(TTL_S * 1000)
    const text = await rig.run(nodes.find((n) => n.name === next)!, ipmoveArgv(['status', '--watch']), {
      env: { IPMOVE_LOCK_DIR: join(dir, `run-${next}`) },
    })
    expect(text.stdout).toMatch(
      new RegExp(`lease holder ${next} \\(this node\\), revision \\d+, TTL left \\d\\.\\d s`),
    )

    // The old leader comes back: it queues behind the new holder; nothing moves.
    await exec(['ip', '-n', rig.bridgeNs, 'link', 'set', `p-${first}`, 'up'])
    await leader.waitFor(new RegExp(`source: release: etcd: ${next} holds the lease`), 10_000)
    await sleep(TTL_S * 1000)
    expect(await carriers()).toEqual([next])
    expect(await apiHolder()).toBe(next)
    expect(attaches() - before).toBe(1)
  })

  it('the leader stops (SIGTERM): its address goes first, then its lease; the next node holds the IP well within the TTL', async () => {
    election = 'ipmove/e2e-stop'
    const ds = nodes.map((n) => daemon(n, config(n, { provider: 'local', ttlS: 10, marginS: 2 })))
    const first = await waitFor(
      'one node to carry the address',
      async () => {
        const now = await carriers()
        return now.length === 1 ? now[0] : undefined
      },
      10_000,
      20,
    )
    const leader = ds.find((d) => d.node.name === first)!
    await leader.waitFor(/source: hold: etcd: this node holds the lease/)
    const stopped = Date.now()
    await leader.stop('SIGTERM')
    const lines = leader.lines()
    const dropped = lines.findIndex((l) =>
      /dropped 203\.0\.113\.10\/32 from eth0: stopping with release-on-stop/.test(l),
    )
    const resigned = lines.findIndex((l) => /resigning the etcd lease: stopping/.test(l))
    expect(dropped, lines.join('\n')).toBeGreaterThanOrEqual(0)
    expect(resigned, lines.join('\n')).toBeGreaterThan(dropped)
    const next = await waitFor(
      'another node to carry the address',
      async () => {
        const now = await carriers()
        return now.length === 1 && now[0] !== first ? now[0] : undefined
      },
      10_000,
      20,
    )
    // A 10 s lease: only the revocation explains a takeover within a few seconds.
    expect(Date.now() - stopped).toBeLessThan(5000)
    expect(await answeredBy()).toBe(next)
  })

  /** Pings from the client every 20 ms, with their arrival times. */
  function pingLoop(): { replies: () => number[]; stop: () => Promise<void> } {
    const child = spawn('ip', ['netns', 'exec', rig.obs.ns, 'ping', '-D', '-n', '-i', '0.02', '-W', '1', IP])
    const replies: number[] = []
    createInterface({ input: child.stdout }).on('line', (line) => {
      const at = /^\[(\d+\.\d+)\] \d+ bytes from/.exec(line)?.[1]
      if (at) replies.push(Number(at) * 1000)
    })
    const exited = new Promise<void>((resolve) => child.once('close', () => resolve()))
    return {
      replies: () => replies,
      stop: async () => {
        child.kill('SIGTERM')
        await exited
      },
    }
  }

  /** Once the client's pings are answered, pull `node`'s cable; resolves with when. */
  async function pullCable(node: string, pings: ReturnType<typeof pingLoop>): Promise<number> {
    await waitFor(
      'the client to get answers',
      async () => (pings.replies().length > 3 ? true : undefined),
      5000,
    )
    const died = Date.now()
    await exec(['ip', '-n', rig.bridgeNs, 'link', 'set', `p-${node}`, 'down'])
    return died
  }

  /**
   * When the client's first answer after the silence came: answers just after `died` may still be the old
   * leader's (pulling the cable takes a moment), the new holder's come after a gap of a TTL or so.
   */
  function answeredAgain(
    pings: ReturnType<typeof pingLoop>,
    died: number,
    timeoutMs: number,
  ): Promise<number> {
    return waitFor(
      'the client to get answers from the new holder',
      async () => pings.replies().find((t, i, all) => t > died && t - all[i - 1]! > 500),
      timeoutMs,
      20,
    )
  }

  /**
   * Local provider: the leader's link dies; how long until the client's pings are answered again (by the
   * new holder), and how long the new holder's claim took by its own log.
   */
  async function localFailover(setting: Setting, round: number): Promise<{ ms: number; claimMs: number }> {
    election = `ipmove/e2e-local-${setting.ttlS}-${round}`
    const ds = nodes.map((n) => daemon(n, config(n, setting)))
    const first = await waitFor(
      'one node to carry the address',
      async () => {
        const now = await carriers()
        return now.length === 1 ? now[0] : undefined
      },
      setting.ttlS * 3000 + 5000,
      20,
    )
    // Its claim ended (it announces after the address is on): the failover below starts from rest.
    const leader = ds.find((d) => d.node.name === first)!
    await leader.waitFor(/\[web\] backup → master/)
    const pings = pingLoop()
    try {
      const died = await pullCable(first, pings)
      const back = await answeredAgain(pings, died, setting.ttlS * 1000 + 10_000)
      const next = await answeredBy()
      expect(next).not.toBe(first)
      expect(await carriers()).toEqual([next])
      const holder = ds.find((d) => d.node.name === next)!
      const claimMs = Number(
        /claimed \S+ in (\d+) ms/.exec(await holder.waitFor(/claimed \S+ in \d+ ms/))![1],
      )
      return { ms: back - died, claimMs }
    } finally {
      await pings.stop()
      for (const d of ds.splice(0)) await d.stop('SIGKILL')
      await exec(['ip', '-n', rig.bridgeNs, 'link', 'set', `p-${first}`, 'up'])
      for (const node of nodes) await exec(['ip', '-n', node.ns, 'addr', 'del', `${IP}/32`, 'dev', 'eth0'])
    }
  }

  it(
    "LAN only, the local provider: failover time when the leader's link dies (fast setting; IPMOVE_ETCD_FIGURES=1 adds the default)",
    async () => {
      const settings: Setting[] = [{ provider: 'local', ttlS: TTL_S, marginS: 0.7 }]
      if (FIGURES) settings.push({ provider: 'local', ttlS: 10, marginS: 2 })
      const rounds = FIGURES ? 3 : 1
      for (const setting of settings) {
        const times: Array<{ ms: number; claimMs: number }> = []
        for (let round = 0; round < rounds; round++) times.push(await localFailover(setting, round))
        console.log(
          `etcd source, local provider, TTL ${setting.ttlS} s, margin ${setting.marginS} s: pings answered again ${times.map((t) => Math.round(t.ms)).join(', ')} ms after the leader's link died`,
        )
        // The lease runs out (TTL after the last renewal, seen within 500 ms), then an election and the claim,
        // as for the OVH emulator above. The bound was a fixed TTL + 2.5 s: 4.7 s came with TTL 2 s on a busy
        // machine (e2e-latest-intent's 20 CLIs alongside), where a claim (five announcements 200 ms apart)
        // takes 2.0-2.2 s instead of about 1 s; the claim's own time now stands for that part.
        for (const t of times) expect(t.ms).toBeLessThan(setting.ttlS * 1000 + 500 + t.claimMs + 1000)
      }
    },
    FIGURES ? 300_000 : 30_000,
  )
}, [...ETCD_TOOLS, 'nft'])
