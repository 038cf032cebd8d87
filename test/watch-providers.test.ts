/**
 * `ipmove watch` with every cloud provider: the built CLI's daemon, configured
 * through ipmove.conf alone, against each cloud's emulator, both in a network
 * namespace of their own (the emulator on its loopback, the address on a veth
 * there). The peer check is a link probe on a veth, so the test kills the peer
 * by setting the veth's other end down (a link probe reads sysfs: no
 * process per probe, steady on a loaded machine); this node's own health is
 * its interface's link. Per provider, one table row:
 * - the IP starts on the live peer: this node stays backup and carries nothing;
 * - the peer dies: this node claims (the API shows it as holder; the address is
 *   on its interface where the provider's hosts carry it);
 * - another client moves the IP to the dead peer: the daemon re-asserts;
 * - the peer lives again and another client moves the IP to it: the daemon
 *   yields (backup, the address dropped) and leaves the IP there.
 * What it reads is the daemon's outside: `ipmove status --watch` (its role and
 * the holder it read), `ipmove status` (the API's holder, by a client of its
 * own) and the kernel's addresses.
 * Run `npm run build` first (`npm test` does).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { WEB1, WEB3 } from '../emulator/aws/fixture.js'
import { DIGITALOCEAN_ADDRESSES, DIGITALOCEAN_IDS } from '../emulator/digitalocean/fixture.js'
import { HETZNER_ADDRESSES, HETZNER_IDS } from '../emulator/hetzner/fixture.js'
import { ROBOT_ADDRESSES, ROBOT_SERVERS } from '../emulator/hetzner-robot/fixture.js'
import { OVH_ADDRESSES, OVH_IDS } from '../emulator/ovh/fixture.js'
import { SCALEWAY_ADDRESSES, SCALEWAY_IDS } from '../emulator/scaleway/fixture.js'
import { ipmoveArgv, requireBuild } from './helpers/cli.js'
import { type NamespacedEmulator, startNamespacedEmulator } from './rig/emulator.js'
import { describeRoot, exec, waitFor } from './rig/netns.js'

interface Cloud {
  provider: string
  ip: string
  /** Provider settings beyond the IP, the provider and the instance (the same for the config and the CLI). */
  settings?: Record<string, string>
  /** This node's and the peer's instance, as --instance takes them, and their ids as the API reports them. */
  self: { instance: string; id: string }
  peer: { instance: string; id: string }
  /** Whether this provider's hosts carry the address (not NATed onto them). */
  carries: boolean
}

// biome-ignore format: one provider per line reads best
const CLOUDS: Cloud[] = [
  { provider: 'ovh', ip: OVH_ADDRESSES.cloudV4, settings: { project: 't18s' }, self: { instance: 'bi-edge-sbg-2', id: OVH_IDS.instances.sbg2 }, peer: { instance: 'bi-edge-sbg-1', id: OVH_IDS.instances.sbg1 }, carries: true },
  { provider: 'aws', ip: '203.0.113.5', self: { instance: 'web-3', id: WEB3 }, peer: { instance: 'web-1', id: WEB1 }, carries: false },
  { provider: 'hetzner', ip: HETZNER_ADDRESSES.v4, self: { instance: 'web-2', id: String(HETZNER_IDS.servers.web2) }, peer: { instance: 'web-1', id: String(HETZNER_IDS.servers.web1) }, carries: true },
  { provider: 'hetzner-robot', ip: ROBOT_ADDRESSES.v4, self: { instance: 'db-2', id: ROBOT_SERVERS.db2.ip }, peer: { instance: 'db-1', id: ROBOT_SERVERS.db1.ip }, carries: true },
  { provider: 'digitalocean', ip: DIGITALOCEAN_ADDRESSES.fra, self: { instance: 'web-2', id: String(DIGITALOCEAN_IDS.droplets.web2) }, peer: { instance: 'web-1', id: String(DIGITALOCEAN_IDS.droplets.web1) }, carries: false },
  { provider: 'scaleway', ip: SCALEWAY_ADDRESSES.vip, self: { instance: 'web-2', id: SCALEWAY_IDS.servers.web2 }, peer: { instance: 'web-1', id: SCALEWAY_IDS.servers.web1 }, carries: true },
]

/** Each step's bound: probes every 0.2 s, the peer dead after 1 s, the API read every 0.2 s, a short emulator delay; slack for a loaded machine. */
const STEP_MS = 15_000

