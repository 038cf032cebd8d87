/**
 * `ipmove status --watch`, `--clear-flap` and `--tell`, the built CLI against
 * a real control socket served by this process (the daemon's own module).
 */
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { notFound } from '../src/errors.js'
import { ExitCode } from '../src/exit-codes.js'
import { MemoryLogger } from '../src/output.js'
import { type ControlServer, startControlServer } from '../src/watch/control.js'
import { renderSnapshot } from '../src/watch/snapshot.js'
import { ipmove, isolatedEnv, json, requireBuild, SINGLE_FILE } from './helpers/cli.js'
import { sampleSnapshot } from './helpers/snapshot.js'
import { AS_NOBODY, describeRoot, exec } from './rig/netns.js'

let dir: string
let socket: string
let server: ControlServer
const cleared: string[] = []
const told: string[] = []

beforeAll(async () => {
  requireBuild()
  dir = mkdtempSync(join(tmpdir(), 'ipmove-watch-status-'))
  socket = join(dir, 'run', 'watch.sock')
  server = await startControlServer({
    path: socket,
    log: new MemoryLogger(),
    handlers: {
      status: () => sampleSnapshot(),
      clearFlap(name) {
        if (name !== 'web') throw notFound(`${name} is not watched`)
        cleared.push(name)
      },
      tell(name, wish) {
        if (name !== 'web') throw notFound(`${name} is not watched`)
        told.push(`${name}=${wish}`)
      },
    },
  })
})
afterAll(async () => {
  await server.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('ipmove status --watch', () => {
  it('prints the daemon’s state as lines', async () => {
    const run = await ipmove(['status', '--watch', '--socket', socket], isolatedEnv())
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    // The daemon's snapshot carries its own clock, so the lines are exactly the renderer's.
    expect(run.stdout).toBe(`${renderSnapshot(sampleSnapshot()).join('\n')}\n`)
  })

  it('gives the whole snapshot with --json, and finds the socket in IPMOVE_LOCK_DIR', async () => {
    const run = await ipmove(
      ['status', '--watch', '--json'],
      isolatedEnv({ IPMOVE_LOCK_DIR: join(dir, 'run') }),
    )
    expect(run.code).toBe(0)
    expect(json(run)).toEqual({ ok: true, watch: sampleSnapshot() })
  })

  it('narrows to one IP by name or address, and says when it is not watched (exit 4)', async () => {
    const byAddress = await ipmove(
      ['status', '--socket', socket, '--ip', '203.0.113.10', '--json'],
      isolatedEnv(),
    )
    expect((json(byAddress).watch as { ips: unknown[] }).ips).toHaveLength(1)
    const other = await ipmove(['status', '--watch', '--socket', socket, '--ip', 'db'], isolatedEnv())
    expect(other.code).toBe(ExitCode.NOT_FOUND)
    expect(other.stderr).toBe('ipmove: error: ipmove watch does not watch db\n')
  })

  it('clears an anti-flap stop, and refuses a name the daemon does not watch (exit 4)', async () => {
    const run = await ipmove(['status', '--socket', socket, '--clear-flap', 'web', '--json'], isolatedEnv())
    expect(json(run)).toEqual({ ok: true, cleared: 'web' })
    expect(cleared).toEqual(['web'])
    const unknown = await ipmove(['status', '--socket', socket, '--clear-flap', 'db'], isolatedEnv())
    expect(unknown.code).toBe(ExitCode.NOT_FOUND)
    expect(unknown.stderr).toBe('ipmove: error: ipmove watch: db is not watched\n')
  })

  it('tells the daemon a wish (source = ucarp), recorded beside the socket; refuses a bad one (exit 2) or a name not watched (exit 4)', async () => {
    const run = await ipmove(['status', '--socket', socket, '--tell', 'web=hold', '--json'], isolatedEnv())
    expect(json(run)).toEqual({ ok: true, told: 'web', wish: 'hold', delivered: true })
    expect(told).toEqual(['web=hold'])
    expect(readFileSync(join(dir, 'run', 'watch-web.wish'), 'utf8')).toBe('hold\n')
    const bad = await ipmove(['status', '--socket', socket, '--tell', 'web=master'], isolatedEnv())
    expect(bad.code).toBe(ExitCode.USAGE)
    expect(bad.stderr).toBe('ipmove: error: --tell takes NAME=hold or NAME=release, got "web=master"\n')
    const unknown = await ipmove(['status', '--socket', socket, '--tell', 'db=release'], isolatedEnv())
    expect(unknown.code).toBe(ExitCode.NOT_FOUND)
    expect(told).toEqual(['web=hold'])
  })

  it('with no daemon running, --tell records the wish for its start and exits 0 with a warning', async () => {
    const idle = join(dir, 'idle')
    mkdirSync(idle, { mode: 0o700 })
    const none = join(idle, 'watch.sock')
    const run = await ipmove(['status', '--socket', none, '--tell', 'web=release'], isolatedEnv())
    expect(run.code, run.stderr).toBe(0)
    expect(run.stderr).toBe(
      `ipmove: warning: no ipmove watch is running: nothing listens on ${none}: web=release is recorded for when it starts\n`,
    )
    expect(readFileSync(join(idle, 'watch-web.wish'), 'utf8')).toBe('release\n')
  })

  it('says no daemon runs when nothing listens (exit 4)', async () => {
    const none = join(dir, 'none.sock')
    const run = await ipmove(['status', '--watch', '--socket', none, '--json'], isolatedEnv())
    expect(run.code).toBe(ExitCode.NOT_FOUND)
    expect(json(run)).toMatchObject({
      ok: false,
      error: { code: 'NOT_FOUND', message: `no ipmove watch is running: nothing listens on ${none}` },
    })
  })
})

describeRoot('ipmove status --watch as a user who is not root', () => {
  it('is refused by the socket’s mode (exit 3), even through directories it may enter', async () => {
    chmodSync(dir, 0o755)
    chmodSync(join(dir, 'run'), 0o755)
    // nobody runs its own copy of the single file: the checkout, or the CLI under test, may be private.
    const cli = join(dir, 'ipmove')
    copyFileSync(SINGLE_FILE, cli)
    chmodSync(cli, 0o755)
    try {
      const run = await exec([...AS_NOBODY, process.execPath, cli, 'status', '--watch', '--socket', socket], {
        env: { HOME: '/nonexistent', IPMOVE_LOCK_DIR: '' },
      })
      expect(run.code).toBe(ExitCode.AUTH)
      expect(run.stderr).toBe(
        `ipmove: error: not allowed to talk to ipmove watch on ${socket}: run as root or as the daemon's user\n`,
      )
    } finally {
      chmodSync(join(dir, 'run'), 0o700)
    }
  })
})
