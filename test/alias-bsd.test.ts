import { describe, expect, it } from 'vitest'
import { BsdDriver, maskOfPrefix, parseIfconfig } from '../src/alias/bsd.js'
import type { Runner, RunResult } from '../src/alias/driver.js'
import { pickDriver, platformOf } from '../src/alias/platform.js'
import { parseIp } from '../src/validate.js'
import { failure } from './helpers/errors.js'

/*
 * Fixtures mirror what ifconfig prints, line for line as its source writes them:
 * - OpenBSD: sbin/ifconfig/ifconfig.c (rev 1.472) — status() prints `\tlladdr`, `\tindex … priority … llprio`,
 *   `\tgroups:`, `\tmedia:`, `\tstatus:`; in_status() `\tinet A netmask 0x%x broadcast B`; in6_alias()
 *   `\tinet6 A%if prefixlen N [tentative] [duplicated] … [scopeid 0x%x]`; printif() reports an unknown
 *   interface as `NAME: no such interface`; failed ioctls go through err(1, "SIOCAIFADDR"/"SIOCDIFADDR").
 * - FreeBSD 14: sbin/ifconfig/af_inet.c in_status_nl() `\tinet A netmask 0x%lx broadcast B` (or `A/N` with
 *   IFCONFIG_FORMAT=inet:cidr), af_inet6.c `\tinet6 A%if prefixlen N [tentative] [duplicated] … scopeid 0x%x`,
 *   `\tether`; main() reports `interface NAME does not exist`.
 */
const OPENBSD_VIO0 = `vio0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> mtu 1500
\tlladdr fe:e1:ba:d0:4c:2a
\tindex 1 priority 0 llprio 3
\tgroups: egress
\tmedia: Ethernet autoselect
\tstatus: active
\tinet 192.0.2.10 netmask 0xffffff00 broadcast 192.0.2.255
\tinet6 fe80::fce1:baff:fed0:4c2a%vio0 prefixlen 64 scopeid 0x1
\tinet6 2001:db8::10 prefixlen 64
`
const OPENBSD_VIO0_ALIAS = OPENBSD_VIO0.replace(
  '\tinet6 fe80',
  '\tinet 192.0.2.50 netmask 0xffffffff broadcast 192.0.2.50\n\tinet6 fe80',
)
const OPENBSD_ALL = `lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 32768
\tindex 3 priority 0 llprio 3
\tgroups: lo
\tinet6 ::1 prefixlen 128
\tinet6 fe80::1%lo0 prefixlen 64 scopeid 0x3
\tinet 127.0.0.1 netmask 0xff000000
${OPENBSD_VIO0_ALIAS}enc0: flags=0<>
\tindex 2 priority 0 llprio 3
\tgroups: enc
\tstatus: active
`
const FREEBSD_VTNET0 = `vtnet0: flags=1008843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST,LOWER_UP> metric 0 mtu 1500
\toptions=4c07bb<RXCSUM,TXCSUM,VLAN_MTU,VLAN_HWTAGGING,JUMBO_MTU,VLAN_HWCSUM,TSO4,TSO6,LRO,VLAN_HWTSO,LINKSTATE,TXCSUM_IPV6>
\tether 58:9c:fc:10:ff:b2
\tinet 192.0.2.10 netmask 0xffffff00 broadcast 192.0.2.255
\tinet6 fe80::5a9c:fcff:fe10:ffb2%vtnet0 prefixlen 64 scopeid 0x1
\tmedia: Ethernet autoselect (10Gbase-T <full-duplex>)
\tstatus: active
\tnd6 options=21<PERFORMNUD,AUTO_LINKLOCAL>
`
const withV6 = (base: string, flags: string) =>
  base.replace('\tmedia:', `\tinet6 2001:db8::50 prefixlen 128${flags}\n\tmedia:`)
const FREEBSD_CIDR = `vtnet0: flags=1008843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST,LOWER_UP> metric 0 mtu 1500
\tether 58:9c:fc:10:ff:b2
\tinet 192.0.2.10/24 broadcast 192.0.2.255
\tinet 192.0.2.50/32 broadcast 192.0.2.50 vhid 1
\tinet6 2001:db8::50/128 tentative
`

const ok = (stdout = ''): RunResult => ({ code: 0, stdout, stderr: '' })
const fail = (stderr: string): RunResult => ({ code: 1, stdout: '', stderr })

/** A runner that expects exactly these commands, in this order, and answers with recorded output. */
function script(steps: Array<[string[], RunResult]>): Runner & { left(): number } {
  const queue = [...steps]
  const runner = async (argv: readonly string[]) => {
    const step = queue.shift()
    if (!step) throw new Error(`unexpected command: ${argv.join(' ')}`)
    expect([...argv]).toEqual(step[0])
    return step[1]
  }
  return Object.assign(runner, { left: () => queue.length })
}

