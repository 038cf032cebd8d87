import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCommand } from '../src/alias/driver.js'
import { IpmoveError } from '../src/errors.js'
import { createRig, describeRoot, type Rig, waitFor } from './rig/netns.js'

describe('runCommand, the one runner for external tools', () => {
  it('turns a missing program into exit 7 that names what to install', async () => {
    const error = await runCommand(['ipmove-no-such-tool', '--version']).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(IpmoveError)
    expect((error as IpmoveError).kind).toBe('local')
    expect((error as IpmoveError).message).toBe('ipmove-no-such-tool not found: install ipmove-no-such-tool')
  })

  it('turns a hung program into exit 7 after its timeout', async () => {
    const started = Date.now()
    const error = await runCommand(['sleep', '5'], { timeoutMs: 200 }).catch((e: unknown) => e)
    expect((error as IpmoveError).kind).toBe('local')
    expect((error as IpmoveError).message).toBe('sleep 5 did not finish within 0.2 s')
    expect(Date.now() - started).toBeLessThan(2000)
  })

  it('resolves with the exit code and output of a program that fails', async () => {
    const result = await runCommand(['ip', 'link', 'show', 'dev', 'ipm-no-such-if0'])
    expect(result.code).not.toBe(0)
    expect(result.stderr).toMatch(/does not exist/)
  })
})

