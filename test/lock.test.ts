import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process'
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ExitCode } from '../src/exit-codes.js'
import { isSuperseded, withIpLock, withLatestIntent } from '../src/lock.js'
import { MemoryLogger } from '../src/output.js'
import { BIN, requireBuild } from './helpers/cli.js'
import { failure } from './helpers/errors.js'
import { describeRoot, exec } from './rig/netns.js'

/** Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. */
function startOf(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!
}
const ownStart = () => startOf(process.pid)

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'ipmove-lock-'))
  const log = new MemoryLogger()
  const options = (ms = 5_000) => ({ env: { IPMOVE_LOCK_DIR: dir }, signal: AbortSignal.timeout(ms), log })
  return { dir, log, options }
}

describe('withIpLock', () => {
  it('runs two holders of one IP one after the other, and says it waits', async () => {
    const { log, options } = setup()
    const events: string[] = []
    const first = withIpLock('203.0.113.10/32', options(), async () => {
      events.push('first in')
      await sleep(150)
      events.push('first out')
    })
    await sleep(20)
    const second = withIpLock('203.0.113.10/32', options(), async () => {
      events.push('second in')
    })
    await Promise.all([first, second])
    expect(events).toEqual(['first in', 'first out', 'second in'])
    expect(log.lines).toEqual([`waiting for another ipmove (pid ${process.pid}) working on 203.0.113.10/32`])
  })

  it('lets different IPs run side by side', async () => {
    const { options } = setup()
    const events: string[] = []
    await Promise.all(
      ['203.0.113.10/32', '203.0.113.11/32'].map((ip) =>
        withIpLock(ip, options(), async () => {
          events.push(`${ip} in`)
          await sleep(50)
          events.push(`${ip} out`)
        }),
      ),
    )
    expect(events.slice(0, 2).sort()).toEqual(['203.0.113.10/32 in', '203.0.113.11/32 in'])
  })

  it('takes over a lock left by a process that is gone', async () => {
    const { dir, options } = setup()
    // A real pid that no longer exists: a child that has exited.
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    }).stdout
    writeFileSync(join(dir, '203.0.113.10_32.lock.1'), dead)
    const result = await withIpLock('203.0.113.10/32', options(), async () => 'ran')
    expect(result).toBe('ran')
  })

  it('takes over a lock whose pid now names another process (a reused pid: its start time differs)', async () => {
    const { dir, options } = setup()
    writeFileSync(join(dir, '203.0.113.10_32.lock.1'), `${process.ppid} ${Number(startOf(process.ppid)) + 1}`)
    const result = await withIpLock('203.0.113.10/32', options(200), async () => 'ran')
    expect(result).toBe('ran')
  })

  it('waits for a holder whose pid and start time still match, and for one written without a start time', async () => {
    const { dir, options } = setup()
    for (const mark of [`${process.ppid} ${startOf(process.ppid)}`, String(process.ppid)]) {
      writeFileSync(join(dir, '203.0.113.10_32.lock.1'), mark)
      expect((await failure(withIpLock('203.0.113.10/32', options(200), async () => 'never'))).kind).toBe(
        'busy',
      )
    }
  })

  it('gives up as busy (exit 6) when the holder outlasts the wait, naming it', async () => {
    const { dir, options } = setup()
    writeFileSync(join(dir, '203.0.113.10_32.lock.1'), String(process.ppid))
    const error = await failure(withIpLock('203.0.113.10/32', options(200), async () => 'never'))
    expect(error.kind).toBe('busy')
    expect(error.message).toBe(`another ipmove (pid ${process.ppid}) is still working on 203.0.113.10/32`)
  })

  it('marks the lock free afterwards, even when the work fails', async () => {
    const { dir, options } = setup()
    const lockFiles = () => readdirSync(dir).map((name) => [name, readFileSync(join(dir, name), 'utf8')])
    await expect(
      withIpLock('203.0.113.10/32', options(), async () => {
        expect(lockFiles()).toEqual([['203.0.113.10_32.lock.1', `${process.pid} ${ownStart()}`]])
        throw new Error('boom')
      }),
    ).rejects.toThrow('boom')
    expect(lockFiles()).toEqual([['203.0.113.10_32.lock.2', 'free']])
  })
})

