import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseProbeTimeout } from '../providers/local/settings.js'
import { parseProbeAnswers, probeArgv } from '../src/alias/probe.js'
import { IpmoveError } from '../src/errors.js'
import { ipmove, requireBuild } from './helpers/cli.js'
import { captureTime, createRig, describeRoot, type Rig } from './rig/netns.js'
import { aHolds, captureAnnouncements, carry, flipTo, pingedWho, release } from './rig/observe.js'

/*
 * Recorded on Debian 12 in two network namespaces on a veth pair, 192.0.2.50 and
 * 2001:db8::50 held by 02:00:00:00:00:0a: iputils-arping 3:20221126-1+deb12u1,
 * arping 2.23-1 (Thomas Habets), busybox 1:1.35.0-4+deb12u1 and ndisc6 1.0.5-1,
 * with the argv probeArgv builds (stdout; the exit code in each name).
 */
const IPUTILS_ANSWERED_1 =
  'ARPING 192.0.2.50 from 0.0.0.0 eth0\nUnicast reply from 192.0.2.50 [02:00:00:00:00:0A]  0.523ms\n' +
  'Sent 1 probes (1 broadcast(s))\nReceived 1 response(s)\n'
const IPUTILS_SILENT_0 =
  'ARPING 192.0.2.51 from 0.0.0.0 eth0\nSent 1 probes (1 broadcast(s))\nReceived 0 response(s)\n'
const BUSYBOX_ANSWERED_1 =
  'ARPING 192.0.2.50 from 0.0.0.0 eth0\nUnicast reply from 192.0.2.50 [02:00:00:00:00:0a] 0.013ms\n' +
  'Sent 1 probe(s) (0 broadcast(s))\nReceived 1 response(s) (0 request(s), 0 broadcast(s))\n'
const HABETS_ANSWERED_0 =
  'ARPING 192.0.2.50\n42 bytes from 02:00:00:00:00:0a (192.0.2.50): index=0 time=8.172 usec\n\n' +
  '--- 192.0.2.50 statistics ---\n1 packets transmitted, 1 packets received,   0% unanswered (0 extra)\n' +
  'rtt min/avg/max/std-dev = 0.008/0.008/0.008/0.000 ms\n'
const HABETS_SILENT_1 =
  'ARPING 192.0.2.51\nTimeout\n\n--- 192.0.2.51 statistics ---\n' +
  '1 packets transmitted, 0 packets received, 100% unanswered (0 extra)\n\n'
const NDISC6_ANSWERED_0 =
  'Soliciting 2001:db8::50 (2001:db8::50) on eth0...\nTarget link-layer address: 02:00:00:00:00:0A\n from 2001:db8::50\n'
const NDISC6_SILENT_2 = 'Soliciting 2001:db8::51 (2001:db8::51) on eth0...\nTimed out.\nNo response.\n'

describe('the duplicate-address probe', () => {
  it('builds each tool its argv, bounded in time', () => {
    expect(probeArgv('iputils', 'eth0', '192.0.2.50', 300)).toEqual([
      'arping',
      '-D',
      '-c',
      '1',
      '-w',
      '1',
      '-I',
      'eth0',
      '192.0.2.50',
    ])
    // iputils takes whole seconds: a longer wait rounds up, the runner stops it at the wait.
    expect(probeArgv('busybox', 'eth1', '192.0.2.50', 2500)).toContain('3')
    expect(probeArgv('habets', 'vio0', '192.0.2.50', 300)).toEqual([
      'arping',
      '-0',
      '-C',
      '1',
      '-c',
      '1',
      '-w',
      '0.3',
      '-i',
      'vio0',
      '192.0.2.50',
    ])
    expect(probeArgv('ndisc6', 'eth0', '2001:db8::50', 300)).toEqual([
      'ndisc6',
      '-n',
      '-1',
      '-r',
      '1',
      '-w',
      '300',
      '2001:db8::50',
      'eth0',
    ])
  })

  it('reads the answering MAC from each tool, lower case', () => {
    const a = ['02:00:00:00:00:0a']
    expect(parseProbeAnswers('iputils', '192.0.2.50', IPUTILS_ANSWERED_1)).toEqual(a)
    expect(parseProbeAnswers('busybox', '192.0.2.50', BUSYBOX_ANSWERED_1)).toEqual(a)
    expect(parseProbeAnswers('habets', '192.0.2.50', HABETS_ANSWERED_0)).toEqual(a)
    expect(parseProbeAnswers('ndisc6', '2001:db8::50', NDISC6_ANSWERED_0)).toEqual(a)
  })

  it('reads silence as nobody, and ignores replies about another address', () => {
    expect(parseProbeAnswers('iputils', '192.0.2.51', IPUTILS_SILENT_0)).toEqual([])
    expect(parseProbeAnswers('habets', '192.0.2.51', HABETS_SILENT_1)).toEqual([])
    expect(parseProbeAnswers('ndisc6', '2001:db8::51', NDISC6_SILENT_2)).toEqual([])
    expect(parseProbeAnswers('iputils', '192.0.2.5', IPUTILS_ANSWERED_1)).toEqual([])
    expect(parseProbeAnswers('habets', '192.0.2.5', HABETS_ANSWERED_0)).toEqual([])
  })

  it('pads the short octets glibc’s ether_ntoa prints, and lists two answering hosts once each', () => {
    const two =
      'Unicast reply from 192.0.2.50 [2:0:0:0:0:A]  0.5ms\nUnicast reply from 192.0.2.50 [2:0:0:0:0:b]  0.6ms\n' +
      'Unicast reply from 192.0.2.50 [02:00:00:00:00:0A]  0.7ms\n'
    expect(parseProbeAnswers('busybox', '192.0.2.50', two)).toEqual([
      '02:00:00:00:00:0a',
      '02:00:00:00:00:0b',
    ])
  })

  it('takes probe-timeout in seconds within bounds', () => {
    expect(parseProbeTimeout('0.25', 'x')).toBe(250)
    for (const bad of ['0', '0.001', '11', 'soon']) {
      expect(() => parseProbeTimeout(bad, '[local] probe-timeout')).toThrow(IpmoveError)
    }
  })
})

