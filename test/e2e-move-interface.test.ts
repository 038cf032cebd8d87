/**
 * End to end on the real kernel: the built CLI (see helpers/cli.ts) runs `move
 * --interface` inside node B's namespace against the OVH emulator, which runs
 * in the same namespace (its loopback) as its own `ipmove emulate ovh` process.
 * Run `npm run build` first (`npm test` does).
 */
import { spawn } from 'node:child_process'
import { chmodSync, copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest'
import { ipmoveArgv, requireBuild, SINGLE_FILE } from './helpers/cli.js'
import { type NamespacedEmulator, startNamespacedEmulator } from './rig/emulator.js'
import {
  AS_NOBODY,
  captureTime,
  createRig,
  describeRoot,
  type Exec,
  type Rig,
  type RigNode,
} from './rig/netns.js'
import { aHolds, captureAnnouncements, flipTo, pingedWho, release } from './rig/observe.js'

const IP = '203.0.113.10'
const MOVE = ['move', '--project', 't18s', '--ip', IP, '--instance', 'bi-edge-sbg-2', '--json']

describeRoot('move --interface end to end, emulator and CLI inside a namespace', () => {
  let rig: Rig
  let dir: string
  const emulators: NamespacedEmulator[] = []

  beforeAll(async () => {
    requireBuild()
    rig = await createRig('mvi')
    // Readable by nobody too: the emulator's CA lives here, and the CLI nobody runs (the checkout may be private).
    dir = mkdtempSync(join(tmpdir(), 'ipmove-mvi-'))
    chmodSync(dir, 0o755)
    copyFileSync(SINGLE_FILE, join(dir, 'ipmove'))
    chmodSync(join(dir, 'ipmove'), 0o755)
    writeFileSync(join(dir, 'ipmove.conf'), '', { mode: 0o600 })
    // The failover IP is outside the LAN's subnet, as on OVH: the observer reaches it on-link.
    const route = await rig.run(rig.obs, ['ip', 'route', 'add', `${IP}/32`, 'dev', 'eth0'])
    expect(route.code, route.stderr).toBe(0)
  })
  afterEach(async () => {
    for (const emulator of emulators.splice(0)) await emulator.stop()
  })
  afterAll(async () => {
    await rig?.destroy()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  /** `ipmove emulate ovh` in a node's namespace; resolves once it listens there. */
  async function startEmulator(node: RigNode, extra: string[] = []): Promise<NamespacedEmulator> {
    const emulator = await startNamespacedEmulator(node, dir, extra)
    emulators.push(emulator)
    return emulator
  }

  /** The built CLI in a node's namespace, as root, or as nobody (its own copy of the single file). */
  function ipmove(
    node: RigNode,
    args: string[],
    env: Record<string, string>,
    user?: 'nobody',
  ): Promise<Exec> {
    if (user) {
      // nobody cannot read root's config; its own (under HOME) does not exist.
      const files = { HOME: '/nonexistent', IPMOVE_CACHE_DIR: '/nonexistent/cache' }
      const argv = [...AS_NOBODY, process.execPath, join(dir, 'ipmove'), ...args]
      return rig.run(node, argv, { env: { ...env, ...files } })
    }
    const files = { IPMOVE_CONFIG: join(dir, 'ipmove.conf'), IPMOVE_CACHE_DIR: join(dir, 'cache') }
    return rig.run(node, ipmoveArgv(args), { env: { ...env, ...files } })
  }

  /** The cloud's holder, and whether `node` carries the address, as `status --json` reports them. */
  async function holder(node: RigNode, env: Record<string, string>): Promise<string> {
    const result = await status(node, env)
    return (result.holder as { name: string }).name
  }

  async function status(node: RigNode, env: Record<string, string>): Promise<Record<string, unknown>> {
    const run = await ipmove(node, ['status', '--project', 't18s', '--ip', IP, '--json'], env)
    expect(run.code, run.stderr).toBe(0)
    return JSON.parse(run.stdout)
  }

  /** Watch a node's addresses through the kernel's own notifications. */
  function monitorAddresses(node: RigNode): { stop(): Promise<string[]> } {
    const child = spawn('ip', ['netns', 'exec', node.ns, 'ip', '-o', 'monitor', 'address'])
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString()
    })
    const exited = new Promise<void>((resolve) => child.once('close', () => resolve()))
    return {
      stop: async () => {
        child.kill('SIGTERM')
        await exited
        return out.split('\n').filter((l) => l.includes(IP))
      },
    }
  }

  it('moves the IP in the cloud, puts it on eth0 and announces it to the LAN', async () => {
    const { a, b, obs } = rig
    const emulator = await startEmulator(b)
    // A carried it before (the old holder); the observer knows A's MAC for it.
    await aHolds(rig, IP)
    await release(rig, a, IP)

    const capture = await captureAnnouncements(rig, obs, IP)
    const moving = ipmove(b, [...MOVE, '--interface', 'eth0'], emulator.env)
    const flippedAt = await flipTo(rig, obs, IP, b.mac, 10_000)
    const run = await moving
    const frames = await capture.stop()

    expect(run.code, run.stderr).toBe(0)
    expect(JSON.parse(run.stdout)).toMatchObject({
      ok: true,
      outcome: 'moved',
      from: { name: 'bi-edge-sbg-1' },
      to: { name: 'bi-edge-sbg-2' },
      alias: { ip: `${IP}/32`, interface: 'eth0', changed: true, announced: { count: 5, intervalMs: 200 } },
    })
    expect(emulator.requests().some((l) => /POST \S+\/attach -> 200/.test(l))).toBe(true)
    expect(await status(b, emulator.env)).toMatchObject({
      holder: { name: 'bi-edge-sbg-2' },
      local: { carried: true, interfaces: ['eth0'] },
    })
    expect(await rig.address(b, IP)).toMatchObject({ family: 'inet', prefixlen: 32 })
    expect(frames).toHaveLength(5)
    for (const frame of frames) expect(frame).toContain(`${b.mac} > ff:ff:ff:ff:ff:ff`)
    expect(flippedAt - captureTime(frames[0]!)).toBeLessThanOrEqual(200)
    expect(await pingedWho(rig, obs, IP)).toEqual({ code: 0, received: { a: 0, b: 3 } })

    await release(rig, b, IP)
  })

  it('exits 7 on a missing interface before any request reaches the emulator', async () => {
    const emulator = await startEmulator(rig.b)
    const run = await ipmove(rig.b, [...MOVE, '--interface', 'eth9'], emulator.env)
    expect(run.code).toBe(7)
    expect(run.stderr.trim()).toBe('ipmove: error: interface eth9 does not exist')
    expect(JSON.parse(run.stdout)).toMatchObject({ ok: false, error: { code: 'LOCAL', exitCode: 7 } })
    expect(emulator.requests()).toEqual([])
    // The emulator is alive and the IP where it was.
    expect(await holder(rig.b, emulator.env)).toBe('bi-edge-sbg-1')
  })

  it('exits 7 as nobody after the cloud move, naming the state the cloud is in', async () => {
    const emulator = await startEmulator(rig.b)
    const run = await ipmove(rig.b, [...MOVE, '--interface', 'eth0'], emulator.env, 'nobody')
    expect(run.code, run.stderr).toBe(7)
    const lines = run.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(
      /^ipmove: error: adding 203\.0\.113\.10\/32 to eth0 needs root \(CAP_NET_ADMIN\) \(ovh now routes it to bi-edge-sbg-2 \(.+\)\)$/,
    )
    expect(JSON.parse(run.stdout)).toMatchObject({ ok: false, error: { exitCode: 7, cloud: 'moved' } })
    expect(emulator.requests().some((l) => /POST \S+\/attach -> 200/.test(l))).toBe(true)
    expect(await holder(rig.b, emulator.env)).toBe('bi-edge-sbg-2')
    expect(await rig.address(rig.b, IP)).toBeUndefined()
  })

  it('takes the address off again when the cloud refuses the move, and announces nothing', async () => {
    const { b, obs } = rig
    const emulator = await startEmulator(b, [
      '--fault',
      'path=/cloud/project/*/ip/failover/*/attach,method=POST,status=403',
    ])
    const monitor = monitorAddresses(b)
    const capture = await captureAnnouncements(rig, obs, IP)
    const run = await ipmove(b, [...MOVE, '--interface', 'eth0'], emulator.env)
    const frames = await capture.stop()
    const events = await monitor.stop()

    expect(run.code, run.stderr).toBe(3)
    expect(JSON.parse(run.stdout)).toMatchObject({ ok: false, error: { code: 'AUTH' } })
    expect(emulator.requests().some((l) => /POST \S+\/attach -> 403/.test(l))).toBe(true)
    // The kernel saw the address come and go; it is gone, and the LAN heard nothing.
    expect(events.filter((l) => !l.startsWith('Deleted'))).toHaveLength(1)
    expect(events.filter((l) => l.startsWith('Deleted'))).toHaveLength(1)
    expect(await rig.address(b, IP)).toBeUndefined()
    expect(frames).toEqual([])
    expect(await holder(b, emulator.env)).toBe('bi-edge-sbg-1')
  })
})