describe('withLatestIntent', () => {
  const KEY = '203.0.113.10/32'
  const MOVE = 'move to this host on eth0'
  const RELEASE = 'release from eth0'
  const intent = (options: ReturnType<ReturnType<typeof setup>['options']>, what = MOVE) => ({
    ...options,
    intent: what,
  })

  /** Hold the lock of KEY until `release` is called. */
  function holdLock(options: Parameters<typeof withIpLock>[1]) {
    let release = () => {}
    const released = new Promise<void>((resolve) => {
      release = resolve
    })
    const held = withIpLock(KEY, options, () => released)
    return { held, release }
  }

  it('runs only the newest of the calls that queued behind a holder; the others touch nothing', async () => {
    const { options, log } = setup()
    const holder = holdLock(options())
    const ran: string[] = []
    const calls: Promise<unknown>[] = []
    for (const name of ['first', 'second', 'third']) {
      calls.push(withLatestIntent(KEY, intent(options()), async () => ran.push(name)))
      // Each call takes its arrival number synchronously, before its first wait.
      await sleep(10)
    }
    await sleep(200)
    expect(ran).toEqual([])
    holder.release()
    await holder.held
    const results = await Promise.all(calls)
    expect(results.map(isSuperseded)).toEqual([true, true, false])
    expect(ran).toEqual(['third'])
    expect(log.lines.filter((l) => l.includes('superseded'))).toHaveLength(2)
  })

  it('lets a call that already holds the lock finish its work when a newer one wants the same', async () => {
    const { options } = setup()
    const events: string[] = []
    const older = withLatestIntent(KEY, intent(options()), async (standDown) => {
      events.push('older in')
      await sleep(300)
      events.push(standDown.signal.aborted ? 'older asked to stand down' : 'older out')
    })
    await sleep(30)
    const newer = withLatestIntent(KEY, intent(options()), async () => {
      events.push('newer in')
    })
    expect((await Promise.all([older, newer])).map(isSuperseded)).toEqual([false, false])
    expect(events).toEqual(['older in', 'older out', 'newer in'])
  })

  it('asks a holder to stand down, within moments, when a newer call wants something else', async () => {
    const { options } = setup()
    const events: string[] = []
    let arrived = 0
    const older = withLatestIntent(KEY, intent(options()), async (standDown) => {
      events.push('older in')
      // Work that heeds the request at its safe points, as reconcile does between polls.
      await sleep(5_000, undefined, { signal: standDown.signal }).catch(() => {})
      events.push(`older stood down after ${Date.now() - arrived} ms for: ${standDown.newer}`)
    })
    await sleep(30)
    arrived = Date.now()
    const newer = withLatestIntent(KEY, intent(options(), RELEASE), async () => {
      events.push('newer in')
    })
    expect((await Promise.all([older, newer])).map(isSuperseded)).toEqual([false, false])
    expect(events[0]).toBe('older in')
    expect(events[1]).toMatch(/^older stood down after \d+ ms for: release from eth0$/)
    expect(Number(/after (\d+) ms/.exec(events[1]!)?.[1])).toBeLessThan(1_000)
    expect(events[2]).toBe('newer in')
  })

  it('does not ask a holder to stand down when the newest call wants the same again', async () => {
    const { options } = setup()
    let asked = false
    const older = withLatestIntent(KEY, intent(options()), async (standDown) => {
      await sleep(400)
      asked = standDown.signal.aborted
    })
    await sleep(30)
    // A release, then a move like the holder's: the release stands down unrun, the holder works on.
    const release = withLatestIntent(KEY, intent(options(), RELEASE), async () => 'released')
    const again = withLatestIntent(KEY, intent(options()), async () => 'moved again')
    const results = await Promise.all([older, release, again])
    expect(results.map(isSuperseded)).toEqual([false, true, false])
    expect(results[2]).toBe('moved again')
    expect(asked).toBe(false)
  })

  it('keeps one arrival number per IP on disk, growing across calls', async () => {
    const { dir, options } = setup()
    for (let i = 0; i < 3; i++) await withLatestIntent(KEY, intent(options()), async () => {})
    expect(readdirSync(dir).filter((n) => n.includes('.seq.'))).toEqual(['203.0.113.10_32.seq.3'])
  })
})