describeRoot('alias commands on the Linux kernel (network namespaces)', () => {
  let rig: Rig
  beforeAll(async () => {
    rig = await createRig('lin')
  })
  afterAll(async () => {
    await rig?.destroy()
  })

  it('adds an IPv4 alias as /32 with its label; adding it again changes nothing', async () => {
    const { a } = rig
    const add = [
      'alias',
      'add',
      '--ip',
      '192.0.2.50',
      '--interface',
      'eth0',
      '--label',
      'vip',
      '--no-announce',
    ]
    const first = await rig.agentCmd(a, [...add, '--json'])
    expect(first.code, first.stderr).toBe(0)
    expect(JSON.parse(first.stdout)).toEqual({
      ok: true,
      ip: '192.0.2.50/32',
      interface: 'eth0',
      label: 'eth0:vip',
      changed: true,
      announced: false,
    })
    const added = await rig.address(a, '192.0.2.50')
    expect(added).toMatchObject({ family: 'inet', prefixlen: 32, label: 'eth0:vip' })

    const again = await rig.agentCmd(a, add)
    expect(again.code, again.stderr).toBe(0)
    expect(again.stdout).toBe('192.0.2.50/32 already on eth0 (eth0:vip); not announced\n')
    const all = await rig.addresses(a)
    expect(all.filter((x) => x.local === '192.0.2.50')).toHaveLength(1)
  })

  it('shows addresses as typed records that match ip -j addr', async () => {
    const { a } = rig
    const shown = await rig.agentCmd(a, ['alias', 'show', '--interface', 'eth0', '--json'])
    expect(shown.code, shown.stderr).toBe(0)
    const { addresses } = JSON.parse(shown.stdout) as { addresses: Array<Record<string, unknown>> }
    expect(addresses).toContainEqual({
      iface: 'eth0',
      address: '192.0.2.50',
      prefix: 32,
      version: 4,
      scope: 'global',
      state: 'ready',
      label: 'eth0:vip',
      mac: a.mac,
    })
    const fromIp = (await rig.addresses(a)).map((x) => `${x.local}/${x.prefixlen}`).sort()
    expect(addresses.map((x) => `${x.address}/${x.prefix}`).sort()).toEqual(fromIp)

    const human = await rig.agentCmd(a, ['alias', 'show', '--interface', 'eth0'])
    expect(human.stdout.split('\n')).toContain('eth0 192.0.2.50/32 eth0:vip')
  })

  it('removes the alias; removing it again is a no-op', async () => {
    const { a } = rig
    const remove = ['alias', 'remove', '--ip', '192.0.2.50', '--interface', 'eth0', '--json']
    const first = await rig.agentCmd(a, remove)
    expect(first.code, first.stderr).toBe(0)
    expect(JSON.parse(first.stdout)).toEqual({
      ok: true,
      ip: '192.0.2.50/32',
      interface: 'eth0',
      changed: true,
    })
    expect(await rig.address(a, '192.0.2.50')).toBeUndefined()
    // The rig's own address on the same interface is untouched.
    expect(await rig.address(a, a.ipv4)).toMatchObject({ prefixlen: 24 })

    const again = await rig.agentCmd(a, remove)
    expect(again.code, again.stderr).toBe(0)
    expect(JSON.parse(again.stdout)).toMatchObject({ changed: false })
  })

  it('release drops the alias and is idempotent too', async () => {
    const { a } = rig
    await rig.run(a, ['ip', 'addr', 'add', '192.0.2.51/32', 'dev', 'eth0'])
    const first = await rig.agentCmd(a, ['release', '--ip', '192.0.2.51', '--interface', 'eth0'])
    expect(first.code, first.stderr).toBe(0)
    expect(first.stdout).toBe('released 192.0.2.51/32 from eth0\n')
    expect(await rig.address(a, '192.0.2.51')).toBeUndefined()
    const again = await rig.agentCmd(a, ['release', '--ip', '192.0.2.51', '--interface', 'eth0'])
    expect(again.code, again.stderr).toBe(0)
    expect(again.stdout).toBe('192.0.2.51/32 was not on eth0; nothing to release\n')
  })

  it('removes an address whatever prefix it was configured with', async () => {
    const { a } = rig
    await rig.run(a, ['ip', 'addr', 'add', '192.0.2.52/28', 'dev', 'eth0'])
    const result = await rig.agentSvc(a, 'removeAlias', { ip: '192.0.2.52', interface: 'eth0' })
    expect(result.report).toMatchObject({ ok: true, result: { changed: true } })
    expect(await rig.address(a, '192.0.2.52')).toBeUndefined()
  })

  it('IPv6 without nodad: returns once duplicate address detection is over', async () => {
    const { a } = rig
    const { code, report } = await rig.agentSvc(a, 'addAlias', {
      ip: '2001:db8::50',
      interface: 'eth0',
      announce: false,
    })
    expect(code).toBe(0)
    expect(report.result).toEqual({
      ip: '2001:db8::50/128',
      interface: 'eth0',
      changed: true,
      announced: false,
    })
    const entry = await rig.address(a, '2001:db8::50')
    expect(entry).toMatchObject({ family: 'inet6', prefixlen: 128 })
    expect(entry?.tentative).toBeUndefined()
    // DAD waits RetransTimer (1 s) after its probe: returning sooner would mean we did not wait.
    expect((report.finishedAt as number) - (report.startedAt as number)).toBeGreaterThanOrEqual(900)

    const again = await rig.agentSvc(a, 'addAlias', {
      ip: '2001:db8::50',
      interface: 'eth0',
      announce: false,
    })
    expect(again.report.result).toMatchObject({ changed: false })
  })

  it('IPv6 with nodad: usable at once', async () => {
    const { a } = rig
    const { code, report } = await rig.agentSvc(a, 'addAlias', {
      ip: '2001:db8::51',
      interface: 'eth0',
      announce: false,
      nodad: true,
    })
    expect(code).toBe(0)
    expect(report.result).toMatchObject({ changed: true })
    expect(await rig.address(a, '2001:db8::51')).toMatchObject({ prefixlen: 128, nodad: true })
    expect((report.finishedAt as number) - (report.startedAt as number)).toBeLessThan(500)
  })

  it('a duplicate IPv6 address elsewhere on the LAN fails DAD: exit 7, address taken off again', async () => {
    const { a, b } = rig
    await rig.run(b, ['ip', 'addr', 'add', '2001:db8::60/128', 'dev', 'eth0', 'nodad'])
    try {
      const result = await rig.agentCmd(a, ['alias', 'add', '--ip', '2001:db8::60', '--interface', 'eth0'])
      expect(result.code).toBe(7)
      expect(result.stderr).toBe(
        'ipmove: error: 2001:db8::60/128 failed duplicate address detection on eth0: ' +
          'another host on the link uses it (removed it again)\n',
      )
      expect(await rig.address(a, '2001:db8::60')).toBeUndefined()
    } finally {
      await rig.run(b, ['ip', 'addr', 'del', '2001:db8::60/128', 'dev', 'eth0'])
    }
  })

  it('replaces an address left in dadfailed state once the conflict is gone', async () => {
    const { a, b } = rig
    await rig.run(b, ['ip', 'addr', 'add', '2001:db8::61/128', 'dev', 'eth0', 'nodad'])
    await rig.run(a, ['ip', 'addr', 'add', '2001:db8::61/128', 'dev', 'eth0'])
    await waitFor(
      'the kernel to mark the duplicate',
      async () => (await rig.address(a, '2001:db8::61'))?.dadfailed,
      5000,
      50,
    )
    await rig.run(b, ['ip', 'addr', 'del', '2001:db8::61/128', 'dev', 'eth0'])

    const result = await rig.agentCmd(a, [
      'alias',
      'add',
      '--ip',
      '2001:db8::61',
      '--interface',
      'eth0',
      '--no-announce',
    ])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toBe('added 2001:db8::61/128 to eth0; not announced\n')
    const entry = await rig.address(a, '2001:db8::61')
    expect(entry).toMatchObject({ prefixlen: 128 })
    expect(entry?.dadfailed).toBeUndefined()
    expect(entry?.tentative).toBeUndefined()
  })

  it('a missing interface is exit 7 with one line, for every command', async () => {
    const { a } = rig
    for (const argv of [
      ['alias', 'add', '--ip', '192.0.2.77', '--interface', 'eth9'],
      ['alias', 'remove', '--ip', '192.0.2.77', '--interface', 'eth9'],
      ['alias', 'show', '--interface', 'eth9'],
      ['release', '--ip', '192.0.2.77', '--interface', 'eth9'],
    ]) {
      const result = await rig.agentCmd(a, argv)
      expect(result.code, argv.join(' ')).toBe(7)
      expect(result.stderr).toBe('ipmove: error: interface eth9 does not exist\n')
      expect(result.stdout).toBe('')
    }
    const json = await rig.agentCmd(a, [
      'alias',
      'add',
      '--ip',
      '192.0.2.77',
      '--interface',
      'eth9',
      '--json',
    ])
    expect(JSON.parse(json.stdout)).toEqual({
      ok: false,
      error: { code: 'LOCAL', exitCode: 7, message: 'interface eth9 does not exist', interface: 'eth9' },
    })
  })

  it('without root privileges: exit 7 that says what is missing, nothing changed', async () => {
    const { a } = rig
    const add = await rig.agentCmd(
      a,
      ['alias', 'add', '--ip', '192.0.2.77', '--interface', 'eth0', '--no-announce'],
      {
        user: 'nobody',
      },
    )
    expect(add.code).toBe(7)
    expect(add.stderr).toBe('ipmove: error: adding 192.0.2.77/32 to eth0 needs root (CAP_NET_ADMIN)\n')
    expect(await rig.address(a, '192.0.2.77')).toBeUndefined()

    const remove = await rig.agentCmd(a, ['release', '--ip', a.ipv4, '--interface', 'eth0'], {
      user: 'nobody',
    })
    expect(remove.code).toBe(7)
    expect(remove.stderr).toBe(`ipmove: error: removing ${a.ipv4}/24 from eth0 needs root (CAP_NET_ADMIN)\n`)
    expect(await rig.address(a, a.ipv4)).toBeDefined()

    // Present already, so only the announcement is attempted, and na6 wants root.
    await rig.run(a, ['ip', 'addr', 'add', '2001:db8::55/128', 'dev', 'eth0', 'nodad'])
    const announce = await rig.agentCmd(a, ['alias', 'add', '--ip', '2001:db8::55', '--interface', 'eth0'], {
      user: 'nobody',
    })
    expect(announce.code).toBe(7)
    expect(announce.stderr).toBe(
      'ipmove: error: 2001:db8::55/128 is on eth0 but announcing it failed: na6 needs root (CAP_NET_RAW)\n',
    )
  })

  it('announces nothing on an interface without link-layer neighbours (loopback)', async () => {
    const { a } = rig
    const result = await rig.agentCmd(a, [
      'alias',
      'add',
      '--ip',
      '192.0.2.90',
      '--interface',
      'lo',
      '--json',
    ])
    expect(result.code, result.stderr).toBe(0)
    expect(JSON.parse(result.stdout)).toMatchObject({
      changed: true,
      announced: { skipped: 'lo has no link-layer neighbours to tell' },
    })
    expect((await rig.run(a, ['ip', '-j', 'addr', 'show', 'dev', 'lo'])).stdout).toContain(
      '"local":"192.0.2.90"',
    )
  })

  it('rejects bad input with exit 2 before running anything', async () => {
    const { a } = rig
    const cases: Array<[string[], string]> = [
      [
        ['--ip', '192.0.2.78', '--interface', 'eth0', '--label', 'muchtoolong'],
        '--label "eth0:muchtoolong" is longer than 15 characters',
      ],
      [
        ['--ip', '192.0.2.78', '--interface', 'eth0', '--label', 'a b'],
        '--label "a b" may hold only letters, digits, _ . -',
      ],
      [
        ['--ip', '2001:db8::78', '--interface', 'eth0', '--label', 'vip'],
        '--label applies to IPv4 addresses only',
      ],
      [
        ['--ip', '192.0.2.78', '--interface', 'eth0;id'],
        '--interface "eth0;id" is not a valid interface name (at most 15 of letters, digits, _ . -)',
      ],
      [
        ['--ip', '192.0.2.78', '--interface', 'eth0', '--count', '0'],
        '--count must be a whole number from 1 to 100',
      ],
      [['--ip', '192.0.2.300', '--interface', 'eth0'], '--ip "192.0.2.300" is not an IP address or block'],
    ]
    for (const [flags, message] of cases) {
      const result = await rig.agentCmd(a, ['alias', 'add', ...flags])
      expect(result.code, flags.join(' ')).toBe(2)
      expect(result.stderr).toBe(`ipmove: error: ${message}\n`)
    }
    expect(await rig.address(a, '192.0.2.78')).toBeUndefined()
  })
})
