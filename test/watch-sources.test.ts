/**
 * `ipmove watch` following a source instead of its own probes, for real
 * (timers, the source, the converge core) against the in-memory cloud and
 * address driver. The command source here runs `sh -c 'exit $(cat FILE)'`
 * (an argv: sh is the command under test's choice, not ipmove's), so a test
 * says hold, do not hold or unknown by writing 0, 1 or 2 to a file.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { WatchDaemon } from '../src/watch/daemon.js'
import { renderSnapshot } from '../src/watch/snapshot.js'
import { FakeProvider } from './helpers/fake-provider.js'
import { memoryDaemon, until, webWatchConfig } from './helpers/watch-daemon.js'

let dir: string
let daemon: WatchDaemon | undefined
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ipmove-sources-'))
})
afterEach(async () => {
  await daemon?.stop()
  daemon = undefined
  rmSync(dir, { recursive: true, force: true })
})

const file = (name: string) => join(dir, name)
/** What the command source answers next: 0 hold, 1 do not hold, 2 unknown. */
const say = (code: 0 | 1 | 2) => writeFileSync(file('wish'), `${code}\n`)

const config = (watch: string, extra = '') => webWatchConfig(dir, `${watch}\n${extra}`)

const commandWatch = (extra = '') =>
  config(
    `source = command
command = ["sh", "-c", "exit $(cat ${file('wish')})"]
command-interval = 0.05
api-interval = 0.2
dwell = 0.1
max-moves = 100`,
    extra,
  )

function start(watched = commandWatch(), cloud = new FakeProvider({ holder: 'web-2' })) {
  const started = memoryDaemon(file('ipmove.conf'), watched, cloud)
  daemon = started.daemon
  return started
}

const role = () => daemon!.watcher('web')!.role
const writes = (cloud: FakeProvider) => cloud.calls.filter((c) => c.startsWith('write')).length

describe('ipmove watch following a source', () => {
  it('source = command: hold claims; a move behind its back is re-asserted; do not hold drops the address and never writes', async () => {
    say(1)
    const { cloud, driver, log, ready } = start()
    await ready
    await until('the first answer', () => daemon!.snapshot().ips[0]!.source?.wish === 'release')
    await new Promise((r) => setTimeout(r, 300))
    expect(writes(cloud)).toBe(0)
    expect(driver.has(cloud.ip, 'eth0')).toBe(false)

    say(0)
    await until('master', () => role() === 'master' && cloud.holder?.id === 'self')
    expect(driver.has(cloud.ip, 'eth0')).toBe(true)
    expect(writes(cloud)).toBe(1)

    // A stale notify: another node's hook moved the IP last. The next read of the API (0.2 s) re-asserts.
    cloud.holder = cloud.host('web-2')
    const moved = Date.now()
    await until('re-asserted', () => cloud.holder?.id === 'self', 2000)
    expect(Date.now() - moved).toBeLessThan(1500)
    expect(writes(cloud)).toBe(2)
    expect(log.lines.join('\n')).toMatch(/exit 0; the API routes the IP to web-2/)

    say(1)
    await until('backup', () => role() === 'backup' && !driver.has(cloud.ip, 'eth0'))
    await new Promise((r) => setTimeout(r, 300))
    // Yielding never touches the API: the other node's daemon moves the IP.
    expect(writes(cloud)).toBe(2)
    expect(cloud.holder?.id).toBe('self')
    const [snap] = daemon!.snapshot().ips
    expect(snap!.source).toMatchObject({
      kind: 'command',
      wish: 'release',
      why: expect.stringContaining('exit 1'),
    })
    expect(renderSnapshot(daemon!.snapshot()).join('\n')).toMatch(
      /source command: release, command sh -c .* exit 1/,
    )
  })

  it('unknown (another exit code, a timeout) claims nothing, keeps the address while the API routes here, drops it when not', async () => {
    say(0)
    const { cloud, driver, ready } = start(commandWatch('command-timeout = 0.5'))
    await ready
    await until('master', () => role() === 'master' && driver.has(cloud.ip, 'eth0'))
    say(2)
    await until('unknown', () => daemon!.snapshot().ips[0]!.source?.wish === 'unknown')
    await new Promise((r) => setTimeout(r, 400))
    expect(role()).toBe('master')
    expect(driver.has(cloud.ip, 'eth0')).toBe(true)

    const before = writes(cloud)
    cloud.holder = cloud.host('web-2')
    await until('backup', () => role() === 'backup' && !driver.has(cloud.ip, 'eth0'))
    await new Promise((r) => setTimeout(r, 400))
    expect(writes(cloud)).toBe(before)
    expect(cloud.holder?.id).toBe('web-2')
  })

  it('a command that outlives command-timeout is killed and counts as unknown', async () => {
    const watched = config(`source = command
command = ["sleep", "5"]
command-interval = 0.05
command-timeout = 0.1
api-interval = 0.2`)
    const { cloud, ready } = start(watched)
    await ready
    await until('an answer', () => daemon!.snapshot().ips[0]!.source?.why !== null)
    expect(daemon!.snapshot().ips[0]!.source).toMatchObject({
      wish: 'unknown',
      why: 'command sleep 5: no end within 100 ms',
    })
    expect(writes(cloud)).toBe(0)
  })
})

describe('the watch config chooses the source', () => {
  it('source = command reads its keys; no probes are needed or allowed', () => {
    say(0)
    const [web] = commandWatch()
    expect(web!.source).toEqual({
      kind: 'command',
      settings: { argv: ['sh', '-c', `exit $(cat ${file('wish')})`], intervalMs: 50, timeoutMs: 5000 },
    })
    expect(web!.probes).toEqual([])
    expect(() =>
      commandWatch(`[watch.web.probe.peer]
check = peer
kind = icmp
target = 192.0.2.11`),
    ).toThrow(
      /\[watch\.web\.probe\.peer\]: probes decide only with source = probes; \[watch\.web\] follows source = command/,
    )
  })

  it('refuses an unknown source, a missing command, another source’s keys', () => {
    expect(() => config('source = vrrpd')).toThrow(
      /\[watch\.web\] source: expected probes or command.*, got "vrrpd"/,
    )
    expect(() => config('source = command')).toThrow(/needs command = a JSON array/)
    expect(() => config('source = command\ncommand = ["true"]\ncommand-interval = 0.001')).toThrow(
      /command-interval: .*interval must be between/,
    )
    expect(() =>
      config('command = ["true"]\n[watch.web.probe.p]\ncheck = peer\nkind = icmp\ntarget = 192.0.2.11'),
    ).toThrow(/unknown key "command"/)
  })

  it('source = probes is the default, as before', () => {
    const [web] = config('', '[watch.web.probe.p]\ncheck = peer\nkind = icmp\ntarget = 192.0.2.11')
    expect(web!.source).toEqual({ kind: 'probes', settings: {} })
    expect(web!.probes.map((p) => p.check)).toEqual(['peer', 'self'])
  })
})
