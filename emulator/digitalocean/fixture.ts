/**
 * The DigitalOcean account the emulator serves: API tokens with their scopes,
 * droplets and reserved IPs. Documentation addresses only (RFC 5737); anchor
 * IPs are in 10.0.0.0/8 as DigitalOcean's are. `--fixture FILE` takes JSON of
 * the same shape.
 */
import { fixtureChecks } from '../fixture-check.js'

export interface DigitalOceanFixtureToken {
  token: string
  /** Custom-scoped token's scopes (`reserved_ip:update`…); `*` is a full-access token. */
  scopes: string[]
}

export interface DigitalOceanFixtureDroplet {
  id: number
  name: string
  /** Region slug, e.g. fra1. Reserved IPs are regional: assign refuses other regions. */
  region: string
  publicIpv4: string
  /** The anchor IP a reserved IP is NATed to. */
  anchorIpv4: string
  tags: string[]
}

export interface DigitalOceanFixtureReservedIp {
  ip: string
  region: string
  /** Droplet id, or null when unassigned. */
  dropletId: number | null
  projectId: string
}

export interface DigitalOceanFixture {
  tokens: DigitalOceanFixtureToken[]
  droplets: DigitalOceanFixtureDroplet[]
  reservedIps: DigitalOceanFixtureReservedIp[]
  /** Requests per hour per token (the API's: 5000). */
  rateLimitPerHour: number
  /** Requests per minute (the API's burst limit: 250). */
  burstPerMinute: number
}

/** The default tokens (fake; safe to print). */
export const DIGITALOCEAN_TOKENS = {
  full: 'dop_v1_emulator00000000000000000000000000000000000000000000000000000',
  /** Scopes for reading only: assigning answers 403. */
  readOnly: 'dop_v1_emulatorreadonly000000000000000000000000000000000000000000000',
} as const

export const DIGITALOCEAN_IDS = {
  droplets: { web1: 3164441, web2: 3164442, twinA: 3164443, twinB: 3164444, nyc: 3164445 },
} as const

export const DIGITALOCEAN_ADDRESSES = {
  fra: '203.0.113.40',
  nyc: '203.0.113.41',
  spare: '203.0.113.42',
} as const

const PROJECT = '746c6152-2fa2-11ed-92d3-27aaa54e4988'

function droplet(id: number, name: string, region: string, n: number, tags: string[] = []) {
  return { id, name, region, publicIpv4: `198.51.100.${n}`, anchorIpv4: `10.19.0.${n}`, tags }
}

/** A fresh copy of the default fixture (callers may mutate it). */
export function defaultDigitalOceanFixture(): DigitalOceanFixture {
  const { droplets } = DIGITALOCEAN_IDS
  return {
    tokens: [
      { token: DIGITALOCEAN_TOKENS.full, scopes: ['*'] },
      { token: DIGITALOCEAN_TOKENS.readOnly, scopes: ['reserved_ip:read', 'droplet:read', 'actions:read'] },
    ],
    droplets: [
      droplet(droplets.web1, 'web-1', 'fra1', 31, ['lb']),
      droplet(droplets.web2, 'web-2', 'fra1', 32, ['lb']),
      droplet(droplets.twinA, 'twin', 'fra1', 33),
      droplet(droplets.twinB, 'twin', 'fra1', 34),
      droplet(droplets.nyc, 'web-nyc', 'nyc3', 35),
    ],
    reservedIps: [
      { ip: DIGITALOCEAN_ADDRESSES.fra, region: 'fra1', dropletId: droplets.web1, projectId: PROJECT },
      { ip: DIGITALOCEAN_ADDRESSES.nyc, region: 'nyc3', dropletId: droplets.nyc, projectId: PROJECT },
      { ip: DIGITALOCEAN_ADDRESSES.spare, region: 'fra1', dropletId: null, projectId: PROJECT },
    ],
    rateLimitPerHour: 5000,
    burstPerMinute: 250,
  }
}

/** Check JSON from `--fixture FILE` against the fixture shape (exit 2 naming the field). */
export function parseDigitalOceanFixture(value: unknown, source: string): DigitalOceanFixture {
  const c = fixtureChecks(source)
  const root = c.object(value, 'the fixture')
  return {
    tokens: c.list(root.tokens, 'tokens', (x, w) => {
      const o = c.object(x, w)
      return {
        token: c.text(o.token, `${w}.token`),
        scopes: c.list(o.scopes, `${w}.scopes`, (y, v) => c.text(y, v)),
      }
    }),
    droplets: c.list(root.droplets, 'droplets', (x, w) => {
      const o = c.object(x, w)
      return {
        id: c.integer(o.id, `${w}.id`),
        name: c.text(o.name, `${w}.name`),
        region: c.text(o.region, `${w}.region`),
        publicIpv4: c.text(o.publicIpv4, `${w}.publicIpv4`),
        anchorIpv4: c.text(o.anchorIpv4, `${w}.anchorIpv4`),
        tags: c.list(o.tags ?? [], `${w}.tags`, (y, v) => c.text(y, v)),
      }
    }),
    reservedIps: c.list(root.reservedIps, 'reservedIps', (x, w) => {
      const o = c.object(x, w)
      return {
        ip: c.text(o.ip, `${w}.ip`),
        region: c.text(o.region, `${w}.region`),
        dropletId: c.nullable(o.dropletId, () => c.integer(o.dropletId, `${w}.dropletId`)),
        projectId: typeof o.projectId === 'string' ? o.projectId : PROJECT,
      }
    }),
    rateLimitPerHour:
      root.rateLimitPerHour === undefined ? 5000 : c.integer(root.rateLimitPerHour, 'rateLimitPerHour'),
    burstPerMinute:
      root.burstPerMinute === undefined ? 250 : c.integer(root.burstPerMinute, 'burstPerMinute'),
  }
}
