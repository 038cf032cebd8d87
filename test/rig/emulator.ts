/**
 * `ipmove emulate ovh` (or another cloud's) run inside a node's namespace, on
 * its loopback, for the kernel tests that run the built CLI there too. The emulator's --debug lines
 * (one `emulator: METHOD PATH -> STATUS` per request) tell a test what the API
 * has seen, so it can act at a precise step of a move.
 */
import { chmodSync, mkdtempSync } from 'node:fs'
import { join } from 'node:path'
import { spawnEmulator } from '../helpers/emulator-process.js'
import type { RigNode } from './netns.js'

export interface NamespacedEmulator {
  env: Record<string, string>
  /** The emulator's debug lines so far: one `emulator: METHOD PATH -> STATUS` per request. */
  requests(): string[]
  stop(): Promise<void>
}

/**
 * Start the emulator of `cloud` in `node`'s namespace (files under `dir`);
 * resolves once it listens there. OVH's reports its second instance as this host.
 */
export async function startNamespacedEmulator(
  node: Pick<RigNode, 'ns'>,
  dir: string,
  extra: string[] = [],
  pendingMs = 300,
  cloud = 'ovh',
): Promise<NamespacedEmulator> {
  const emuDir = mkdtempSync(join(dir, 'emu-'))
  chmodSync(emuDir, 0o755)
  const emulator = await spawnEmulator(
    [
      cloud,
      '--port',
      '0',
      '--pending-ms',
      String(pendingMs),
      ...(cloud === 'ovh' ? ['--this-host', 'bi-edge-sbg-2'] : []),
      '--dir',
      emuDir,
      '--debug',
      ...extra,
    ],
    ['ip', 'netns', 'exec', node.ns],
  )
  return {
    env: emulator.env,
    requests: () =>
      emulator
        .stderr()
        .split('\n')
        .filter((l) => l.includes('emulator: ')),
    stop: () => emulator.stop(),
  }
}
