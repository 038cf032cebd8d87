/**
 * The Hetzner Robot account the emulator serves: web-service users, dedicated
 * servers and failover IPs. Documentation addresses only (RFC 5737, RFC 3849).
 * `--fixture FILE` takes JSON of the same shape.
 */
import { fixtureChecks } from '../fixture-check.js'

export interface RobotFixtureUser {
  user: string
  password: string
}

export interface RobotFixtureServer {
  number: number
  name: string
  /** The main IPv4: what a failover IP is routed to. */
  ip: string
  /** The server's IPv6 /64 network address, the target of an IPv6 failover net. */
  ipv6Net: string
}

export interface RobotFixtureFailover {
  /** The address (IPv4), or the network address of an IPv6 /64. */
  ip: string
  netmask: string
  /** The server the failover IP was ordered with. */
  serverNumber: number
  /** Where it is routed now, or null when unrouted. */
  activeServerIp: string | null
}

export interface RobotFixture {
  users: RobotFixtureUser[]
  servers: RobotFixtureServer[]
  failovers: RobotFixtureFailover[]
  /** POST/DELETE /failover/{ip} allowed per hour (a Robot client documents 50). */
  switchesPerHour: number
  /** GET requests allowed per hour on the failover and server paths. */
  readsPerHour: number
}

/** The default web-service user (fake; safe to print). */
export const ROBOT_USER = { user: '#ws+EmUlAt0r', password: 'robot-emulator-password' } as const

export const ROBOT_SERVERS = {
  db1: { number: 321, ip: '198.51.100.71' },
  db2: { number: 322, ip: '198.51.100.72' },
  db3: { number: 323, ip: '198.51.100.73' },
} as const

export const ROBOT_ADDRESSES = { v4: '203.0.113.70', v6: '2001:db8:70::', unrouted: '203.0.113.71' } as const

/** A fresh copy of the default fixture (callers may mutate it). */
export function defaultRobotFixture(): RobotFixture {
  const { db1, db2, db3 } = ROBOT_SERVERS
  return {
    users: [{ ...ROBOT_USER }],
    servers: [
      { number: db1.number, name: 'db-1', ip: db1.ip, ipv6Net: '2001:db8:71::' },
      { number: db2.number, name: 'db-2', ip: db2.ip, ipv6Net: '2001:db8:72::' },
      { number: db3.number, name: 'db-3', ip: db3.ip, ipv6Net: '2001:db8:73::' },
    ],
    failovers: [
      {
        ip: ROBOT_ADDRESSES.v4,
        netmask: '255.255.255.255',
        serverNumber: db1.number,
        activeServerIp: db1.ip,
      },
      {
        ip: ROBOT_ADDRESSES.v6,
        netmask: 'ffff:ffff:ffff:ffff::',
        serverNumber: db1.number,
        activeServerIp: '2001:db8:71::',
      },
      {
        ip: ROBOT_ADDRESSES.unrouted,
        netmask: '255.255.255.255',
        serverNumber: db2.number,
        activeServerIp: null,
      },
    ],
    switchesPerHour: 50,
    readsPerHour: 200,
  }
}

/** Check JSON from `--fixture FILE` against the fixture shape (exit 2 naming the field). */
export function parseRobotFixture(value: unknown, source: string): RobotFixture {
  const c = fixtureChecks(source)
  const root = c.object(value, 'the fixture')
  return {
    users: c.list(root.users, 'users', (x, w) => {
      const o = c.object(x, w)
      return { user: c.text(o.user, `${w}.user`), password: c.text(o.password, `${w}.password`) }
    }),
    servers: c.list(root.servers, 'servers', (x, w) => {
      const o = c.object(x, w)
      return {
        number: c.integer(o.number, `${w}.number`),
        name: c.text(o.name, `${w}.name`),
        ip: c.text(o.ip, `${w}.ip`),
        ipv6Net: c.text(o.ipv6Net, `${w}.ipv6Net`),
      }
    }),
    failovers: c.list(root.failovers, 'failovers', (x, w) => {
      const o = c.object(x, w)
      return {
        ip: c.text(o.ip, `${w}.ip`),
        netmask: c.text(o.netmask, `${w}.netmask`),
        serverNumber: c.integer(o.serverNumber, `${w}.serverNumber`),
        activeServerIp: c.nullable(o.activeServerIp, () => c.text(o.activeServerIp, `${w}.activeServerIp`)),
      }
    }),
    switchesPerHour:
      root.switchesPerHour === undefined ? 50 : c.integer(root.switchesPerHour, 'switchesPerHour'),
    readsPerHour: root.readsPerHour === undefined ? 200 : c.integer(root.readsPerHour, 'readsPerHour'),
  }
}
