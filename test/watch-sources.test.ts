/**
 * `ipmove watch` following a source instead of its own probes, for real
 * (timers, the source, the converge core) against the in-memory cloud and
 * address driver. The command source here runs `sh -c 'exit $(cat FILE)'`
 * (an argv: sh is the command under test's choice, not ipmove's), so a test
 * says hold, do not hold or unknown by writing 0, 1 or 2 to a file.
 */
import { spawnSync } from 'node:child_process'
import {
  chownSync,
  closeSync,
  constants,
  mkdtempSync,
  openSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { WatchDaemon } from '../src/watch/daemon.js'
import { renderSnapshot } from '../src/watch/snapshot.js'
import { answerOf, parseFifoLine } from '../src/watch/sources/keepalived-fifo.js'
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
    await until('re-asserted', () => cloud.holder?.id === 'self', 5000)
    // Within api-interval (0.2 s) plus the move, with room for a loaded machine.
    expect(Date.now() - moved).toBeLessThan(3000)
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

  it('a claim in flight stops when the source stops saying hold, and takes back the address it added', async () => {
    say(1)
    // The API takes its time to finish the move: the claim is still polling when the source changes its mind.
    const { cloud, driver, log, ready } = start(
      commandWatch(),
      new FakeProvider({ holder: 'web-2', settleReads: 10_000 }),
    )
    await ready
    await until('backup', () => daemon!.snapshot().ips[0]!.source?.wish === 'release')
    say(0)
    await until('the move accepted', () => writes(cloud) === 1)
    say(1)
    await until('stopped', () =>
      log.lines.some((l) => l.includes('claim stopped: withdrawn: the source says release now')),
    )
    await new Promise((r) => setTimeout(r, 200))
    expect(role()).toBe('backup')
    expect(driver.has(cloud.ip, 'eth0')).toBe(false)
    expect(writes(cloud)).toBe(1)
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

/** A FIFO where keepalived would make it, and a writer that opens it as keepalived does (read-write, non-blocking). */
function fifo(name = 'notify.fifo', mode = 0o644) {
  const path = file(name)
  const made = spawnSync('mkfifo', ['-m', mode.toString(8), path])
  expect(made.status, made.stderr?.toString()).toBe(0)
  return path
}
function keepalived(path: string) {
  const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK)
  return {
    say: (...lines: string[]) => writeSync(fd, lines.map((l) => `${l}\n`).join('')),
    exit: () => closeSync(fd),
  }
}
const fifoWatch = (path: string, follow = 'keepalived-instance = VI_1', apiInterval = 0.2) =>
  `source = keepalived-fifo
keepalived-fifo = ${path}
${follow}
api-interval = ${apiInterval}
dwell = 0.1
max-moves = 100`

describe('source = keepalived-fifo', () => {
  it("reads keepalived's lines: instances, groups, every state; skips what is not a VRRP event", () => {
    expect(parseFifoLine('INSTANCE "VI_1" MASTER 100\n')).toEqual({
      type: 'INSTANCE',
      name: 'VI_1',
      state: 'MASTER',
      priority: 100,
    })
    expect(parseFifoLine('GROUP "VG_1" BACKUP 0')).toEqual({
      type: 'GROUP',
      name: 'VG_1',
      state: 'BACKUP',
      priority: 0,
    })
    expect(parseFifoLine('VS [192.168.201.15]:tcp:80 UP')).toBeUndefined()
    expect(parseFifoLine('RS [1.2.3.4]:tcp:80 [192.168.201.15]:tcp:80 DOWN')).toBeUndefined()
    const follow = { fifo: '/run/k.fifo', type: 'INSTANCE' as const, name: 'VI_1' }
    const wish = (line: string) => answerOf(parseFifoLine(line)!, follow, 0)
    expect(
      ['MASTER', 'MASTER_PRIORITY', 'BACKUP', 'BACKUP_PRIORITY', 'FAULT', 'STOP', 'DELETED'].map(
        (state) => wish(`INSTANCE "VI_1" ${state} 100`)?.wish,
      ),
    ).toEqual(['hold', 'hold', 'release', 'release', 'release', 'release', 'release'])
    expect(wish('INSTANCE "VI_1" MASTER_RX_LOWER_PRI 150')).toEqual({
      wish: 'hold',
      recheck: true,
      at: 0,
      why: 'keepalived: INSTANCE "VI_1" MASTER_RX_LOWER_PRI 150',
    })
    expect(wish('INSTANCE "VI_2" MASTER 100')).toBeUndefined()
    expect(wish('GROUP "VI_1" MASTER 0')).toBeUndefined()
    expect(parseFifoLine('INSTANCE "VI_1" {UNKNOWN} 100')).toBeUndefined()
    expect(wish('INSTANCE "VI_1" SOME_NEW_STATE 100')).toBeUndefined()
  })

  it('follows the events in order: MASTER claims, a stale move is re-asserted, BACKUP yields; keepalived gone → unknown', async () => {
    const path = fifo()
    const k = keepalived(path)
    k.say('INSTANCE "VI_1" BACKUP 150')
    const { cloud, driver, log, ready } = start(config(fifoWatch(path)))
    await ready
    await until('backup from the FIFO', () => daemon!.snapshot().ips[0]!.source?.wish === 'release')
    expect(writes(cloud)).toBe(0)

    // One write with several events: only the last for VI_1 stands (other instances and LVS lines skipped).
    k.say('INSTANCE "VI_1" MASTER 150', 'INSTANCE "VI_2" BACKUP 100', 'VS [192.0.2.1]:tcp:80 UP')
    await until(
      'master',
      () => role() === 'master' && cloud.holder?.id === 'self' && driver.has(cloud.ip, 'eth0'),
    )

    cloud.holder = cloud.host('web-2')
    await until('re-asserted within api-interval', () => cloud.holder?.id === 'self', 5000)

    const before = writes(cloud)
    k.say('INSTANCE "VI_1" BACKUP 150')
    await until('backup', () => role() === 'backup' && !driver.has(cloud.ip, 'eth0'))
    expect(writes(cloud)).toBe(before)

    k.exit()
    await until('unknown', () => daemon!.snapshot().ips[0]!.source?.wish === 'unknown')
    expect(daemon!.snapshot().ips[0]!.source?.why).toBe(`keepalived closed ${path}`)
    // A new keepalived writes to the same path: read again.
    const again = keepalived(path)
    again.say('INSTANCE "VI_1" MASTER 150')
    await until('master again', () => role() === 'master')
    again.exit()
    expect(log.lines.join('\n')).toContain('source: hold: keepalived: INSTANCE "VI_1" MASTER 150')
  })

  it('MASTER_RX_LOWER_PRI reads the API at once: the re-assert does not wait for api-interval', async () => {
    const path = fifo()
    const k = keepalived(path)
    k.say('INSTANCE "VI_1" MASTER 150')
    const { cloud, ready } = start(config(fifoWatch(path, undefined, 60)))
    await ready
    await until('master', () => role() === 'master' && cloud.holder?.id === 'self')
    // The other node moved the IP: with api-interval 60 s, only the event can bring a read now.
    cloud.holder = cloud.host('web-2')
    await new Promise((r) => setTimeout(r, 300))
    expect(cloud.holder?.id).toBe('web-2')
    k.say('INSTANCE "VI_1" MASTER_RX_LOWER_PRI 150')
    await until('re-asserted', () => cloud.holder?.id === 'self', 5000)
    k.exit()
  })

  it('waits for keepalived to create the FIFO; a group; two IPs on one FIFO both hear it', async () => {
    const path = file('later.fifo')
    const watched = webWatchConfig(
      dir,
      `${fifoWatch(path, 'keepalived-group = VG_1')}

[ip.db]
ip = 198.51.100.7
provider = ovh
interface = eth0

[watch.db]
${fifoWatch(path, 'keepalived-instance = VI_DB')}`,
    )
    const { cloud, ready } = start(watched)
    await ready
    await until('waiting', () =>
      daemon!.snapshot().ips.every((ip) => ip.source?.why === `waiting for keepalived to create ${path}`),
    )
    fifo('later.fifo')
    const k = keepalived(path)
    k.say('INSTANCE "VI_1" MASTER 100', 'GROUP "VG_1" MASTER 0', 'INSTANCE "VI_DB" BACKUP 100')
    await until(
      'both answered',
      () =>
        daemon!
          .snapshot()
          .ips.every((ip) => ip.source?.at !== null && ip.source?.why?.startsWith('keepalived')),
      3000,
    )
    const [web, db] = daemon!.snapshot().ips
    expect(web!.source).toMatchObject({ wish: 'hold', why: 'keepalived: GROUP "VG_1" MASTER 0' })
    expect(db!.source).toMatchObject({ wish: 'release', why: 'keepalived: INSTANCE "VI_DB" BACKUP 100' })
    await until('web master', () => daemon!.watcher('web')!.role === 'master')
    expect(cloud.holder?.id).toBe('self')
    k.exit()
  })

  it('a reload that restarts the IP knows the last state at once', async () => {
    const path = fifo()
    const k = keepalived(path)
    k.say('INSTANCE "VI_1" MASTER 100')
    const { ready } = start(config(fifoWatch(path)))
    await ready
    await until('master', () => role() === 'master')
    const report = await daemon!.reload(
      config(`${fifoWatch(path)}\napi-interval = 0.3`.replace('api-interval = 0.2\n', '')),
    )
    expect(report.restarted).toEqual(['web'])
    expect(daemon!.snapshot().ips[0]!.source).toMatchObject({ wish: 'hold' })
    k.exit()
  })

  it('refuses a FIFO others may write, and what is not a FIFO', async () => {
    const open = fifo('open.fifo', 0o666)
    writeFileSync(file('plain'), '')
    const { ready } = start(config(fifoWatch(open)))
    await ready
    await until('refused', () => /may write it/.test(daemon!.snapshot().ips[0]!.source?.why ?? ''))
    expect(daemon!.snapshot().ips[0]!.source?.wish).toBe('unknown')
    await daemon!.reload(config(fifoWatch(file('plain'))))
    await until('not a FIFO', () => daemon!.snapshot().ips[0]!.source?.why === `${file('plain')}: not a FIFO`)
    if (process.getuid?.() === 0) {
      const theirs = fifo('theirs.fifo')
      chownSync(theirs, 65534, 65534)
      await daemon!.reload(config(fifoWatch(theirs)))
      await until('not ours', () =>
        (daemon!.snapshot().ips[0]!.source?.why ?? '').endsWith(
          "owned by uid 65534, neither root nor this daemon's user",
        ),
      )
    }
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

  it('keepalived-fifo needs an absolute path and one instance or group', () => {
    expect(
      config('source = keepalived-fifo\nkeepalived-fifo = /run/k.fifo\nkeepalived-instance = VI_1')[0]!
        .source,
    ).toEqual({
      kind: 'keepalived-fifo',
      settings: { fifo: '/run/k.fifo', type: 'INSTANCE', name: 'VI_1' },
    })
    expect(() =>
      config('source = keepalived-fifo\nkeepalived-fifo = k.fifo\nkeepalived-instance = VI_1'),
    ).toThrow(/keepalived-fifo: expected an absolute path/)
    expect(() => config('source = keepalived-fifo\nkeepalived-fifo = /k.fifo')).toThrow(
      /needs either keepalived-instance = NAME/,
    )
    expect(() =>
      config(
        'source = keepalived-fifo\nkeepalived-fifo = /k.fifo\nkeepalived-instance = A\nkeepalived-group = B',
      ),
    ).toThrow(/needs either/)
    expect(() =>
      config('source = keepalived-fifo\nkeepalived-fifo = /k.fifo\nkeepalived-group = "VG 1"'),
    ).toThrow(/keepalived-group: expected keepalived's name/)
  })

  it('a source gets brakes of its own (no dwell, 10 moves a minute) and refuses what only probes use', () => {
    const [web] = config('source = command\ncommand = ["true"]')
    expect(web!.policy).toMatchObject({ dwellMs: 0, maxMoves: 10, moveWindowMs: 60_000 })
    expect(config('source = command\ncommand = ["true"]\ndwell = 3\nmax-moves = 2')[0]!.policy).toMatchObject(
      {
        dwellMs: 3000,
        maxMoves: 2,
      },
    )
    for (const key of ['preempt = yes', 'priority = 150', 'peer-deadtime = 2', 'profile = fast']) {
      expect(() => config(`source = command\ncommand = ["true"]\n${key}`)).toThrow(
        new RegExp(
          `\\[watch\\.web\\] ${key.split(' ')[0]}: is for source = probes; with source = command the source decides`,
        ),
      )
    }
  })

  it('source = probes is the default, as before', () => {
    const [web] = config('', '[watch.web.probe.p]\ncheck = peer\nkind = icmp\ntarget = 192.0.2.11')
    expect(web!.source).toEqual({ kind: 'probes', settings: {} })
    expect(web!.probes.map((p) => p.check)).toEqual(['peer', 'self'])
  })
})
