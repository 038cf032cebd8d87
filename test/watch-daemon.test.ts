/**
 * The watch loop for real (timers, command probes, the converge core) against
 * the in-memory cloud and address driver: no root, no network. Each probe is
 * `test -e FILE`, so a test kills a peer or this node's health by removing a file.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { WatchDaemon } from '../src/watch/daemon.js'
import { FakeProvider } from './helpers/fake-provider.js'
import { memoryDaemon, until, webWatchConfig } from './helpers/watch-daemon.js'

let dir: string
let daemon: WatchDaemon | undefined
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ipmove-watchd-'))
  for (const f of ['peer', 'self']) writeFileSync(join(dir, f), '')
})
afterEach(async () => {
  await daemon?.stop()
  daemon = undefined
  rmSync(dir, { recursive: true, force: true })
})

const file = (name: string) => join(dir, name)
const fileProbe = (check: string, name: string) => `[watch.web.probe.${name}]
check = ${check}
kind = command
argv = ["test", "-e", "${file(name)}"]
interval = 0.02
timeout = 0.5
`

function config(extra = '', probes = '') {
  return webWatchConfig(
    dir,
    `api-interval = 0.2
dwell = 0.5
${['peer', 'self'].map((c) => `${c}-initdead = 0.5\n${c}-deadtime = ${c === 'peer' ? 0.3 : 1}\n${c}-warntime = 0.1\n${c}-rise = 2`).join('\n')}
${extra}

${fileProbe('peer', 'peer')}
${fileProbe('self', 'self')}
${probes}`,
  )
}

function start(watched = config(), cloud = new FakeProvider({ holder: 'web-2' })) {
  const started = memoryDaemon(file('ipmove.conf'), watched, cloud)
  daemon = started.daemon
  return started
}

const role = () => daemon!.watcher('web')!.role

describe('ipmove watch, the loop', () => {
  it('claims when the peer dies: the API and the address follow, with a timeline', async () => {
    const { cloud, driver, log, ready } = start()
    await ready
    // Healthy peer holding the IP: nothing moves.
    await until(
      'both checks up',
      () =>
        daemon!.snapshot().ips[0]!.checks.peer.health === 'up' &&
        daemon!.snapshot().ips[0]!.checks.self.health === 'up',
    )
    await new Promise((r) => setTimeout(r, 300))
    expect(cloud.holder?.id).toBe('web-2')
    expect(cloud.calls.some((c) => c.startsWith('write'))).toBe(false)

    const died = Date.now()
    rmSync(file('peer'))
    await until('master', () => role() === 'master')
    const tookMs = Date.now() - died
    expect(cloud.holder?.id).toBe('self')
    expect(driver.has(cloud.ip, 'eth0')).toBe(true)
    // Detection (deadtime 300 ms) plus the move, with room for a busy machine.
    expect(tookMs).toBeLessThan(2000)
    const [snap] = daemon!.snapshot().ips
    expect(snap).toMatchObject({
      role: 'master',
      holder: { id: 'self', isSelf: true },
      carried: true,
      checks: {
        peer: { health: 'down', lastFailure: expect.stringContaining('exit 1') },
        self: { health: 'up' },
      },
      antiFlap: { stopped: false, movesInWindow: 1, maxMoves: 3 },
      transitionsTotal: 1,
    })
    const last = snap!.transitions.at(-1)!
    expect(last).toMatchObject({ from: 'backup', to: 'master', reason: 'the peer is dead', error: null })
    // Every step of the takeover, in order (no witness configured, and no announcement in memory).
    const t = last.timeline!
    const steps = [t.peerDeclaredDead, t.decision, t.apiAccepted, t.apiDone]
    expect(steps.every((step) => typeof step === 'number')).toBe(true)
    expect([...steps].sort((x, y) => x! - y!)).toEqual(steps)
    expect(t.aliasAdded).toBeGreaterThanOrEqual(t.decision!)
    expect(t.announced).toBeNull()
    expect(log.lines).toEqual(expect.arrayContaining(['[web] peer check: down', '[web] backup → master']))
  })

  it('own health failing → fault, the address dropped; recovery → backup, then master again where the API still routes here', async () => {
    const cloud = new FakeProvider({ holder: 'self' })
    const { driver, ready } = start(undefined, cloud)
    await ready
    await until('master', () => role() === 'master' && driver.has(cloud.ip, 'eth0'))
    rmSync(file('self'))
    await until('fault', () => role() === 'fault')
    await until('address dropped', () => !driver.has(cloud.ip, 'eth0'))
    writeFileSync(file('self'), '')
    await until('master again', () => role() === 'master' && driver.has(cloud.ip, 'eth0'))
    const roles = daemon!.snapshot().ips[0]!.transitions.map((t) => `${t.from} → ${t.to}`)
    expect(roles).toEqual(['backup → master', 'master → fault', 'fault → backup', 'backup → master'])
    // The API was never written: the IP stayed routed here all along.
    expect(cloud.calls.some((c) => c.startsWith('write'))).toBe(false)
  })

  it('a master seeing the API route the IP to a live peer becomes backup and drops the address', async () => {
    const cloud = new FakeProvider({ holder: 'self' })
    const { driver, ready } = start(undefined, cloud)
    await ready
    await until(
      'master, peer up',
      () => role() === 'master' && daemon!.snapshot().ips[0]!.checks.peer.health === 'up',
    )
    cloud.holder = cloud.host('web-2')
    await until('backup', () => role() === 'backup')
    await until('address dropped', () => !driver.has(cloud.ip, 'eth0'))
    expect(cloud.holder.id).toBe('web-2')
  })

  it('the witness vetoes the takeover while the IP still answers; once it stops, the claim goes ahead', async () => {
    writeFileSync(file('site'), '')
    const witness = `${fileProbe('witness', 'site')}`
    const { cloud, log, ready } = start(config('witness-initdead = 0.5\nwitness-deadtime = 0.3', witness))
    await ready
    await until('peer and witness up', () => {
      const checks = daemon!.snapshot().ips[0]!.checks
      return checks.peer.health === 'up' && checks.witness.health === 'up'
    })
    rmSync(file('peer'))
    await until('the veto logged', () =>
      log.lines.some((l) => l.includes('the witness still answers at the IP')),
    )
    expect(cloud.calls.some((c) => c.startsWith('write'))).toBe(false)
    rmSync(file('site'))
    await until('master', () => role() === 'master')
    expect(cloud.holder?.id).toBe('self')
  })

  it('re-asserts an IP moved behind its back to a peer that was dead before this node took over', async () => {
    rmSync(file('peer'))
    const { cloud, driver, ready } = start()
    await ready
    await until('master', () => role() === 'master' && driver.has(cloud.ip, 'eth0'))
    cloud.holder = cloud.host('web-2')
    await until(
      're-asserted',
      () => cloud.holder?.id === 'self' && cloud.calls.filter((c) => c === 'write self').length === 2,
    )
    expect(role()).toBe('master')
    expect(driver.has(cloud.ip, 'eth0')).toBe(true)
  })

  it('clears an anti-flap stop by name; an unknown name is not found', async () => {
    const { ready } = start()
    await ready
    daemon!.clearFlap('web')
    expect(() => daemon!.clearFlap('db')).toThrow('db is not watched (watched: web)')
  })

  it('runs actions in order with their exit codes; a failing one does not stop the next or the move', async () => {
    const out = file('actions.log')
    const actions = `[watch.web.action.a-fails]
on = master
argv = ["sh", "-c", "echo first >> ${out} && exit 3"]

[watch.web.action.b-logs]
on = master
argv = ["sh", "-c", "echo \\"second $IPMOVE_ROLE $IPMOVE_IP\\" >> ${out}"]
`
    const { log, ready } = start(config('', actions), new FakeProvider({ holder: 'web-2' }))
    await ready
    await until('both up', () => daemon!.snapshot().ips[0]!.checks.self.health === 'up')
    rmSync(file('peer'))
    await until('master', () => role() === 'master')
    await until('actions ran', () => existsSync(out) && readFileSync(out, 'utf8').includes('second'))
    expect(readFileSync(out, 'utf8')).toBe('first\nsecond master 203.0.113.10/32\n')
    await until('exit codes logged', () =>
      log.lines.some((l) => l.includes('action b-logs (master) exited 0')),
    )
    expect(log.lines.some((l) => l.includes('action a-fails (master) failed: exit 3'))).toBe(true)
  })

  it('reload: an unchanged IP keeps running as it is; a changed one restarts without dropping the address', async () => {
    const cloud = new FakeProvider({ holder: 'self' })
    const { driver, ready } = start(undefined, cloud)
    await ready
    await until('master', () => role() === 'master' && driver.has(cloud.ip, 'eth0'))
    const before = daemon!.watcher('web')
    expect(await daemon!.reload(config())).toMatchObject({ kept: ['web'] })
    expect(daemon!.watcher('web')).toBe(before)
    const changed = await daemon!.reload(config('', fileProbe('peer', 'peer2')))
    expect(changed).toMatchObject({ restarted: ['web'] })
    expect(daemon!.watcher('web')).not.toBe(before)
    expect(driver.has(cloud.ip, 'eth0')).toBe(true)
    await until('master again', () => role() === 'master')
    expect(driver.calls.filter((c) => c.startsWith('remove'))).toEqual([])
  })

  it('stop with release drops the address; without, it stays', async () => {
    for (const release of [false, true]) {
      const cloud = new FakeProvider({ holder: 'self' })
      const { driver, ready } = start(undefined, cloud)
      await ready
      await until('master', () => role() === 'master' && driver.has(cloud.ip, 'eth0'))
      await daemon!.stop(release)
      daemon = undefined
      expect(driver.has(cloud.ip, 'eth0')).toBe(!release)
      expect(cloud.calls.at(-1)).toBe('close')
    }
  })

  it('API unreachable with policy release: the master drops the address', async () => {
    const cloud = new FakeProvider({ holder: 'self' })
    const { driver, ready } = start(config('api-unreachable = release'), cloud)
    await ready
    await until('master', () => role() === 'master' && driver.has(cloud.ip, 'eth0'))
    cloud.onRead = () => {
      throw Object.assign(new Error('connect ECONNREFUSED'), {})
    }
    await until('backup', () => role() === 'backup')
    expect(driver.has(cloud.ip, 'eth0')).toBe(false)
  })
})