describe('parsing ifconfig output', () => {
  it('reads every interface of OpenBSD ifconfig -A', () => {
    const entries = parseIfconfig(OPENBSD_ALL)
    expect(entries.map((e) => `${e.iface} ${e.address}/${e.prefix} ${e.scope} ${e.state}`)).toEqual([
      'lo0 ::1/128 host ready',
      'lo0 fe80::1/64 link ready',
      'lo0 127.0.0.1/8 host ready',
      'vio0 192.0.2.10/24 global ready',
      'vio0 192.0.2.50/32 global ready',
      'vio0 fe80::fce1:baff:fed0:4c2a/64 link ready',
      'vio0 2001:db8::10/64 global ready',
    ])
    expect(entries.find((e) => e.address === '192.0.2.50')).toEqual({
      iface: 'vio0',
      address: '192.0.2.50',
      prefix: 32,
      version: 4,
      scope: 'global',
      state: 'ready',
      mac: 'fe:e1:ba:d0:4c:2a',
    })
    expect(entries.find((e) => e.iface === 'lo0')?.mac).toBeUndefined()
  })

  it('reads FreeBSD output, its DAD flags and its CIDR format', () => {
    const tentative = parseIfconfig(withV6(FREEBSD_VTNET0, ' tentative')).find(
      (e) => e.address === '2001:db8::50',
    )
    expect(tentative).toMatchObject({ prefix: 128, version: 6, state: 'tentative', mac: '58:9c:fc:10:ff:b2' })
    const duplicated = parseIfconfig(withV6(FREEBSD_VTNET0, ' duplicated')).find(
      (e) => e.address === '2001:db8::50',
    )
    expect(duplicated?.state).toBe('dadfailed')
    expect(parseIfconfig(FREEBSD_CIDR).map((e) => `${e.address}/${e.prefix} ${e.state}`)).toEqual([
      '192.0.2.10/24 ready',
      '192.0.2.50/32 ready',
      '2001:db8::50/128 tentative',
    ])
  })

  it('turns prefixes into dotted netmasks for OpenBSD', () => {
    expect(maskOfPrefix(32)).toBe('255.255.255.255')
    expect(maskOfPrefix(29)).toBe('255.255.255.248')
    expect(maskOfPrefix(0)).toBe('0.0.0.0')
  })
})

