/**
 * The Hetzner Cloud project the emulator serves: API tokens, servers and
 * floating IPs. Documentation addresses only (RFC 5737, RFC 3849). IDs are
 * integers, as the API's are. `--fixture FILE` takes JSON of the same shape.
 */
import { fixtureChecks } from '../fixture-check.js'

export interface HetznerFixtureToken {
  token: string
  /** A "Read" token: every request other than GET answers 403 token_readonly. */
  readOnly: boolean
}

export interface HetznerFixtureServer {
  id: number
  name: string
  /** Location name, e.g. fsn1. */
  location: string
  ipv4: string
  /** The server's IPv6 /64. */
  ipv6: string
}

export interface HetznerFixtureFloatingIp {
  id: number
  name: string
  type: 'ipv4' | 'ipv6'
  /** An address for ipv4; the /64 network (`2001:db8::/64`) for ipv6, as the API shows it. */
  ip: string
  /** Server id, or null when unassigned. */
  server: number | null
  homeLocation: string
}

export interface HetznerFixture {
  tokens: HetznerFixtureToken[]
  servers: HetznerFixtureServer[]
  floatingIps: HetznerFixtureFloatingIp[]
  /** Requests per hour per project (the API's default: 3600). */
  rateLimitPerHour: number
}

/** The default tokens (fake; safe to print). */
export const HETZNER_TOKENS = {
  readWrite: 'hcloud-emulator-token-0000000000000000000000000000000000000000000000000',
  readOnly: 'hcloud-emulator-readonly-000000000000000000000000000000000000000000000000',
} as const

export const HETZNER_IDS = {
  servers: { web1: 1001, web2: 1002, db1: 1003, db2: 1004, nbg: 1005 },
  floatingIps: { v4: 42, v6: 43, spare: 44 },
} as const

export const HETZNER_ADDRESSES = {
  v4: '198.51.100.20',
  v6: '2001:db8:20::/64',
  spare: '198.51.100.21',
} as const

function server(id: number, name: string, location: string, n: number): HetznerFixtureServer {
  return { id, name, location, ipv4: `203.0.113.${n}`, ipv6: `2001:db8:${n}::/64` }
}

/** A fresh copy of the default fixture (callers may mutate it). */
export function defaultHetznerFixture(): HetznerFixture {
  const { servers, floatingIps } = HETZNER_IDS
  return {
    tokens: [
      { token: HETZNER_TOKENS.readWrite, readOnly: false },
      { token: HETZNER_TOKENS.readOnly, readOnly: true },
    ],
    servers: [
      server(servers.web1, 'web-1', 'fsn1', 11),
      server(servers.web2, 'web-2', 'fsn1', 12),
      server(servers.db1, 'db-1', 'fsn1', 13),
      server(servers.db2, 'db-2', 'nbg1', 14),
      server(servers.nbg, 'web-nbg', 'nbg1', 15),
    ],
    floatingIps: [
      {
        id: floatingIps.v4,
        name: 'vip-v4',
        type: 'ipv4',
        ip: HETZNER_ADDRESSES.v4,
        server: servers.web1,
        homeLocation: 'fsn1',
      },
      {
        id: floatingIps.v6,
        name: 'vip-v6',
        type: 'ipv6',
        ip: HETZNER_ADDRESSES.v6,
        server: servers.web2,
        homeLocation: 'fsn1',
      },
      {
        id: floatingIps.spare,
        name: 'spare',
        type: 'ipv4',
        ip: HETZNER_ADDRESSES.spare,
        server: null,
        homeLocation: 'nbg1',
      },
    ],
    rateLimitPerHour: 3600,
  }
}

/** Check JSON from `--fixture FILE` against the fixture shape (exit 2 naming the field). */
export function parseHetznerFixture(value: unknown, source: string): HetznerFixture {
  const c = fixtureChecks(source)
  const root = c.object(value, 'the fixture')
  const fixture: HetznerFixture = {
    tokens: c.list(root.tokens, 'tokens', (x, w) => {
      const o = c.object(x, w)
      return { token: c.text(o.token, `${w}.token`), readOnly: o.readOnly === true }
    }),
    servers: c.list(root.servers, 'servers', (x, w) => {
      const o = c.object(x, w)
      return {
        id: c.integer(o.id, `${w}.id`),
        name: c.text(o.name, `${w}.name`),
        location: c.text(o.location, `${w}.location`),
        ipv4: c.text(o.ipv4, `${w}.ipv4`),
        ipv6: c.text(o.ipv6, `${w}.ipv6`),
      }
    }),
    floatingIps: c.list(root.floatingIps, 'floatingIps', (x, w) => {
      const o = c.object(x, w)
      return {
        id: c.integer(o.id, `${w}.id`),
        name: c.text(o.name, `${w}.name`),
        type: c.oneOf(o.type, `${w}.type`, ['ipv4', 'ipv6'] as const),
        ip: c.text(o.ip, `${w}.ip`),
        server: c.nullable(o.server, () => c.integer(o.server, `${w}.server`)),
        homeLocation: c.text(o.homeLocation, `${w}.homeLocation`),
      }
    }),
    rateLimitPerHour:
      root.rateLimitPerHour === undefined ? 3600 : c.integer(root.rateLimitPerHour, 'rateLimitPerHour'),
  }
  checkUniqueNames(fixture, c.fail)
  return fixture
}

/** Server and floating IP names are unique per project: the API refuses duplicates (uniqueness_error). */
export function checkUniqueNames(
  fixture: HetznerFixture,
  fail: (where: string, what: string) => never,
): void {
  for (const [list, noun] of [
    [fixture.servers, 'servers'],
    [fixture.floatingIps, 'floatingIps'],
  ] as const) {
    const seen = new Set<string>()
    list.forEach((item, i) => {
      if (seen.has(item.name))
        fail(`${noun}[${i}].name`, `repeats ${JSON.stringify(item.name)}: names are unique per project`)
      seen.add(item.name)
    })
  }
}
