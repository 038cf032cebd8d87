/**
 * The carp source's reading of `ifconfig`: outputs recorded on OpenBSD and
 * FreeBSD (test/fixtures/carp/, with where each comes from), and its keys in
 * `[watch.NAME]`. The source running in the daemon, with a stand-in ifconfig,
 * is test/e2e-watch-engines.test.ts.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { type CarpSourceSettings, carpAnswer, parseCarp } from '../src/watch/sources/carp.js'
import { webWatchConfig } from './helpers/watch-daemon.js'

const fixture = (name: string) =>
  readFileSync(new URL(`./fixtures/carp/${name}.txt`, import.meta.url), 'utf8')
const on = (iface: string, vhid = 0): CarpSourceSettings => ({ interface: iface, vhid, intervalMs: 1000 })

describe('parseCarp: the carp lines of ifconfig', () => {
  it('reads OpenBSD’s one-vhid line, master and backup (recorded on OVH Public Cloud)', () => {
    expect(parseCarp(fixture('openbsd-carp0-master'))).toEqual([{ vhid: 1, state: 'MASTER' }])
    expect(parseCarp(fixture('openbsd-carp0-backup'))).toEqual([{ vhid: 1, state: 'BACKUP' }])
    expect(parseCarp(fixture('openbsd-carp0-init-reproduced'))).toEqual([{ vhid: 1, state: 'INIT' }])
  })

  it('reads OpenBSD’s balancing form, one state line per vhid', () => {
    expect(parseCarp(fixture('openbsd-balancing-reproduced'))).toEqual([
      { vhid: 1, state: 'MASTER' },
      { vhid: 2, state: 'BACKUP' },
    ])
  })

  it('reads FreeBSD’s lines on the parent interface, with or without the peer line', () => {
    expect(parseCarp(fixture('freebsd-vtnet0-master'))).toEqual([{ vhid: 1, state: 'MASTER' }])
    expect(parseCarp(fixture('freebsd-peer-reproduced'))).toEqual([{ vhid: 1, state: 'BACKUP' }])
    expect(parseCarp(fixture('freebsd-two-vhids-backup'))).toEqual([
      { vhid: 3, state: 'BACKUP' },
      { vhid: 1, state: 'BACKUP' },
    ])
  })

  it('finds nothing where there is no carp, and ignores lines that only look alike', () => {
    expect(
      parseCarp('vio0: flags=8843<UP>\n\tstatus: active\n\tinet 192.0.2.10 netmask 0xffffff00\n'),
    ).toEqual([])
    expect(parseCarp('\tcarp: SLAVE vhid 1 advbase 1\n\tcarp: MASTER vhid 300 advbase 1\n')).toEqual([])
    expect(parseCarp('\tinet 10.0.0.230 netmask 0xffffffff broadcast 10.0.0.230 vhid 1\n')).toEqual([])
  })
})

describe('carpAnswer: the wish for the watched vhid', () => {
  it('MASTER is hold; BACKUP and INIT are release', () => {
    expect(carpAnswer(fixture('openbsd-carp0-master'), on('carp0'))).toEqual({
      wish: 'hold',
      why: 'carp on carp0: MASTER vhid 1',
    })
    expect(carpAnswer(fixture('openbsd-carp0-backup'), on('carp0')).wish).toBe('release')
    expect(carpAnswer(fixture('openbsd-carp0-init-reproduced'), on('carp0'))).toEqual({
      wish: 'release',
      why: 'carp on carp0: INIT vhid 1',
    })
    expect(carpAnswer(fixture('freebsd-vtnet0-master'), on('vtnet0', 1)).wish).toBe('hold')
  })

  it('several vhids: carp-vhid picks one; without it, or for a vhid not there, unknown says why', () => {
    const two = fixture('freebsd-two-vhids-master')
    expect(carpAnswer(two, on('igb1', 3))).toEqual({ wish: 'hold', why: 'carp on igb1: MASTER vhid 3' })
    expect(carpAnswer(two, on('igb1'))).toEqual({
      wish: 'unknown',
      why: 'carp on igb1: vhids 3, 1; set carp-vhid to say which one',
    })
    expect(carpAnswer(two, on('igb1', 7))).toEqual({ wish: 'unknown', why: 'carp on igb1: no vhid 7' })
    expect(carpAnswer(fixture('openbsd-balancing-reproduced'), on('carp1', 2)).wish).toBe('release')
    expect(carpAnswer('', on('carp0'))).toEqual({
      wish: 'unknown',
      why: 'carp on carp0: ifconfig shows no carp state',
    })
  })
})

describe('source = carp in [watch.NAME]', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ipmove-carp-'))
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('reads carp-interface, carp-vhid and carp-interval; no probes are needed', () => {
    const [web] = webWatchConfig(
      dir,
      'source = carp\ncarp-interface = carp0\ncarp-vhid = 1\ncarp-interval = 0.5',
    )
    expect(web!.source).toEqual({ kind: 'carp', settings: { interface: 'carp0', vhid: 1, intervalMs: 500 } })
    expect(web!.probes).toEqual([])
    const [defaults] = webWatchConfig(dir, 'source = carp\ncarp-interface = em0')
    expect(defaults!.source.settings).toEqual({ interface: 'em0', vhid: 0, intervalMs: 1000 })
  })

  it('refuses a missing or bad interface, a vhid out of 1–255, a bad interval, naming file and line', () => {
    expect(() => webWatchConfig(dir, 'source = carp')).toThrow(/\[watch\.web\]: needs carp-interface = /)
    expect(() => webWatchConfig(dir, 'source = carp\ncarp-interface = carp 0')).toThrow(
      /ipmove\.conf:\d+: \[watch\.web\] carp-interface: .*not a valid interface name/,
    )
    expect(() => webWatchConfig(dir, 'source = carp\ncarp-interface = carp0\ncarp-vhid = 256')).toThrow(
      /carp-vhid: expected a whole number from 1 to 255, got "256"/,
    )
    expect(() => webWatchConfig(dir, 'source = carp\ncarp-interface = carp0\ncarp-interval = 0.001')).toThrow(
      /carp-interval: .*interval must be between/,
    )
    expect(() => webWatchConfig(dir, 'source = command\ncommand = ["true"]\ncarp-interface = carp0')).toThrow(
      /unknown key "carp-interface"/,
    )
  })
})
