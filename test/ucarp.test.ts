/**
 * contrib/ucarp with the real ucarp (Debian's package) in the rig: nodes A
 * (advskew 0, instance bi-edge-sbg-1) and B (advskew 50, bi-edge-sbg-2) elect
 * over CARP on the bridge; the OVH emulator listens in the observer's
 * namespace; ucarp runs contrib's vip-up and vip-down, which call the built
 * CLI. Run `npm run build` first.
 */
import { chmodSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { beforeAll, it } from 'vitest'
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

describeRoot('ucarp drives ipmove: contrib/ucarp with the real daemon, OVH emulator, namespaces', () => {
  const daemons: Daemon[] = []
  const suite = usePair('ucp', daemons)
  let rig: Rig
  let dir: string
  let pair: Pair
  beforeAll(() => {
    ;({ rig, dir, pair } = suite)
  })

  /** contrib's script `name`, run with this node's ipmove. */
  function script(node: RigNode, name: 'vip-up' | 'vip-down'): string {
    const file = join(dir, node.name, name)
    writeFileSync(file, `#!/bin/sh\nIPMOVE='${pair.ipmove(node)}' exec '${join(CONTRIB, name)}' "$@"\n`)
    chmodSync(file, 0o700)
    return file
  }

  function ucarp(node: RigNode, advskew: number): Daemon {
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
      `--upscript=${script(node, 'vip-up')}`,
      `--downscript=${script(node, 'vip-down')}`,
      `--xparam=--project t18s --instance ${INSTANCE[node.name as 'a' | 'b']}`,
    ])
    daemons.push(daemon)
    return daemon
  }

  async function holds(master: RigNode, ms: number): Promise<number> {
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

  it('fails over when the master link dies, and the old master takes back over (preempt)', async () => {
    ucarp(rig.b, 50)
    await holds(rig.b, 20_000)
    ucarp(rig.a, 0)
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