describeRoot('ipmove watch with every cloud provider, against its emulator', () => {
  let dir: string

  beforeAll(() => {
    requireBuild()
    dir = mkdtempSync(join(tmpdir(), 'ipmove-watchp-'))
    chmodSync(dir, 0o755)
  })
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it.concurrent.each(CLOUDS)(
    '$provider: claims on peer death, re-asserts, yields to a live peer',
    async (cloud) => {
      const node = new Node(join(dir, cloud.provider), `ipm-${process.pid}-w${CLOUDS.indexOf(cloud)}`)
      try {
        await node.setUp(cloud)
        const daemon = node.watch(cloud)
        try {
          await node.until('this node backup, the IP on the peer', cloud, { role: 'backup', holder: 'peer' })
          expect(await node.carries(cloud.ip)).toBe(false)

          await node.peerDies()
          await node.until('the claim', cloud, { role: 'master', holder: 'self' })
          await waitFor(
            'the address where the host carries it',
            async () => ((await node.carries(cloud.ip)) === cloud.carries ? true : undefined),
            STEP_MS,
            50,
          )
          // Where the cloud maps the IP, the daemon reports nothing to carry rather than a missing address.
          expect((await node.snapshot())?.carried).toBe(cloud.carries ? true : null)

          // Another client moves the IP to the dead peer: the daemon takes it back. The move does not wait for
          // its effect: the daemon may rightly undo it first (a waiting move then ends superseded, exit 6).
          await node.moveTo(cloud, cloud.peer.instance, { wait: false })
          await waitFor(
            'the daemon to see the move and re-assert',
            async () =>
              /the API routes the IP elsewhere while the peer is dead: re-asserting/.test(daemon.log())
                ? true
                : undefined,
            STEP_MS,
            50,
          )
          await node.until('the re-assertion', cloud, { role: 'master', holder: 'self' })

          // The peer lives again and is given the IP: this node yields and leaves it there.
          await node.peerLives()
          await node.peerSeen('up')
          await node.moveTo(cloud, cloud.peer.instance, { wait: true })
          await node.until('the yield', cloud, { role: 'backup', holder: 'peer' })
          await waitFor(
            'the address dropped',
            async () => ((await node.carries(cloud.ip)) ? undefined : true),
            STEP_MS,
            50,
          )
          await new Promise((resolve) => setTimeout(resolve, 1000))
          expect(await node.holder(cloud), 'the IP stays on the live peer').toBe(cloud.peer.id)
        } catch (error) {
          throw new Error(`${(error as Error).message}\ndaemon log:\n${daemon.log()}`)
        } finally {
          await daemon.stop()
        }
      } finally {
        await node.tearDown()
      }
    },
    120_000,
  )
})

/** One node in a namespace of its own, with the emulator on its loopback and the daemon's files under `dir`. */
class Node {
  private emulator: NamespacedEmulator | undefined

  constructor(
    private readonly dir: string,
    private readonly ns: string,
  ) {}

