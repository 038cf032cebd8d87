/**
 * Running the built CLI (bin/run.js → dist/) as a hook would, for the
 * end-to-end tests. `npm run build` must have run (`npm test` does).
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect } from 'vitest'

export const BIN = fileURLToPath(new URL('../../bin/run.js', import.meta.url))

export interface Run {
  code: number | null
  stdout: string
  stderr: string
}

export function requireBuild(): void {
  if (!existsSync(new URL('../../dist/src/main.js', import.meta.url))) {
    throw new Error('dist/ is missing: run `npm run build` first')
  }
}

/** Run `ipmove ARGS` with exactly `env`; `onSpawn` runs once the process exists. */
export function ipmove(args: string[], env: NodeJS.ProcessEnv, onSpawn?: () => void): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    onSpawn?.()
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => {
      stdout += chunk
    })
    child.stderr.on('data', (chunk) => {
      stderr += chunk
    })
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

/** The one JSON object a --json run prints. */
export function json(run: Run): Record<string, unknown> {
  const lines = run.stdout.trim().split('\n')
  expect(lines).toHaveLength(1)
  return JSON.parse(lines[0] as string)
}

/**
 * A hook's environment shielded from this machine's own ipmove files: PATH, a
 * fresh HOME, an empty config file and a fresh id cache, then `extra`.
 */
export function isolatedEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const dir = mkdtempSync(join(tmpdir(), 'ipmove-test-'))
  const config = join(dir, 'ipmove.conf')
  writeFileSync(config, '', { mode: 0o600 })
  return {
    PATH: process.env.PATH,
    HOME: dir,
    IPMOVE_CONFIG: config,
    IPMOVE_CACHE_DIR: join(dir, 'cache'),
    IPMOVE_LOCK_DIR: join(dir, 'locks'),
    ...extra,
  }
}
