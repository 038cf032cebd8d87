/**
 * `ipmove emulate ovh` (or another cloud's) run inside a node's namespace, on
 * its loopback, for the kernel tests that run the built CLI there too. The emulator's --debug lines
 * (one `emulator: METHOD PATH -> STATUS` per request) tell a test what the API
 * has seen, so it can act at a precise step of a move.
 */
import { spawn } from 'node:child_process'
import { chmodSync, mkdtempSync } from 'node:fs'
import { join } from 'node:path'
import { ipmoveArgv } from '../helpers/cli.js'
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
  const child = spawn('ip', [
    'netns',
    'exec',
    node.ns,
    ...ipmoveArgv([
      'emulate',
      cloud,
      '--port',
      '0',
      '--pending-ms',
      String(pendingMs),
      ...(cloud === 'ovh' ? ['--this-host', 'bi-edge-sbg-2'] : []),
      '--dir',
      emuDir,
      '--json',
      '--debug',
      ...extra,
    ]),
  ])
  let stdout = ''
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()))
  const env = await new Promise<Record<string, string>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the emulator did not start: ${stderr}`)), 30_000)
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
      const line = stdout.split('\n')[0]
      if (stdout.includes('\n') && line) {
        clearTimeout(timer)
        const started = JSON.parse(line) as { env?: Record<string, string> }
        if (started.env) resolve(started.env)
        else reject(new Error(`the emulator did not start: ${line}`))
      }
    })
    child.once('close', (code) => {
      clearTimeout(timer)
      reject(new Error(`the emulator exited with ${code}: ${stderr}`))
    })
  })
  return {
    env,
    requests: () => stderr.split('\n').filter((l) => l.includes('emulator: ')),
    stop: async () => {
      child.kill('SIGTERM')
      await exited
    },
  }
}