/** An empty config and a fresh cache, so this machine's own ipmove files play no part. */
function isolated(): { dir: string; env: Record<string, string> } {
  const dir = mkdtempSync(join(tmpdir(), 'ipmove-local-'))
  const config = join(dir, 'ipmove.conf')
  writeFileSync(config, '', { mode: 0o600 })
  return { dir, env: { IPMOVE_CONFIG: config, IPMOVE_CACHE_DIR: join(dir, 'cache') } }
}

const { dir, env } = isolated()
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('the local provider refuses bad input with exit 2', () => {
  it('before anything runs: no interface, --instance, a block', async () => {
    requireBuild()
    const cases: Array<[string[], RegExp]> = [
      [['--provider', 'local', '--ip', '192.0.2.50'], /needs --interface/],
      [['status', '--provider', 'local', '--ip', '2001:db8::50', '--json'], /needs --interface/],
      [
        ['--provider', 'local', '--ip', '192.0.2.50', '--interface', 'eth0', '--instance', 'other'],
        /--instance does not apply/,
      ],
      [['--provider', 'local', '--ip', '192.0.2.48/29', '--interface', 'eth0'], /single addresses/],
      [['--provider', 'local', '--ip', '192.0.2.50', '--interface', 'eth0;reboot'], /not a valid interface/],
    ]
    for (const [args, message] of cases) {
      const run = await ipmove(args, { PATH: process.env.PATH, ...env })
      expect(run.code, args.join(' ')).toBe(2)
      const lines = run.stderr.trim().split('\n')
      expect(lines, args.join(' ')).toHaveLength(1)
      expect(lines[0]).toMatch(message)
    }
  })
})

const timings: string[] = []

