import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ExitCode } from '../src/errors.js'
import { withIpLock } from '../src/lock.js'
import { MemoryLogger } from '../src/output.js'
import { failure } from './helpers/errors.js'

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

  it('gives up as busy (exit 6) when the holder outlasts the wait, naming it', async () => {
    const { dir, options } = setup()
    writeFileSync(join(dir, '203.0.113.10_32.lock.1'), String(process.ppid))
    const error = await failure(withIpLock('203.0.113.10/32', options(200), async () => 'never'))
    expect(error.exitCode).toBe(ExitCode.BUSY)
    expect(error.message).toBe(`another ipmove (pid ${process.ppid}) is still working on 203.0.113.10/32`)
  })

  it('marks the lock free afterwards, even when the work fails', async () => {
    const { dir, options } = setup()
    const lockFiles = () => readdirSync(dir).map((name) => [name, readFileSync(join(dir, name), 'utf8')])
    await expect(
      withIpLock('203.0.113.10/32', options(), async () => {
        expect(lockFiles()).toEqual([['203.0.113.10_32.lock.1', String(process.pid)]])
        throw new Error('boom')
      }),
    ).rejects.toThrow('boom')
    expect(lockFiles()).toEqual([['203.0.113.10_32.lock.2', 'free']])
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