describe('BSD driver commands', () => {
  const v4 = parseIp('192.0.2.50')
  const v6 = parseIp('2001:db8::50')

  it('OpenBSD: adds an IPv4 alias as the seeds do, with a host netmask', async () => {
    const run = script([
      [['ifconfig', 'vio0'], ok(OPENBSD_VIO0)],
      [['ifconfig', 'vio0', 'inet', 'alias', '192.0.2.50', 'netmask', '255.255.255.255'], ok()],
    ])
    expect(await new BsdDriver('openbsd', run).add({ ip: v4, iface: 'vio0' })).toBe(true)
    expect(run.left()).toBe(0)
  })

  it('FreeBSD: adds an IPv4 alias in CIDR form', async () => {
    const run = script([
      [['ifconfig', 'vtnet0'], ok(FREEBSD_VTNET0)],
      [['ifconfig', 'vtnet0', 'inet', '192.0.2.50/32', 'alias'], ok()],
    ])
    expect(await new BsdDriver('freebsd', run).add({ ip: v4, iface: 'vtnet0' })).toBe(true)
    expect(run.left()).toBe(0)
  })

  it('leaves a present address alone', async () => {
    const run = script([[['ifconfig', 'vio0'], ok(OPENBSD_VIO0_ALIAS)]])
    expect(await new BsdDriver('openbsd', run).add({ ip: v4, iface: 'vio0' })).toBe(false)
    expect(run.left()).toBe(0)
  })

  it('IPv6: adds with prefixlen 128 and waits out tentative (nodad cannot apply on BSD)', async () => {
    const run = script([
      [['ifconfig', 'vtnet0'], ok(FREEBSD_VTNET0)],
      [['ifconfig', 'vtnet0', 'inet6', '2001:db8::50', 'prefixlen', '128', 'alias'], ok()],
      [['ifconfig', 'vtnet0'], ok(withV6(FREEBSD_VTNET0, ' tentative'))],
      [['ifconfig', 'vtnet0'], ok(withV6(FREEBSD_VTNET0, ' tentative'))],
      [['ifconfig', 'vtnet0'], ok(withV6(FREEBSD_VTNET0, ''))],
    ])
    expect(await new BsdDriver('freebsd', run).add({ ip: v6, iface: 'vtnet0', nodad: true })).toBe(true)
    expect(run.left()).toBe(0)
  })

  it('IPv6: a duplicated address is removed again and fails with exit 7', async () => {
    const duplicated = ok(withV6(FREEBSD_VTNET0, ' duplicated'))
    const run = script([
      [['ifconfig', 'vtnet0'], ok(FREEBSD_VTNET0)],
      [['ifconfig', 'vtnet0', 'inet6', '2001:db8::50', 'prefixlen', '128', 'alias'], ok()],
      [['ifconfig', 'vtnet0'], duplicated],
      [['ifconfig', 'vtnet0'], duplicated],
      [['ifconfig', 'vtnet0', 'inet6', '2001:db8::50', '-alias'], ok()],
    ])
    const error = await failure(new BsdDriver('freebsd', run).add({ ip: v6, iface: 'vtnet0' }))
    expect(error.kind).toBe('local')
    expect(error.message).toBe(
      '2001:db8::50/128 failed duplicate address detection on vtnet0: another host on the link uses it (removed it again)',
    )
    expect(run.left()).toBe(0)
  })

  it('removes with -alias, and an absent address is a no-op', async () => {
    const present = script([
      [['ifconfig', 'vio0'], ok(OPENBSD_VIO0_ALIAS)],
      [['ifconfig', 'vio0', 'inet', '192.0.2.50', '-alias'], ok()],
    ])
    expect(await new BsdDriver('openbsd', present).remove({ ip: v4, iface: 'vio0' })).toBe(true)
    const absent = script([[['ifconfig', 'vio0'], ok(OPENBSD_VIO0)]])
    expect(await new BsdDriver('openbsd', absent).remove({ ip: v4, iface: 'vio0' })).toBe(false)
    // Gone between our look and our delete: still success, unchanged.
    const raced = script([
      [['ifconfig', 'vio0'], ok(OPENBSD_VIO0_ALIAS)],
      [
        ['ifconfig', 'vio0', 'inet', '192.0.2.50', '-alias'],
        fail("ifconfig: SIOCDIFADDR: Can't assign requested address"),
      ],
    ])
    expect(await new BsdDriver('openbsd', raced).remove({ ip: v4, iface: 'vio0' })).toBe(false)
  })

  it('lists all interfaces with -A on OpenBSD (plain -a hides extra IPv4 addresses) and -a on FreeBSD', async () => {
    const openbsd = await new BsdDriver('openbsd', script([[['ifconfig', '-A'], ok(OPENBSD_ALL)]])).list()
    expect(openbsd.map((e) => e.iface)).toContain('lo0')
    const freebsd = await new BsdDriver('freebsd', script([[['ifconfig', '-a'], ok(FREEBSD_VTNET0)]])).list()
    expect(freebsd.map((e) => e.address)).toEqual(['192.0.2.10', 'fe80::5a9c:fcff:fe10:ffb2'])
  })

  it('reports a missing interface in one line, whatever the BSD says', async () => {
    const openbsd = script([[['ifconfig', 'eth9'], fail('eth9: no such interface')]])
    const freebsd = script([[['ifconfig', 'eth9'], fail('ifconfig: interface eth9 does not exist')]])
    for (const driver of [new BsdDriver('openbsd', openbsd), new BsdDriver('freebsd', freebsd)]) {
      const error = await failure(driver.add({ ip: v4, iface: 'eth9' }))
      expect([error.kind, error.message]).toEqual(['local', 'interface eth9 does not exist'])
    }
    // OpenBSD reads a name without a unit number as a group and prints its members.
    const group = script([[['ifconfig', 'egress'], ok(OPENBSD_VIO0)]])
    const error = await failure(new BsdDriver('openbsd', group).list('egress'))
    expect(error.message).toBe('interface egress does not exist')
  })

  it('says when root is needed', async () => {
    const run = script([
      [['ifconfig', 'vio0'], ok(OPENBSD_VIO0)],
      [
        ['ifconfig', 'vio0', 'inet', 'alias', '192.0.2.50', 'netmask', '255.255.255.255'],
        fail('ifconfig: SIOCAIFADDR: Operation not permitted'),
      ],
    ])
    const error = await failure(new BsdDriver('openbsd', run).add({ ip: v4, iface: 'vio0' }))
    expect([error.kind, error.message]).toEqual(['local', 'adding 192.0.2.50/32 to vio0 needs root'])
  })

  it('refuses labels, which BSD interfaces do not have, before running anything', async () => {
    const run = script([])
    const error = await failure(new BsdDriver('freebsd', run).add({ ip: v4, iface: 'vtnet0', label: 'vip' }))
    expect(error.kind).toBe('usage')
  })

  it('is picked for the BSDs, and other platforms are refused', async () => {
    expect(await pickDriver('openbsd')).toBeInstanceOf(BsdDriver)
    expect(await pickDriver('freebsd')).toBeInstanceOf(BsdDriver)
    expect(() => platformOf('darwin')).toThrow('ipmove cannot configure addresses on darwin')
  })
})
