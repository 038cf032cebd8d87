/**
 * The Scaleway project the emulator serves: API keys, Instance servers and
 * Instance flexible IPs, by zone. Documentation addresses only (RFC 5737).
 * `--fixture FILE` takes JSON of the same shape.
 */
import { fixtureChecks } from '../fixture-check.js'

export interface ScalewayFixtureKey {
  accessKey: string
  secretKey: string
  /** A key whose IAM policy only reads Instances: PATCH answers 403 permissions_denied. */
  readOnly: boolean
}

export interface ScalewayFixtureServer {
  id: string
  name: string
  zone: string
}

export interface ScalewayFixtureIp {
  id: string
  address: string
  zone: string
  /** Server id, or null when detached. */
  server: string | null
}

export interface ScalewayFixture {
  project: string
  keys: ScalewayFixtureKey[]
  servers: ScalewayFixtureServer[]
  ips: ScalewayFixtureIp[]
}

/** The default keys (fake; safe to print). */
export const SCALEWAY_KEYS = {
  accessKey: 'SCWEMULATOR000000001',
  secretKey: '11111111-2222-4333-8444-555555555555',
  readOnlyAccessKey: 'SCWEMULATOR000000002',
  readOnlySecretKey: '66666666-7777-4888-8999-000000000000',
} as const

export const SCALEWAY_IDS = {
  project: '0f0e0d0c-0b0a-4908-8706-050403020100',
  servers: {
    web1: '10000000-0000-4000-8000-000000000001',
    web2: '10000000-0000-4000-8000-000000000002',
    web10: '10000000-0000-4000-8000-000000000010',
    par2: '10000000-0000-4000-8000-000000000003',
  },
  ips: {
    vip: '20000000-0000-4000-8000-000000000001',
    spare: '20000000-0000-4000-8000-000000000002',
    par2: '20000000-0000-4000-8000-000000000003',
  },
} as const

export const SCALEWAY_ADDRESSES = {
  vip: '198.51.100.60',
  spare: '198.51.100.61',
  par2: '198.51.100.62',
} as const

/** A fresh copy of the default fixture (callers may mutate it). */
export function defaultScalewayFixture(): ScalewayFixture {
  const { servers, ips } = SCALEWAY_IDS
  return {
    project: SCALEWAY_IDS.project,
    keys: [
      { accessKey: SCALEWAY_KEYS.accessKey, secretKey: SCALEWAY_KEYS.secretKey, readOnly: false },
      {
        accessKey: SCALEWAY_KEYS.readOnlyAccessKey,
        secretKey: SCALEWAY_KEYS.readOnlySecretKey,
        readOnly: true,
      },
    ],
    servers: [
      { id: servers.web1, name: 'web-1', zone: 'fr-par-1' },
      { id: servers.web2, name: 'web-2', zone: 'fr-par-1' },
      // "web-1" is a prefix of it: the API's name filter matches both.
      { id: servers.web10, name: 'web-10', zone: 'fr-par-1' },
      { id: servers.par2, name: 'web-1', zone: 'fr-par-2' },
    ],
    ips: [
      { id: ips.vip, address: SCALEWAY_ADDRESSES.vip, zone: 'fr-par-1', server: servers.web1 },
      { id: ips.spare, address: SCALEWAY_ADDRESSES.spare, zone: 'fr-par-1', server: null },
      { id: ips.par2, address: SCALEWAY_ADDRESSES.par2, zone: 'fr-par-2', server: servers.par2 },
    ],
  }
}

/** Check JSON from `--fixture FILE` against the fixture shape (exit 2 naming the field). */
export function parseScalewayFixture(value: unknown, source: string): ScalewayFixture {
  const c = fixtureChecks(source)
  const root = c.object(value, 'the fixture')
  return {
    project: c.text(root.project, 'project'),
    keys: c.list(root.keys, 'keys', (x, w) => {
      const o = c.object(x, w)
      return {
        accessKey: c.text(o.accessKey, `${w}.accessKey`),
        secretKey: c.text(o.secretKey, `${w}.secretKey`),
        readOnly: o.readOnly === true,
      }
    }),
    servers: c.list(root.servers, 'servers', (x, w) => {
      const o = c.object(x, w)
      return {
        id: c.text(o.id, `${w}.id`),
        name: c.text(o.name, `${w}.name`),
        zone: c.text(o.zone, `${w}.zone`),
      }
    }),
    ips: c.list(root.ips, 'ips', (x, w) => {
      const o = c.object(x, w)
      return {
        id: c.text(o.id, `${w}.id`),
        address: c.text(o.address, `${w}.address`),
        zone: c.text(o.zone, `${w}.zone`),
        server: c.nullable(o.server, () => c.text(o.server, `${w}.server`)),
      }
    }),
  }
}
