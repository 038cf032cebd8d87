/**
 * The built CLI's `ipmove emulate ovh` inside a node's namespace, for the
 * end-to-end tests. Run `npm run build` first (`npm test` does).
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
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

/** Start the emulator in `node`'s namespace, its CA under `dir`; resolves once it listens. */
export async function startEmulator(
  node: RigNode,
  dir: string,
  extra: string[] = [],
): Promise<NamespacedEmulator> {
  const emuDir = mkdtempSync(join(dir, 'emu-'))
  chmodSync(emuDir, 0o755)
  const child: ChildProcessWithoutNullStreams = spawn('ip', [
    'netns',
    'exec',
    node.ns,
    ...ipmoveArgv([
      'emulate',
      'ovh',
      '--port',
      '0',
      '--pending-ms',
      '300',
      '--this-host',
      'bi-edge-sbg-2',
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
    const timer = setTimeout(() => reject(new Error(`the emulator did not start: ${stderr}`)), 10_000)
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
      const line = stdout.split('\n')[0]
      if (stdout.includes('\n') && line) {
        clearTimeout(timer)
        resolve((JSON.parse(line) as { env: Record<string, string> }).env)
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
