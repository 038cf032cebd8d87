import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
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
    writeFileSync(join(dir, '203.0.113.10_32.lock'), dead)
    const result = await withIpLock('203.0.113.10/32', options(), async () => 'ran')
    expect(result).toBe('ran')
  })

  it('gives up as busy (exit 6) when the holder outlasts the wait, naming it', async () => {
    const { dir, options } = setup()
    writeFileSync(join(dir, '203.0.113.10_32.lock'), String(process.ppid))
    const error = await failure(withIpLock('203.0.113.10/32', options(200), async () => 'never'))
    expect(error.kind).toBe('busy')
    expect(error.message).toBe(`another ipmove (pid ${process.ppid}) is still working on 203.0.113.10/32`)
  })

  it('removes its lock file afterwards, even when the work fails', async () => {
    const { dir, options } = setup()
    await expect(
      withIpLock('203.0.113.10/32', options(), async () => {
        expect(existsSync(join(dir, '203.0.113.10_32.lock'))).toBe(true)
        throw new Error('boom')
      }),
    ).rejects.toThrow('boom')
    expect(readdirSync(dir)).toEqual([])
  })
})
