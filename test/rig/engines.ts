/**
 * A two-node failover pair driven by a real election engine (keepalived,
 * ucarp) in the rig: the OVH emulator listens in the observer's namespace on
 * its LAN address, where both nodes reach it; each node gets an `ipmove`
 * program (the built CLI, with the emulator's environment and a lock
 * directory of its own, as separate hosts would have) for the engine's
 * scripts to call. Which node the API routes the IP to is read from the
 * observer.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect } from 'vitest'
import { ipmoveArgv, requireBuild } from '../helpers/cli.js'
import { type NamespacedEmulator, startNamespacedEmulator } from './emulator.js'
import { createRig, type Exec, exec, type Rig, type RigNode, waitFor } from './netns.js'

export const IP = '203.0.113.10'
/** The instance each node is, in the emulator's default fixture. */
export const INSTANCE = { a: 'bi-edge-sbg-1', b: 'bi-edge-sbg-2' } as const

export interface Pair {
  emulator: NamespacedEmulator
  /** The `ipmove` program of a node. */
  ipmove(node: RigNode): string
  /** The instance the API routes the IP to. */
  holder(): Promise<string>
  /** `ipmove move` of the IP to `instance`, run on `node`. */
  move(node: RigNode, instance: string, ...extra: string[]): Promise<Exec>
  stop(): Promise<void>
}

const sh = (value: string) => `'${value.replaceAll("'", `'\\''`)}'`

/** Start the emulator in the observer's namespace and write each node's `ipmove` under `dir`. */
export async function startPair(rig: Rig, dir: string): Promise<Pair> {
  const emulator = await startNamespacedEmulator(rig.obs, dir, ['--host', rig.obs.ipv4], 300)
  writeFileSync(join(dir, 'ipmove.conf'), '', { mode: 0o600 })
  for (const node of [rig.a, rig.b]) {
    const home = join(dir, node.name)
    mkdirSync(home, { recursive: true })
    const env = {
      ...emulator.env,
      IPMOVE_CONFIG: join(dir, 'ipmove.conf'),
      IPMOVE_CACHE_DIR: join(home, 'cache'),
      IPMOVE_LOCK_DIR: join(home, 'locks'),
    }
    const exports = Object.entries(env).map(([k, v]) => `export ${k}=${sh(v)}`)
    const program = ipmoveArgv([]).map(sh).join(' ')
    writeFileSync(join(home, 'ipmove'), `#!/bin/sh\n${exports.join('\n')}\nexec ${program} "$@"\n`)
    chmodSync(join(home, 'ipmove'), 0o700)
  }
  const ipmove = (node: RigNode) => join(dir, node.name, 'ipmove')
  return {
    emulator,
    ipmove,
    holder: async () => {
      const run = await rig.run(rig.obs, [ipmove(rig.a), 'status', '--project', 't18s', '--ip', IP, '--json'])
      expect(run.code, run.stderr).toBe(0)
      return (JSON.parse(run.stdout) as { holder: { name: string } }).holder.name
    },
    move: (node, instance, ...extra) =>
      rig.run(node, [
        ipmove(node),
        'move',
        '--ip',
        IP,
        '--project',
        't18s',
        '--instance',
        instance,
        ...extra,
      ]),
    stop: () => emulator.stop(),
  }
}

/** Whether `node`'s eth0 carries `address`. */
export async function carries(rig: Rig, node: RigNode, address: string): Promise<boolean> {
  return (await rig.addresses(node)).some((a) => a.local === address)
}

/** A daemon in a node's namespace, its output kept for failure messages. */
export interface Daemon {
  output(): string
  stop(): Promise<void>
}

export function startDaemon(node: RigNode, argv: readonly string[]): Daemon {
  const child: ChildProcess = spawn('ip', ['netns', 'exec', node.ns, ...argv], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  // Each line stamped with the time it came (ms), so a failure's output shows what happened when.
  const keep = (chunk: Buffer) => {
    const stamp = `${new Date().toISOString().slice(11, 23)} `
    const lines = chunk.toString().replace(/\n(?=.)/g, `\n${stamp}`)
    output = (output + (output === '' || output.endsWith('\n') ? stamp : '') + lines).slice(-20_000)
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()))
  return {
    output: () => output,
    stop: async () => {
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    },
  }
}