describe('the lock directory', () => {
  const lock = (dir: string, ms = 5_000) =>
    withIpLock(
      '203.0.113.10/32',
      { env: { IPMOVE_LOCK_DIR: dir }, signal: AbortSignal.timeout(ms), log: new MemoryLogger() },
      async () => 'ran',
    )

  it('is refused when it is a symlink, even to a directory of ours', async () => {
    const real = mkdtempSync(join(tmpdir(), 'ipmove-lock-'))
    const link = `${real}-link`
    symlinkSync(real, link)
    const error = await failure(lock(link))
    expect(error.kind).toBe('usage')
    expect(error.message).toBe(
      `lock directory: ${link} is a symlink, which ipmove does not follow; set IPMOVE_LOCK_DIR to the real directory`,
    )
    expect(readdirSync(real)).toEqual([])
  })

  it('is refused when others may write it: a planted lock blocks nothing, a planted symlink is not written through', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ipmove-lock-'))
    chmodSync(dir, 0o1777)
    const victim = join(mkdtempSync(join(tmpdir(), 'ipmove-victim-')), 'victim')
    writeFileSync(victim, 'precious')
    // Another user's plants: locks of a live process under every name, symlinks where ours would go.
    for (const name of ['203.0.113.10_32.lock', '203.0.113.10_32.lock.1']) {
      writeFileSync(join(dir, name), String(process.ppid))
    }
    symlinkSync(victim, join(dir, `203.0.113.10_32.lock.${process.pid}`))
    const started = Date.now()
    const error = await failure(lock(dir))
    expect(error.kind).toBe('usage')
    expect(error.message).toBe(
      `lock directory: ${dir} is writable by others (mode 01777); run: chmod 700 ${dir}, or set IPMOVE_LOCK_DIR`,
    )
    expect(Date.now() - started).toBeLessThan(1_000)
    expect(readFileSync(victim, 'utf8')).toBe('precious')
  })

  it('under /proc fails at once (exit 2) instead of spinning', async () => {
    const started = Date.now()
    for (const dir of ['/proc/ipmove-test', `/proc/${process.pid}`]) {
      const error = await failure(lock(dir, 2_000))
      expect(error.kind).toBe('usage')
      expect(error.message).toMatch(
        `lock directory: cannot use ${dir} (${dir === '/proc/ipmove-test' ? 'ENOENT' : ''}`,
      )
      expect(error.message).toMatch(
        /\); set IPMOVE_LOCK_DIR to a private directory on a writable local file system$/,
      )
    }
    expect(Date.now() - started).toBeLessThan(1_000)
  })

  it('that cannot be created is exit 2, not an internal error', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'ipmove-lock-')), 'file')
    writeFileSync(file, '')
    const error = await failure(lock(join(file, 'locks')))
    expect(error.kind).toBe('usage')
    expect(error.message).toMatch(
      /^lock directory: cannot use .*\/file\/locks \(ENOTDIR\); set IPMOVE_LOCK_DIR/,
    )
  })

  it('is created private (mode 700) with its parents', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'ipmove-lock-')), 'a', 'b')
    expect(await lock(dir)).toBe('ran')
    expect(statSync(dir).mode & 0o777).toBe(0o700)
  })
})