  async setUp(cloud: Cloud): Promise<void> {
    await must(['ip', 'netns', 'add', this.ns])
    await must(['ip', '-n', this.ns, 'link', 'set', 'lo', 'up'])
    // A veth pair inside the namespace: the address goes on eth0, and announcing it there works.
    await must(['ip', '-n', this.ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1'])
    // The peer's stand-in: peer0 is up while the other end of its veth, peer1, is.
    await must(['ip', '-n', this.ns, 'link', 'add', 'peer0', 'type', 'veth', 'peer', 'name', 'peer1'])
    for (const link of ['eth0', 'eth1', 'peer0', 'peer1'])
      await must(['ip', '-n', this.ns, 'link', 'set', link, 'up'])
    mkdirSync(this.dir, { mode: 0o755 })
    this.emulator = await startNamespacedEmulator({ ns: this.ns }, this.dir, [], 200, cloud.provider)
  }

  async tearDown(): Promise<void> {
    await this.emulator?.stop()
    await exec(['ip', 'netns', 'del', this.ns])
  }

  async peerDies(): Promise<void> {
    await must(['ip', '-n', this.ns, 'link', 'set', 'peer1', 'down'])
  }

  async peerLives(): Promise<void> {
    await must(['ip', '-n', this.ns, 'link', 'set', 'peer1', 'up'])
  }

  /** Start `ipmove watch` in the namespace with a config naming this node's instance. */
  watch(cloud: Cloud): { log(): string; stop(): Promise<void> } {
    const settings = {
      ip: cloud.ip,
      provider: cloud.provider,
      instance: cloud.self.instance,
      interface: 'eth0',
      ...cloud.settings,
    }
    const config = join(this.dir, 'ipmove.conf')
    writeFileSync(
      config,
      `[ip.web]
${Object.entries(settings)
  .map(([k, v]) => `${k} = ${v}`)
  .join('\n')}

[watch.web]
api-interval = 0.2
dwell = 0.3
max-moves = 10
peer-initdead = 2
peer-deadtime = 1
peer-warntime = 0.5
self-initdead = 1

[watch.web.probe.peer]
check = peer
kind = link
interface = peer0
interval = 0.05
`,
      { mode: 0o600 },
    )
    const child: ChildProcess = spawn(
      'ip',
      ['netns', 'exec', this.ns, ...ipmoveArgv(['watch', '--config', config])],
      {
        env: this.env('daemon'),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    let log = ''
    child.stdout!.on('data', (c: Buffer) => {
      log += c.toString()
    })
    child.stderr!.on('data', (c: Buffer) => {
      log += c.toString()
    })
    const exited = new Promise<void>((resolve) => child.once('close', () => resolve()))
    return {
      log: () => log,
      stop: async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
        await exited
      },
    }
  }

  /** The environment of a client in the namespace: the emulator's, its own cache, locks and an empty config. */
  private env(client: string): NodeJS.ProcessEnv {
    const config = join(this.dir, `${client}.conf`)
    writeFileSync(config, '', { mode: 0o600 })
    return {
      ...process.env,
      ...this.emulator!.env,
      IPMOVE_CACHE_DIR: join(this.dir, `cache-${client}`),
      IPMOVE_LOCK_DIR: join(this.dir, `run-${client}`),
      ...(client === 'daemon' ? {} : { IPMOVE_CONFIG: config }),
    }
  }

  private cli(cloud: Cloud, args: string[]): string[] {
    const settings = Object.entries(cloud.settings ?? {}).flatMap(([k, v]) => [`--${k}`, v])
    return [
      'ip',
      'netns',
      'exec',
      this.ns,
      ...ipmoveArgv([...args, '--provider', cloud.provider, '--ip', cloud.ip, ...settings, '--json']),
    ]
  }

  /** The holder's id, as the API shows it now. */
  async holder(cloud: Cloud): Promise<string | undefined> {
    const run = await exec(this.cli(cloud, ['status']), { env: this.env('observer') })
    if (run.code !== 0) throw new Error(`ipmove status exited ${run.code}: ${run.stderr}`)
    return (JSON.parse(run.stdout).holder as { id: string } | null)?.id
  }

  /** The daemon's role and the holder it last read from the API, from its control socket. */
  async snapshot(): Promise<
    { role: string; holder?: string; peer: string; carried: boolean | null } | undefined
  > {
    const run = await exec(['ip', 'netns', 'exec', this.ns, ...ipmoveArgv(['status', '--watch', '--json'])], {
      env: { ...process.env, IPMOVE_LOCK_DIR: join(this.dir, 'run-daemon') },
    })
    if (run.code !== 0) return undefined // not listening yet
    const [web] = JSON.parse(run.stdout).watch.ips as Array<{
      role: string
      holder?: { id: string } | null
      checks: { peer: { health: string } }
      carried: boolean | null
    }>
    return (
      web && { role: web.role, holder: web.holder?.id, peer: web.checks.peer.health, carried: web.carried }
    )
  }

  /** Another client (its own cache and lock) moves the IP, waiting until the API shows it. */
  async moveTo(cloud: Cloud, instance: string, options: { wait: boolean }): Promise<void> {
    const args = ['move', '--instance', instance, ...(options.wait ? [] : ['--no-wait'])]
    const run = await exec(this.cli(cloud, args), { env: this.env('other') })
    if (run.code !== 0) throw new Error(`the other client's move exited ${run.code}: ${run.stderr}`)
  }

  async carries(ip: string): Promise<boolean> {
    const run = await must(['ip', '-n', this.ns, '-o', 'addr', 'show', 'dev', 'eth0'])
    return run.includes(` ${ip}/`)
  }

  /** Wait until the daemon's peer check says `health`. */
  async peerSeen(health: string): Promise<void> {
    await waitFor(
      `the peer check ${health}`,
      async () => ((await this.snapshot())?.peer === health ? true : undefined),
      STEP_MS,
      250,
    )
  }

  /**
   * Wait until the daemon has the role and has read the holder from the API,
   * then check the holder with a client of its own.
   */
  async until(what: string, cloud: Cloud, want: { role: string; holder: 'self' | 'peer' }): Promise<void> {
    const id = cloud[want.holder].id
    let seen: unknown = 'nothing'
    try {
      await waitFor(
        what,
        async () => {
          const snapshot = await this.snapshot()
          seen = snapshot
          return snapshot?.role === want.role && snapshot.holder === id ? true : undefined
        },
        STEP_MS,
        250,
      )
    } catch (error) {
      throw new Error(
        `${(error as Error).message}: want ${want.role} and the IP on ${id}, last seen ${JSON.stringify(seen)}`,
      )
    }
    expect(await this.holder(cloud), `${what}: the API's holder`).toBe(id)
  }
}

async function must(argv: string[]): Promise<string> {
  const run = await exec(argv)
  if (run.code !== 0) throw new Error(`${argv.join(' ')} exited ${run.code}: ${run.stderr.trim()}`)
  return run.stdout
}
