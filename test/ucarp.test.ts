/**
 * contrib/ucarp with the real ucarp (Debian's package) in the rig: nodes A
 * (advskew 0, instance bi-edge-sbg-1) and B (advskew 50, bi-edge-sbg-2) elect
 * over CARP on the bridge; the OVH emulator listens in the observer's
 * namespace; ucarp runs contrib's vip-up and vip-down, which call the built
 * CLI. And the daemon variant: each node runs `ipmove watch` (source = ucarp)
 * and ucarp runs vip-up-watch / vip-down-watch, which tell it; the daemon
 * repairs what ucarp's scripts cannot (the IP moved behind a master's back).
 * Run `npm run build` first.
 */
import { chmodSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { beforeAll, expect, it } from 'vitest'
import {
  cable,
  type Daemon,
  holdsAlone,
  hooksIdle,
  INSTANCE,
  IP,
  type Pair,
  startDaemon,
  usePair,
} from './rig/engines.js'
import { describeRoot, type Rig, type RigNode, waitFor } from './rig/netns.js'

const CONTRIB = fileURLToPath(new URL('../contrib/ucarp/', import.meta.url))

/** ucarp on the rig's nodes, running contrib's scripts with each node's ipmove; and the wait for a master. */
function ucarpRig(suite: { rig: Rig; dir: string; pair: Pair }, daemons: Daemon[]) {
  /** contrib's script `name`, run with this node's ipmove. */
  function script(node: RigNode, name: string): string {
    const file = join(suite.dir, node.name, name)
    writeFileSync(file, `#!/bin/sh\nIPMOVE='${suite.pair.ipmove(node)}' exec '${join(CONTRIB, name)}' "$@"\n`)
    chmodSync(file, 0o700)
    return file
  }

  /** ucarp on `node` with `up`/`down` as its scripts and `xparam` as their third argument. */
  function ucarp(
    node: RigNode,
    advskew: number,
    scripts: { up: string; down: string; xparam: string },
  ): Daemon {
    const daemon = startDaemon(node, [
      'ucarp',
      `--interface=${node.iface}`,
      `--srcip=${node.ipv4}`,
      '--vhid=10',
      '--pass=ipmove-test',
      `--addr=${IP}`,
      '--advbase=1',
      `--advskew=${advskew}`,
      '--preempt',
      '--shutdown',
      '--neutral',
      `--upscript=${script(node, scripts.up)}`,
      `--downscript=${script(node, scripts.down)}`,
      `--xparam=${scripts.xparam}`,
    ])
    daemons.push(daemon)
    return daemon
  }

  async function holds(master: RigNode, ms: number): Promise<number> {
    const { rig, pair } = suite
    const start = Date.now()
    await waitFor(
      `${master.name} to hold the IP alone`,
      async () => ((await holdsAlone(rig, pair, master)) ? undefined : true),
      ms,
      100,
    ).catch(async (error: Error) => {
      const why = await holdsAlone(rig, pair, master)
      throw new Error(`${error.message}: ${why}\n${daemons.map((d) => d.output()).join('\n---\n')}`)
    })
    return Date.now() - start
  }

  return { ucarp, holds }
}

describeRoot('ucarp drives ipmove: contrib/ucarp with the real daemon, OVH emulator, namespaces', () => {
  const daemons: Daemon[] = []
  const suite = usePair('ucp', daemons)
  let rig: Rig
  beforeAll(() => {
    ;({ rig } = suite)
  })
  const { ucarp, holds } = ucarpRig(suite, daemons)
  const hooks = (node: RigNode) => ({
    up: 'vip-up',
    down: 'vip-down',
    xparam: `--project t18s --instance ${INSTANCE[node.name as 'a' | 'b']}`,
  })

  it('fails over when the master link dies, and the old master takes back over (preempt)', async () => {
    ucarp(rig.b, 50, hooks(rig.b))
    await holds(rig.b, 20_000)
    ucarp(rig.a, 0, hooks(rig.a))
    await holds(rig.a, 20_000)
    await hooksIdle(rig)

    await cable(rig, rig.a, 'down')
    const failover = await holds(rig.b, 20_000)
    await hooksIdle(rig)
    await cable(rig, rig.a, 'up')
    const failback = await holds(rig.a, 20_000)
    console.log(`ucarp recipe: failover ${failover} ms, failback (preempt) ${failback} ms`)
  }, 90_000)
}, ['ucarp'])

describeRoot('ucarp tells ipmove watch: the daemon variant (source = ucarp), OVH emulator, namespaces', () => {
  const daemons: Daemon[] = []
  const suite = usePair('ucw', daemons)
  let rig: Rig
  let pair: Pair
  beforeAll(() => {
    ;({ rig, pair } = suite)
  })
  const { ucarp, holds } = ucarpRig(suite, daemons)
  const scripts = { up: 'vip-up-watch', down: 'vip-down-watch', xparam: 'web' }

  /** `ipmove watch` on `node`, following ucarp for the IP `web`. */
  function watch(node: RigNode): Daemon {
    const config = join(suite.dir, node.name, 'watch.conf')
    writeFileSync(
      config,
      `[ip.web]
ip = ${IP}
provider = ovh
project = t18s
instance = ${INSTANCE[node.name as 'a' | 'b']}
interface = ${node.iface}

[watch.web]
source = ucarp
api-interval = 1
# ucarp has both nodes master for about two advertisement intervals at a preemption: wait that out.
dwell = 3
max-moves = 10
`,
      { mode: 0o600 },
    )
    const daemon = startDaemon(node, [pair.ipmove(node), 'watch', '--config', config])
    daemons.push(daemon)
    return daemon
  }

  it('fails over and back as ucarp says, and repairs an IP moved behind the master’s back', async () => {
    const watchers = { a: watch(rig.a), b: watch(rig.b) }
    ucarp(rig.b, 50, scripts)
    await holds(rig.b, 20_000)
    ucarp(rig.a, 0, scripts)
    await holds(rig.a, 20_000)

    await cable(rig, rig.a, 'down')
    const failover = await holds(rig.b, 20_000)
    await cable(rig, rig.a, 'up')
    const failback = await holds(rig.a, 20_000)

    // What a stale up script on B would do: ucarp runs nothing more on A, its daemon re-asserts.
    const moved = await pair.move(rig.b, INSTANCE.b)
    expect(moved.code, moved.stderr).toBe(0)
    const repaired = await holds(rig.a, 15_000)
    expect(watchers.a.output()).toMatch(/\[web\] source: hold: ucarp's script says hold/)
    expect(watchers.b.output()).toMatch(/\[web\] source: release: ucarp's script says release/)
    console.log(
      `ucarp daemon variant: failover ${failover} ms, failback (preempt) ${failback} ms, stale move repaired in ${repaired} ms`,
    )
  }, 120_000)
}, ['ucarp'])