/** Drop VRRP (IP protocol 112) arriving at `node`: the pair no longer hear each other. */
export async function blockVrrp(rig: Rig, node: RigNode, dir: string): Promise<void> {
  const file = join(dir, 'split.nft')
  writeFileSync(
    file,
    [
      'table inet ipmove_split {',
      '  chain input { type filter hook input priority 0; ip protocol vrrp drop; }',
      '}',
      '',
    ].join('\n'),
  )
  const run = await rig.run(node, ['nft', '-f', file])
  expect(run.code, run.stderr).toBe(0)
}

export async function unblockVrrp(rig: Rig, node: RigNode): Promise<void> {
  const run = await rig.run(node, ['nft', 'delete', 'table', 'inet', 'ipmove_split'])
  expect(run.code, run.stderr).toBe(0)
}

/** Why `master` does not hold the IP alone (routed to it by the API, the address on it and not on the other node), or undefined. */
export async function holdsAlone(rig: Rig, pair: Pair, master: RigNode): Promise<string | undefined> {
  const other = master === rig.a ? rig.b : rig.a
  const holder = await pair.holder()
  const problems = [
    holder === INSTANCE[master.name as 'a' | 'b']
      ? ''
      : `API routes it to ${holder}, the master is ${master.name}`,
    (await carries(rig, master, IP)) ? '' : `address missing on master ${master.name}`,
    (await carries(rig, other, IP)) ? `address also on ${other.name}` : '',
  ].filter(Boolean)
  return problems.length > 0 ? problems.join('; ') : undefined
}

/**
 * Wait until no ipmove started by a recipe's hook runs in this rig's nodes (their calls carry --syslog;
 * no other test's do; processes of other rigs on the same machine, in other namespaces, do not count).
 */
export async function hooksIdle(rig: Rig): Promise<void> {
  const ours = new Set([rig.a.ns, rig.b.ns])
  await waitFor(
    'the hooks to finish',
    async () => {
      const ps = await rig.run(rig.obs, ['ps', '-eo', 'pid,args'])
      const hooks = ps.stdout
        .split('\n')
        .filter((l) => /run\.js (move|release) --ip 203\.0\.113\.10 .*--syslog/.test(l))
        .map((l) => l.trim().split(' ')[0]!)
      const where = await Promise.all(hooks.map((pid) => exec(['ip', 'netns', 'identify', pid])))
      return where.some((w) => ours.has(w.stdout.trim())) ? undefined : true
    },
    20_000,
    100,
  )
}

/** Pull or plug `node`'s cable: its bridge port goes down or up, and its eth0 loses or regains carrier. */
export async function cable(rig: Rig, node: RigNode, state: 'up' | 'down'): Promise<void> {
  const run = await rig.run(rig.obs, ['ip', '-n', rig.bridgeNs, 'link', 'set', `p-${node.name}`, state])
  expect(run.code, run.stderr).toBe(0)
}

/**
 * A suite's rig, private directory and pair: created before its tests, torn
 * down after them, `daemons` stopped first. The fields are set once beforeAll ran.
 */
export function usePair(tag: string, daemons: Daemon[]): { rig: Rig; dir: string; pair: Pair } {
  const suite = {} as { rig: Rig; dir: string; pair: Pair }
  beforeAll(async () => {
    requireBuild()
    suite.rig = await createRig(tag)
    suite.dir = mkdtempSync(join(tmpdir(), `ipmove-${tag}-`))
    suite.pair = await startPair(suite.rig, suite.dir)
    // keepalived's script security wants the scripts' directories writable by root alone.
    chmodSync(suite.dir, 0o755)
  })
  afterAll(async () => {
    for (const daemon of daemons.splice(0)) await daemon.stop()
    await suite.pair?.stop()
    await suite.rig?.destroy()
    if (suite.dir) rmSync(suite.dir, { recursive: true, force: true })
  })
  return suite
}