describeRoot('the lock directory, as root and as another user', () => {
  const lock = (dir: string) =>
    withIpLock(
      '203.0.113.10/32',
      { env: { IPMOVE_LOCK_DIR: dir }, signal: AbortSignal.timeout(5_000), log: new MemoryLogger() },
      async () => 'ran',
    )

  it('is refused (exit 2) when someone else owns it, naming what to configure', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ipmove-lock-'))
    chownSync(dir, 65534, 65534)
    const error = await failure(lock(dir))
    expect(error.kind).toBe('usage')
    expect(error.message).toBe(
      `lock directory: ${dir} is owned by uid 65534, not by you (uid ${process.geteuid?.()}); set IPMOVE_LOCK_DIR to a directory of yours`,
    )
  })

  it('of a user without XDG_RUNTIME_DIR, planted in TMPDIR by another, is refused at once by the CLI', async () => {
    requireBuild()
    const tmp = mkdtempSync(join(tmpdir(), 'ipmove-shared-tmp-'))
    chmodSync(tmp, 0o1777)
    // Another user (root here) got there first, under the old name and the new, with live locks.
    for (const name of ['ipmove', 'ipmove-65534']) {
      mkdirSync(join(tmp, name), { mode: 0o1777 })
      chmodSync(join(tmp, name), 0o1777)
      for (const lockName of ['192.0.2.52_32.lock', '192.0.2.52_32.lock.1']) {
        writeFileSync(join(tmp, name, lockName), String(process.pid))
      }
    }
    const started = Date.now()
    const run = await exec(
      [
        'setpriv',
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        process.execPath,
        BIN,
        'move',
        '--provider',
        'local',
        '--ip',
        '192.0.2.52',
        '--interface',
        'lo',
        '--timeout',
        '20',
      ],
      {
        env: { HOME: '/nonexistent', TMPDIR: tmp, XDG_RUNTIME_DIR: '', IPMOVE_LOCK_DIR: '' },
        timeoutMs: 25_000,
      },
    )
    expect(run.code).toBe(ExitCode.USAGE)
    expect(run.stderr).toBe(
      `ipmove: error: lock directory: ${tmp}/ipmove-65534 is owned by uid 0, not by you (uid 65534); set IPMOVE_LOCK_DIR to a directory of yours\n`,
    )
    // At once, not after --timeout: the bound is half of it. It was 2.5 s against a 3 s timeout, and the
    // CLI's start alone took 6 s with two other suites running.
    expect(Date.now() - started).toBeLessThan(10_000)
  })
})

/** A bundled test/rig/lock-worker.ts process, read line by line. */
class Worker {
  readonly child: ChildProcessWithoutNullStreams
  private readonly lines: string[] = []
  private wake: (() => void) | undefined
  private exited = false

  constructor(script: string, args: string[]) {
    this.child = spawn(process.execPath, [script, ...args])
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      this.lines.push(line)
      this.wake?.()
    })
    this.child.on('exit', () => {
      this.exited = true
      this.wake?.()
    })
  }

  async next(): Promise<string> {
    while (this.lines.length === 0) {
      if (this.exited) throw new Error(`worker ${this.child.pid} exited`)
      await new Promise<void>((wake) => {
        this.wake = wake
      })
    }
    return this.lines.shift() as string
  }
}

describe('withIpLock across processes', () => {
  let script: string
  beforeAll(async () => {
    script = join(mkdtempSync(join(tmpdir(), 'ipmove-lock-worker-')), 'lock-worker.mjs')
    const rig = join(dirname(fileURLToPath(import.meta.url)), 'rig')
    await build({
      entryPoints: [join(rig, 'lock-worker.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outfile: script,
      logLevel: 'warning',
    })
  })
  const racers: Worker[] = []
  afterAll(() => {
    for (const racer of racers) racer.child.kill()
  })

  it("lets exactly one of 20 processes at a time take over a dead holder's lock, 10 rounds", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ipmove-lock-race-'))
    const marks = mkdtempSync(join(tmpdir(), 'ipmove-lock-marks-'))
    const args = [dir, marks, '203.0.113.10/32']
    for (let i = 0; i < 20; i++) racers.push(new Worker(script, ['race', ...args]))
    expect(await Promise.all(racers.map((racer) => racer.next()))).toEqual(Array(20).fill('ready'))
    const verdicts: string[] = []
    for (let round = 0; round < 10; round++) {
      // A holder killed while it holds the lock: its lock stays behind.
      const holder = new Worker(script, ['hold', ...args])
      expect(await holder.next()).toBe('held')
      holder.child.kill('SIGKILL')
      await new Promise((done) => holder.child.once('exit', done))
      const at = Date.now() + 300
      for (const racer of racers) racer.child.stdin.write(`go ${at}\n`)
      verdicts.push(...(await Promise.all(racers.map((racer) => racer.next()))))
    }
    // "overlap": two processes held the lock at once; "lost": a holder's lock was deleted under it.
    expect(verdicts.filter((verdict) => verdict !== 'done')).toEqual([])
    expect(verdicts).toHaveLength(200)
  }, 60_000)
})