describeRoot('the local provider on the real kernel (network namespaces)', () => {
  let rig: Rig
  beforeAll(async () => {
    rig = await createRig('loc')
  })
  afterAll(async () => {
    await rig?.destroy()
    if (timings.length > 0) console.log(timings.join('\n'))
  })

  /** B runs `ipmove --provider local` while the observer watches its neighbour table and the wire. */
  async function bClaims(address: string) {
    const capture = await captureAnnouncements(rig, rig.obs, address)
    const started = Date.now()
    const claim = rig.agentCmd(
      rig.b,
      ['move', '--provider', 'local', '--ip', address, '--interface', 'eth0', '--json'],
      { env },
    )
    // Bounded for a busy machine, where the agent alone can take seconds to start: the flip's timing is
    // checked against the announcements, not against this bound.
    const flippedAt = await flipTo(rig, rig.obs, address, rig.b.mac, 15_000)
    const run = await claim
    const frames = await capture.stop()
    expect(run.code, run.stderr).toBe(0)
    const result = JSON.parse(run.stdout) as Record<string, unknown>
    const first = captureTime(frames[0]!)
    timings.push(
      `local provider, ${address}: observer flipped ${flippedAt - started} ms after the agent was spawned, ` +
        `${Math.round(flippedAt - first)} ms after the first announcement reached it`,
    )
    return { run, result, frames, flippedAt, first }
  }

  it('IPv4 while A still answers: names A’s MAC, claims anyway, the observer flips to B and B answers', async () => {
    const { a, b } = rig
    const address = '192.0.2.50'
    await aHolds(rig, address)

    const { run, result, frames, flippedAt, first } = await bClaims(address)
    expect(result).toMatchObject({
      ok: true,
      ip: `${address}/32`,
      provider: 'local',
      kind: 'lan',
      from: { id: a.mac, name: 'another host on eth0' },
      to: { id: b.mac, name: 'this host on eth0' },
      outcome: 'moved',
      alias: {
        ip: `${address}/32`,
        interface: 'eth0',
        changed: true,
        announced: { count: 5, intervalMs: 200 },
      },
      requests: 0,
      roundTrips: 0,
    })
    expect(run.stderr).toContain(`${a.mac} still answers for ${address} on eth0; claiming it anyway`)
    expect(await rig.address(b, address)).toMatchObject({ family: 'inet', prefixlen: 32 })
    expect(frames).toHaveLength(5)
    for (const frame of frames) expect(frame).toContain(`${b.mac} > ff:ff:ff:ff:ff:ff`)
    expect(flippedAt - first).toBeLessThanOrEqual(200)
    expect(await pingedWho(rig, rig.obs, address)).toEqual({ code: 0, received: { a: 0, b: 3 } })
    await release(rig, a, address)
  })

  it('status reports who answers: B to the observer, this host on B', async () => {
    const { b, obs } = rig
    const address = '192.0.2.50'
    // B carries it (as the claim above left it: this add is then a no-op).
    await carry(rig, b, address)
    const fromObserver = await rig.agentCmd(
      obs,
      ['status', '--provider', 'local', '--ip', address, '--interface', 'eth0', '--json'],
      { env },
    )
    expect(fromObserver.code, fromObserver.stderr).toBe(0)
    expect(JSON.parse(fromObserver.stdout)).toMatchObject({
      ok: true,
      provider: 'local',
      holder: { id: b.mac, name: 'another host on eth0' },
      pending: false,
      note: `answered by ${b.mac}`,
      local: { carried: false, interfaces: [] },
      requests: 0,
    })
    const here = await rig.agentCmd(
      b,
      ['status', '--provider', 'local', '--ip', address, '--interface', 'eth0'],
      { env },
    )
    expect(here.code, here.stderr).toBe(0)
    expect(here.stdout).toContain(`${address}/32 (local lan) is on this host on eth0 (${b.mac})`)
    await release(rig, b, address)
    const nobody = await rig.agentCmd(
      obs,
      ['status', '--provider', 'local', '--ip', address, '--interface', 'eth0', '--json'],
      { env },
    )
    expect(JSON.parse(nobody.stdout)).toMatchObject({ holder: null, note: 'nobody answered within 100 ms' })

    // [local] probe-timeout bounds the wait; a bad value is refused before anything runs.
    const quick = join(dir, 'quick.conf')
    writeFileSync(quick, '[local]\nprobe-timeout = 0.1\n', { mode: 0o600 })
    const started = Date.now()
    const bounded = await rig.agentCmd(
      obs,
      ['status', '--provider', 'local', '--ip', address, '--interface', 'eth0', '--json'],
      { env: { ...env, IPMOVE_CONFIG: quick } },
    )
    expect(JSON.parse(bounded.stdout)).toMatchObject({ holder: null, note: 'nobody answered within 100 ms' })
    timings.push(`status --provider local with probe-timeout 0.1: ${Date.now() - started} ms in all`)
    writeFileSync(quick, '[local]\nprobe-timeout = 30\n', { mode: 0o600 })
    const refused = await rig.agentCmd(
      obs,
      ['status', '--provider', 'local', '--ip', address, '--interface', 'eth0'],
      { env: { ...env, IPMOVE_CONFIG: quick } },
    )
    expect(refused.code).toBe(2)
    expect(refused.stderr.trim()).toBe(
      `ipmove: error: ${quick} [local] probe-timeout must be from 0.01 to 10 seconds`,
    )
  })

  it('IPv4 after A released it: nobody answered, B claims, the observer flips within one interval', async () => {
    const { a, b } = rig
    const address = '192.0.2.51'
    await aHolds(rig, address)
    await release(rig, a, address)
    const { run, result, flippedAt, first } = await bClaims(address)
    expect(result).toMatchObject({
      from: null,
      to: { id: b.mac },
      outcome: 'moved',
      alias: { changed: true },
    })
    expect(run.stderr).toBe('')
    expect(flippedAt - first).toBeLessThanOrEqual(200)
    expect(await pingedWho(rig, rig.obs, address)).toEqual({ code: 0, received: { a: 0, b: 3 } })

    // Claiming again changes nothing on the link, and announces again.
    const again = await rig.agentCmd(
      b,
      ['move', '--provider', 'local', '--ip', address, '--interface', 'eth0', '--json'],
      { env },
    )
    expect(again.code, again.stderr).toBe(0)
    expect(JSON.parse(again.stdout)).toMatchObject({
      from: { id: b.mac },
      outcome: 'in-place',
      changed: false,
      alias: { changed: false, announced: { count: 5 } },
    })
    await release(rig, b, address)
  })

  it('IPv6 while A still answers: ndisc6 names A, B claims without waiting out DAD, the observer flips', async () => {
    const { a, b } = rig
    const address = '2001:db8::50'
    await aHolds(rig, address)
    const { result, frames, flippedAt, first } = await bClaims(address)
    expect(result).toMatchObject({
      ip: `${address}/128`,
      from: { id: a.mac },
      to: { id: b.mac },
      outcome: 'moved',
      alias: { changed: true, announced: { tool: 'na6', count: 5 } },
    })
    // Usable at once: the kernel's own DAD would have failed against A (and taken a second).
    const carried = await rig.address(b, address)
    expect(carried).toMatchObject({ family: 'inet6', prefixlen: 128 })
    expect(carried?.tentative).toBeUndefined()
    expect(carried?.dadfailed).toBeUndefined()
    for (const frame of frames) expect(frame).toContain(`${b.mac} > 33:33:00:00:00:01`)
    expect(flippedAt - first).toBeLessThanOrEqual(200)
    expect(await pingedWho(rig, rig.obs, address)).toEqual({ code: 0, received: { a: 0, b: 3 } })

    await release(rig, a, address)
    const status = await rig.agentCmd(
      rig.obs,
      ['status', '--provider', 'local', '--ip', address, '--interface', 'eth0', '--json'],
      { env },
    )
    expect(JSON.parse(status.stdout)).toMatchObject({ holder: { id: b.mac }, note: `answered by ${b.mac}` })
    await release(rig, b, address)
  })

  // Debian's arping (Habets) conflicts with iputils-arping; CI unpacks it beside and points here.
  const habetsDir = process.env.IPMOVE_TEST_HABETS_ARPING_DIR
  it.skipIf(!habetsDir)("IPv4 with Thomas Habets' arping: probe, claim and status", async () => {
    const { a, b, obs } = rig
    const address = '192.0.2.53'
    const habets = { ...env, PATH: `${habetsDir}:${process.env.PATH}` }
    await aHolds(rig, address)
    const claim = rig.agentCmd(
      b,
      ['move', '--provider', 'local', '--ip', address, '--interface', 'eth0', '--json'],
      {
        env: habets,
      },
    )
    await flipTo(rig, obs, address, b.mac, 5000)
    const run = await claim
    expect(run.code, run.stderr).toBe(0)
    expect(JSON.parse(run.stdout)).toMatchObject({
      from: { id: a.mac },
      to: { id: b.mac },
      alias: { changed: true, announced: { tool: 'arping (habets)' } },
    })
    await release(rig, a, address)
    const status = ['status', '--provider', 'local', '--ip', address, '--interface', 'eth0', '--json']
    const answered = await rig.agentCmd(obs, status, { env: habets })
    expect(JSON.parse(answered.stdout)).toMatchObject({ holder: { id: b.mac }, note: `answered by ${b.mac}` })
    await release(rig, b, address)
    const silent = await rig.agentCmd(obs, status, { env: habets })
    expect(silent.code, silent.stderr).toBe(0)
    expect(JSON.parse(silent.stdout)).toMatchObject({ holder: null, note: 'nobody answered within 100 ms' })
  })

  it('exits 7 for a missing interface, and when not root after saying who answers', async () => {
    const missing = await rig.agentCmd(
      rig.b,
      ['move', '--provider', 'local', '--ip', '192.0.2.52', '--interface', 'eth9'],
      { env },
    )
    expect(missing.code).toBe(7)
    expect(missing.stderr.trim()).toBe('ipmove: error: interface eth9 does not exist')

    const unprivileged = await rig.agentCmd(
      rig.b,
      ['move', '--provider', 'local', '--ip', '192.0.2.52', '--interface', 'eth0'],
      { user: 'nobody', env: { IPMOVE_CACHE_DIR: '/nonexistent' } },
    )
    expect(unprivileged.code).toBe(7)
    expect(unprivileged.stderr).toMatch(/needs root/)
    expect(unprivileged.stderr.trim().split('\n')).toHaveLength(1)
    expect(await rig.address(rig.b, '192.0.2.52')).toBeUndefined()
  })
})
