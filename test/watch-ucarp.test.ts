/**
 * `source = ucarp`: the daemon told its wish through the control socket, as
 * ucarp's scripts do with `ipmove status --watch --tell` (the real ucarp and
 * the built CLI: test/ucarp.test.ts). Here the daemon runs for real (timers,
 * the converge core) on the in-memory cloud and address driver.
 */
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { WatchDaemon } from '../src/watch/daemon.js'
import { recalledWish, recordWish, wishFile } from '../src/watch/sources/ucarp.js'
import { failureSync } from './helpers/errors.js'
import { FakeProvider } from './helpers/fake-provider.js'
import { memoryDaemon, until, webWatchConfig } from './helpers/watch-daemon.js'

let dir: string
let daemon: WatchDaemon | undefined
const lockDirBefore = process.env.IPMOVE_LOCK_DIR
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ipmove-ucarp-'))
  // The source finds recorded wishes in the daemon's lock directory.
  process.env.IPMOVE_LOCK_DIR = dir
})
afterEach(async () => {
  await daemon?.stop()
  daemon = undefined
  if (lockDirBefore === undefined) delete process.env.IPMOVE_LOCK_DIR
  else process.env.IPMOVE_LOCK_DIR = lockDirBefore
  rmSync(dir, { recursive: true, force: true })
})

const watched = () =>
  webWatchConfig(
    dir,
    `source = ucarp
api-interval = 0.2
dwell = 0.1
max-moves = 100`,
  )

function start(cloud = new FakeProvider({ holder: 'web-2' })) {
  const started = memoryDaemon(join(dir, 'ipmove.conf'), watched(), cloud)
  daemon = started.daemon
  return started
}

const role = () => daemon!.watcher('web')!.role
const writes = (cloud: FakeProvider) => cloud.calls.filter((c) => c.startsWith('write')).length
const source = () => daemon!.snapshot().ips[0]!.source

describe('source = ucarp', () => {
  it('waits for a script; hold claims and re-asserts a stale move; release drops the address, never writing', async () => {
    const { cloud, driver, ready } = start()
    await ready
    await new Promise((r) => setTimeout(r, 300))
    expect(source()).toMatchObject({ kind: 'ucarp', wish: 'unknown' })
    expect(writes(cloud)).toBe(0)

    daemon!.tell('web', 'hold')
    await until(
      'master',
      () => role() === 'master' && cloud.holder?.id === 'self' && driver.has(cloud.ip, 'eth0'),
    )
    expect(source()).toMatchObject({ wish: 'hold', why: "ucarp's script says hold" })

    // The other node's stale up script moved the IP; ucarp runs nothing more here, the daemon re-asserts.
    cloud.holder = cloud.host('web-2')
    await until('re-asserted', () => cloud.holder?.id === 'self', 2000)
    expect(writes(cloud)).toBe(2)

    daemon!.tell('web', 'release')
    await until('backup', () => role() === 'backup' && !driver.has(cloud.ip, 'eth0'))
    await new Promise((r) => setTimeout(r, 300))
    expect(writes(cloud)).toBe(2)
  })

  it('a release while the claim waits on a slow API operation stops the claim at its next poll: no second write', async () => {
    const { cloud, driver, log, ready } = start(new FakeProvider({ holder: 'web-2', settleReads: 1000 }))
    await ready
    daemon!.tell('web', 'hold')
    await until('our write', () => writes(cloud) === 1)
    const told = Date.now()
    daemon!.tell('web', 'release')
    await until(
      'the claim to stand down',
      () => /claim stopped: withdrawn: the source says release now/.test(log.lines.join('\n')),
      2000,
    )
    expect(Date.now() - told).toBeLessThan(1000)
    await until('backup, the address dropped', () => role() === 'backup' && !driver.has(cloud.ip, 'eth0'))
    expect(cloud.operation).toMatchObject({ ours: true, to: { id: 'self' } })
    expect(writes(cloud)).toBe(1)
  })

  it('starts from the wish recorded before it started (a restart while ucarp stays master)', async () => {
    recordWish(dir, 'web', 'hold')
    const { cloud, ready } = start()
    await ready
    await until('master', () => role() === 'master' && cloud.holder?.id === 'self')
    expect(source()!.why).toMatch(/^ucarp's last script said hold \(\d+ s before this start\)$/)
  })

  it('refuses to tell an IP not watched (not found), or one that follows another source (usage)', async () => {
    const { ready } = start()
    await ready
    expect(failureSync(() => daemon!.tell('db', 'hold')).kind).toBe('not-found')
    await daemon!.stop()
    const [web] = webWatchConfig(dir, 'source = command\ncommand = ["true"]')
    const other = memoryDaemon(join(dir, 'ipmove.conf'), [web!])
    daemon = other.daemon
    await other.ready
    const error = failureSync(() => daemon!.tell('web', 'hold'))
    expect([error.kind, error.message]).toEqual([
      'usage',
      'web follows source = command, which is not told: --tell is for source = ucarp',
    ])
  })
})

describe('the recorded wish', () => {
  it('is written whole and read back; anything else, or a symlink, is no wish', () => {
    expect(recalledWish(dir, 'web')).toBeUndefined()
    recordWish(dir, 'web', 'release')
    expect(readFileSync(wishFile(dir, 'web'), 'utf8')).toBe('release\n')
    expect(recalledWish(dir, 'web')).toMatchObject({ wish: 'release' })
    writeFileSync(wishFile(dir, 'db'), 'maybe\n')
    expect(recalledWish(dir, 'db')).toBeUndefined()
    symlinkSync(wishFile(dir, 'web'), wishFile(dir, 'link'))
    expect(recalledWish(dir, 'link')).toBeUndefined()
  })
})
