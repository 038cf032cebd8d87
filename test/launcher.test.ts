/**
 * How an installed ipmove starts from a failover hook: bin/run.js and the
 * single file dist/ipmove.cjs begin with sh lines that find node, so that a
 * hook whose PATH has no node (PATH=/usr/sbin:/sbin) still runs it. Fake
 * `node` programs tell which one the launcher picked.
 * `npm run build` must have run (`npm test` does).
 */
import { execFile } from 'node:child_process'
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { requireBuild, SINGLE_FILE } from './helpers/cli.js'

const RUN_JS = fileURLToPath(new URL('../bin/run.js', import.meta.url))
const HOOK_PATH = '/usr/sbin:/sbin'

interface Run {
  code: number
  stdout: string
  stderr: string
}

/** Start `file` by its #!, as a hook does, with exactly `env`. */
function start(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env, timeout: 20_000 }, (error, stdout, stderr) => {
      const code = (error as { code?: unknown } | null)?.code
      if (error && typeof code !== 'number') return reject(error)
      resolve({ code: typeof code === 'number' ? code : 0, stdout, stderr })
    })
  })
}

let dir: string

/** A `node` that only says who it is and what it was asked to run, one argument a line. */
function fakeNode(where: string, name: string): string {
  mkdirSync(where, { recursive: true })
  const file = join(where, 'node')
  writeFileSync(file, `#!/bin/sh\necho ${name}\nfor a in "$@"; do echo "$a"; done\n`, { mode: 0o755 })
  return file
}

/** A copy of the single file alone in a fresh directory, as on a server. */
function installed(name: string): string {
  const bin = join(dir, name)
  mkdirSync(bin)
  const file = join(bin, 'ipmove')
  copyFileSync(SINGLE_FILE, file)
  chmodSync(file, 0o755)
  return file
}

beforeAll(() => {
  requireBuild()
  dir = mkdtempSync(join(tmpdir(), 'ipmove-launcher-'))
})

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true })
})

describe('the launcher lines', () => {
  it('are the same at the top of bin/run.js and of the single file', () => {
    const head = (file: string) => readFileSync(file, 'utf8').split('\n').slice(0, 6)
    const lines = head(RUN_JS)
    expect(lines[0]).toBe('#!/bin/sh')
    const launcher = lines.slice(
      0,
      lines.findIndex((line, i) => i > 0 && !line.startsWith("':' //")),
    )
    expect(launcher.length).toBeGreaterThan(2)
    expect(head(SINGLE_FILE).slice(0, launcher.length)).toEqual(launcher)
  })

  it('start ipmove under a hook PATH without node, with a node from the usual places', async () => {
    const usual = ['/usr/local/bin/node', '/usr/bin/node'].find((file) => existsSync(file))
    for (const file of [RUN_JS, installed('plain')]) {
      const run = await start(file, ['--version'], { PATH: HOOK_PATH })
      if (usual) {
        expect(run.stderr).toBe('')
        expect(run.code).toBe(0)
        expect(run.stdout).toMatch(/^ipmove\/\d+\.\d+\.\d+ linux-x64 node-v\d+\.\d+\.\d+\n$/)
      } else {
        expect(run.code).toBe(127)
        expect(run.stderr).toMatch(/^ipmove: error: node not found beside .*: set IPMOVE_NODE\n$/)
      }
    }
  })

  it('prefer IPMOVE_NODE, then the node beside the link, then PATH', async () => {
    const file = installed('order')
    const onPath = join(dir, 'path-bin')
    fakeNode(onPath, 'path')
    const env = { PATH: `${onPath}:${HOOK_PATH}` }
    expect((await start(file, ['status'], env)).stdout).toBe(`path\n${file}\nstatus\n`)
    fakeNode(join(dir, 'order'), 'beside')
    expect((await start(file, ['status'], env)).stdout).toBe(`beside\n${file}\nstatus\n`)
    const explicit = fakeNode(join(dir, 'explicit-bin'), 'explicit')
    expect((await start(file, ['status'], { ...env, IPMOVE_NODE: explicit })).stdout).toBe(
      `explicit\n${file}\nstatus\n`,
    )
  })

  it('pass every argument through unchanged, spaces and quotes included', async () => {
    const file = installed('args')
    fakeNode(join(dir, 'args'), 'beside')
    const args = ['--ip', 'a b', '', "it's", '$HOME', '*']
    const run = await start(file, args, { PATH: HOOK_PATH })
    expect(run.stdout).toBe(`beside\n${file}\n${args.join('\n')}\n`)
  })

  it('exit 127 naming IPMOVE_NODE when it is not a program', async () => {
    const run = await start(installed('missing'), ['--version'], {
      PATH: HOOK_PATH,
      IPMOVE_NODE: join(dir, 'no-such-node'),
    })
    expect(run.code).toBe(127)
    expect(run.stderr).toContain(join(dir, 'no-such-node'))
    expect(run.stdout).toBe('')
  })
})

describe('the single file', () => {
  it('runs commands with nothing beside it: no package.json, no node_modules', async () => {
    const file = installed('alone')
    const config = join(dir, 'alone', 'ipmove.conf')
    writeFileSync(config, '', { mode: 0o600 })
    const env = { PATH: HOOK_PATH, HOME: dir, IPMOVE_CONFIG: config }
    const policy = await start(file, ['aws', 'policy', '--mode', 'eip'], env)
    expect(policy.stderr).toBe('')
    expect(JSON.parse(policy.stdout).Statement.length).toBeGreaterThan(0)
    const bad = await start(file, ['move', '--ip', 'not-an-ip'], env)
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/^ipmove: error: --ip "not-an-ip" is not an IP address/)
  })

  it('says the OS keyring needs the npm package: the native module is not inside', async () => {
    const file = installed('keyring')
    const run = await start(file, ['credentials', 'delete', 'ovh'], { PATH: HOOK_PATH, HOME: dir })
    expect(run.code).toBe(2)
    expect(run.stderr).toMatch(/the optional module @napi-rs\/keyring is not installed/)
  })
})
