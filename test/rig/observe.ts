/**
 * What the observer on the rig's LAN sees, read from the kernels themselves:
 * neighbour entries, echo counters, captured announcements; and the quiet
 * moves (no announcement) that set a scene for it.
 */
import { expect } from 'vitest'
import { type Capture, type Exec, type Rig, type RigNode, waitFor } from './netns.js'

/** ICMP echo requests a node has received so far (IPv4 or IPv6), from its own /proc/net counters. */
export async function echoesIn(rig: Rig, node: RigNode, version: 4 | 6): Promise<number> {
  if (version === 6) {
    const text = (await rig.run(node, ['cat', '/proc/net/snmp6'])).stdout
    return Number(/^Icmp6InEchos\s+(\d+)/m.exec(text)?.[1])
  }
  const lines = (await rig.run(node, ['cat', '/proc/net/snmp'])).stdout
    .split('\n')
    .filter((l) => l.startsWith('Icmp:'))
  const names = lines[0]!.split(/\s+/)
  const values = lines[1]!.split(/\s+/)
  return Number(values[names.indexOf('InEchos')])
}

export function ping(rig: Rig, node: RigNode, address: string, count: number): Promise<Exec> {
  return rig.run(node, [
    'ping',
    address.includes(':') ? '-6' : '-4',
    '-c',
    String(count),
    '-i',
    '0.2',
    '-W',
    '1',
    address,
  ])
}

/** A gratuitous ARP as tcpdump prints it: `Request who-has A (ff:ff:ff:ff:ff:ff) tell A`. */
export function isGarp(line: string, address: string): boolean {
  const a = address.replace(/\./g, '\\.')
  return new RegExp(`Request who-has ${a} (\\([0-9a-f:]+\\) )?tell ${a},`).test(line)
}

/** An unsolicited neighbour advertisement for `address`, as tcpdump prints it. */
export function isAdvertisement(line: string, address: string): boolean {
  return line.includes(`neighbor advertisement, tgt is ${address}`)
}

/** Capture on `node` the announcements for `address`: gratuitous ARPs, or unsolicited NAs for IPv6. */
export async function captureAnnouncements(rig: Rig, node: RigNode, address: string): Promise<Capture> {
  const v6 = address.includes(':')
  const capture = await rig.capture(node, v6 ? ['icmp6', 'and', 'ip6[40]', '==', '136'] : ['arp'])
  return {
    stop: async () =>
      (await capture.stop()).filter((l) => (v6 ? isAdvertisement(l, address) : isGarp(l, address))),
  }
}

/**
 * Poll a node's neighbour table until `address` maps to `mac`; resolves with when the poll that first saw
 * it began. Each poll is an `ip` process, which takes 5 ms to start on a quiet machine and over 100 ms on
 * a busy one: timed at its end, a flip would look that much later than it was.
 */
export function flipTo(
  rig: Rig,
  node: RigNode,
  address: string,
  mac: string,
  timeoutMs: number,
): Promise<number> {
  return waitFor(
    `${node.name}'s entry for ${address} to carry ${mac}`,
    async () => {
      const polledAt = Date.now()
      return (await rig.neigh(node, address))?.lladdr === mac ? polledAt : undefined
    },
    timeoutMs,
    5,
  )
}

/**
 * Ping `address` from `from` three times; how many echo requests each other
 * node received meanwhile (by its own counters), so a test sees who answered.
 */
export async function pingedWho(
  rig: Rig,
  from: RigNode,
  address: string,
): Promise<{ code: number; received: Record<string, number> }> {
  const version = address.includes(':') ? 6 : 4
  const others = rig.nodes.filter((n) => n !== from)
  const before = await Promise.all(others.map((n) => echoesIn(rig, n, version)))
  const { code } = await ping(rig, from, address, 3)
  const after = await Promise.all(others.map((n) => echoesIn(rig, n, version)))
  return { code, received: Object.fromEntries(others.map((n, i) => [n.name, after[i]! - before[i]!])) }
}

/** `node` carries `address` on eth0 without announcing it (`alias add --no-announce`, plus `flags`). */
export async function carry(rig: Rig, node: RigNode, address: string, ...flags: string[]): Promise<void> {
  const argv = ['alias', 'add', '--ip', address, '--interface', 'eth0', ...flags, '--no-announce']
  const add = await rig.agentCmd(node, argv)
  expect(add.code, add.stderr).toBe(0)
}

/** `node` no longer carries `address` on eth0. */
export async function release(rig: Rig, node: RigNode, address: string): Promise<void> {
  const released = await rig.agentCmd(node, ['release', '--ip', address, '--interface', 'eth0'])
  expect(released.code, released.stderr).toBe(0)
}

/** A carries the address (no DAD) and the observer has learnt A's MAC for it. */
export async function aHolds(rig: Rig, address: string): Promise<void> {
  await carry(rig, rig.a, address, '--nodad')
  expect((await ping(rig, rig.obs, address, 1)).code).toBe(0)
  expect((await rig.neigh(rig.obs, address))?.lladdr).toBe(rig.a.mac)
}

/** Drop what `match` selects on its way into `node` (nftables); resolves with how to undo it. */
export async function dropIn(rig: Rig, node: RigNode, match: string[]): Promise<() => Promise<void>> {
  await mustRun(rig, node, ['nft', 'add', 'table', 'inet', 'ipmtest'])
  await mustRun(rig, node, [
    'nft',
    'add',
    'chain',
    'inet',
    'ipmtest',
    'in',
    '{ type filter hook input priority 0; }',
  ])
  await mustRun(rig, node, ['nft', 'add', 'rule', 'inet', 'ipmtest', 'in', ...match, 'drop'])
  return async () => mustRun(rig, node, ['nft', 'delete', 'table', 'inet', 'ipmtest'])
}

async function mustRun(rig: Rig, node: RigNode, argv: string[]): Promise<void> {
  const result = await rig.run(node, argv)
  expect(result.code, `${argv.join(' ')}: ${result.stderr}`).toBe(0)
}
