import { describe, expect, it } from 'vitest'
import { parseIp, parseSeconds, validateInterface, validateName } from '../src/validate.js'
import { usage } from './helpers/errors.js'

describe('parseIp', () => {
  it('takes addresses and blocks, IPv4 and IPv6, in canonical form', () => {
    expect(parseIp('203.0.113.10')).toEqual({
      address: '203.0.113.10',
      prefix: 32,
      version: 4,
      block: '203.0.113.10/32',
    })
    expect(parseIp('203.0.113.10/32').block).toBe('203.0.113.10/32')
    expect(parseIp('198.51.100.0/28').block).toBe('198.51.100.0/28')
    expect(parseIp('2001:DB8:0:0::10')).toMatchObject({ address: '2001:db8::10', prefix: 128, version: 6 })
    expect(parseIp('2001:db8:1::/64').block).toBe('2001:db8:1::/64')
  })

  it('refuses what is not strictly an address or a block', () => {
    for (const bad of [
      '',
      '203.0.113',
      '127.1',
      '0x7f.0.0.1',
      '203.0.113.256',
      '203.0.113.10/33',
      '203.0.113.10/',
      '203.0.113.10/3/2',
      'fe80::1%eth0',
      'localhost',
      '1.2.3.4; reboot',
      ' 203.0.113.10',
    ]) {
      expect(usage(() => parseIp(bad))).toMatch(/--ip/)
    }
    expect(usage(() => parseIp('198.51.100.7/24'))).toMatch(/host bits set; did you mean 198\.51\.100\.0\/24/)
    expect(usage(() => parseIp('1'.repeat(300)))).toMatch(/too long/)
  })
})

describe('validateName', () => {
  it('accepts console names and ids', () => {
    for (const ok of ['t18s', 'bi-edge-sbg-2', 'ns3000001.ip-198-51-100.eu', 'My Project 2', 'a_b:c@d+e']) {
      expect(validateName('--instance', ok)).toBe(ok)
    }
  })
  it('refuses shell metacharacters, quotes, control characters and edge spaces', () => {
    for (const bad of [
      'a;b',
      'a|b',
      '$(id)',
      '`id`',
      "a'b",
      'a"b',
      'a\nb',
      ' a',
      'a ',
      'a&b',
      'a>b',
      '-rf',
    ]) {
      expect(usage(() => validateName('--instance', bad))).toMatch(/--instance/)
    }
  })
})

describe('validateInterface', () => {
  it('accepts kernel-valid names up to 15 characters', () => {
    for (const ok of ['eth0', 'vio0', 'ens3.100', 'br-lan_1', 'a23456789012345'])
      expect(validateInterface(ok)).toBe(ok)
  })
  it('refuses longer names, slashes, colons and spaces', () => {
    for (const bad of ['', 'a234567890123456', 'eth0:1', 'eth/0', 'eth 0', '../x', '-i']) {
      expect(usage(() => validateInterface(bad))).toMatch(/interface/)
    }
  })
})

describe('parseIp: addresses no host can carry', () => {
  it('refuses the unspecified, multicast and broadcast addresses (the kernel takes 0.0.0.0/0 and adds nothing)', () => {
    for (const bad of ['0.0.0.0/0', '0.0.0.0', '::/0', '::', '224.0.0.5', 'ff02::1', '255.255.255.255'])
      expect(
        usage(() => parseIp(bad)),
        bad,
      ).toMatch(/range: not an address a host can carry/)
    expect(parseIp('192.0.2.1').block).toBe('192.0.2.1/32')
  })
})

describe('parseSeconds', () => {
  it('converts seconds to milliseconds within bounds', () => {
    expect(parseSeconds('--timeout', '1.5')).toBe(1500)
    for (const bad of ['0', '-1', 'abc', '1e9', ''])
      expect(usage(() => parseSeconds('--timeout', bad))).toMatch(/--timeout/)
  })

  it('takes plain decimals only, and at least a millisecond', () => {
    expect(parseSeconds('--timeout', '30')).toBe(30_000)
    expect(parseSeconds('--timeout', '0.05')).toBe(50)
    for (const bad of [
      '0x10',
      '+5',
      '5.',
      '.5',
      '1e-9',
      '1e2',
      ' 5',
      '5 ',
      '0.0001',
      '0.000',
      'Infinity',
      '86400.5',
    ])
      expect(
        usage(() => parseSeconds('--timeout', bad)),
        bad,
      ).toMatch(/--timeout must be a number of seconds/)
  })
})
