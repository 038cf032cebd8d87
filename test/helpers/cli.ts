/**
 * Running the built CLI as a hook would, for the end-to-end tests: bin/run.js
 * (→ dist/) with this node, or the program IPMOVE_TEST_BIN names (the single
 * file dist/ipmove.cjs, an installed `ipmove`), started by its `#!` as a hook
 * starts it. `npm run build` must have run (`npm test` does).
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, expect } from 'vitest'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const TEST_BIN = process.env.IPMOVE_TEST_BIN
export const BIN = resolve(ROOT, TEST_BIN || 'bin/run.js')
/** The self-contained build, which needs no other file: what the privilege tests copy for nobody. */
export const SINGLE_FILE = resolve(ROOT, 'dist/ipmove.cjs')

/** The argv that starts `ipmove ARGS`. */
export function ipmoveArgv(args: readonly string[]): [string, ...string[]] {
  return TEST_BIN ? [BIN, ...args] : [process.execPath, BIN, ...args]
}

export interface Run {
  code: number | null
  stdout: string
  stderr: string
}

export function requireBuild(): void {
  for (const file of [resolve(ROOT, 'dist/src/main.js'), SINGLE_FILE, BIN]) {
    if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\` first`)
  }
}

/** Run `ipmove ARGS` with exactly `env`; `onSpawn` runs once the process exists. */
export function ipmove(args: string[], env: NodeJS.ProcessEnv, onSpawn?: () => void): Promise<Run> {
  return new Promise((resolve) => {
    const [file, ...argv] = ipmoveArgv(args)
    const child = spawn(file, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] })
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

const isolatedDirs: string[] = []
// Registered while the test file that imports this helper is collected: its directories go after it.
afterAll(() => {
  for (const dir of isolatedDirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

/**
 * A hook's environment shielded from this machine's own ipmove files: PATH, a
 * fresh HOME, an empty config file and a fresh id cache, then `extra`. The
 * directory goes once the test file is done.
 */
export function isolatedEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const dir = mkdtempSync(join(tmpdir(), 'ipmove-test-'))
  isolatedDirs.push(dir)
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
