import { fixtureChecks } from '../fixture-check.js'

/**
 * The OVH emulator's default account: credentials, two Public Cloud projects and
 * one classic (dedicated server) failover IP. Documentation addresses only
 * (RFC 5737, RFC 3849). `--fixture FILE` takes JSON of the same shape.
 */

/** An OVH access rule; `*` matches any run of characters, `/` included. */
export interface OvhAccessRule {
  method: string
  path: string
}

export interface OvhFixtureApplication {
  key: string
  secret: string
}

/** auth.CredentialStateEnum: only a `validated` consumer key may call the API. */
export const OVH_CREDENTIAL_STATES = ['expired', 'pendingValidation', 'refused', 'validated'] as const
export type OvhCredentialState = (typeof OVH_CREDENTIAL_STATES)[number]

export interface OvhFixtureConsumer {
  key: string
  /** The application the consumer key was issued to. */
  applicationKey: string
  rules: OvhAccessRule[]
  /** Default `validated`; POST /auth/credential makes `pendingValidation` keys. */
  state?: OvhCredentialState
}

/** An OAuth2 service account (client credentials flow). */
export interface OvhFixtureOAuthClient {
  id: string
  secret: string
  rules: OvhAccessRule[]
}

export interface OvhInstanceAddress {
  ip: string
  type: 'public' | 'private'
  version: 4 | 6
  gatewayIp: string | null
  networkId: string
}

export interface OvhFixtureInstance {
  id: string
  name: string
  region: string
  ipAddresses: OvhInstanceAddress[]
}

export interface OvhFixtureFailoverIp {
  /** Opaque id; not the address. */
  id: string
  ip: string
  block: string
  /** Instance id, or null when routed nowhere. */
  routedTo: string | null
  /** Where the IP can live; attach refuses instances of other regions. Not shown by the API. */
  region: string
  geoloc: string
  continentCode: string
  subType: 'cloud' | 'ovh'
}

export interface OvhFixtureProject {
  /** 32 hex characters, as OVH's serviceName. */
  id: string
  /** The human name, e.g. "t18s". */
  description: string
  instances: OvhFixtureInstance[]
  failoverIps: OvhFixtureFailoverIp[]
}

export interface OvhFixtureDedicatedServer {
  /** The service name, e.g. ns3000001.ip-198-51-100.eu. */
  name: string
  /** Next hops a move to this server may name. */
  nexthop: string[]
}

export interface OvhFixtureClassicIp {
  /** `address/prefix`, as /ip/{block} takes it (URL-encoded). */
  block: string
  /** Service name of the dedicated server holding it. */
  routedTo: string
  description: string
}

export interface OvhFixture {
  applications: OvhFixtureApplication[]
  consumers: OvhFixtureConsumer[]
  oauthClients: OvhFixtureOAuthClient[]
  projects: OvhFixtureProject[]
  dedicatedServers: OvhFixtureDedicatedServer[]
  classicIps: OvhFixtureClassicIp[]
}

/** The default credentials (fake; safe to print). */
export const OVH_CREDENTIALS = {
  applicationKey: 'emulator-ak',
  applicationSecret: 'emulator-as',
  consumerKey: 'emulator-ck',
  readOnlyConsumerKey: 'emulator-ck-readonly',
  clientId: 'emulator-client',
  clientSecret: 'emulator-client-secret',
} as const

/** Ids of the default fixture, by a name tests can use. */
export const OVH_IDS = {
  projects: {
    t18s: '9f3c2a71d4e84b06a5c1e2f3a4b5c6d7',
    staging: '1b2c3d4e5f60718293a4b5c6d7e8f901',
  },
  instances: {
    sbg1: 'c1a5e0b2-6f3d-4e8a-9b7c-0d1e2f3a4b51',
    sbg2: 'c1a5e0b2-6f3d-4e8a-9b7c-0d1e2f3a4b52',
    twinA: 'd2b6f1c3-7a4e-4f9b-8c8d-1e2f3a4b5c61',
    twinB: 'd2b6f1c3-7a4e-4f9b-8c8d-1e2f3a4b5c62',
    gra1: 'e3c7a2d4-8b5f-4a0c-9d9e-2f3a4b5c6d71',
    staging1: 'f4d8b3e5-9c6a-4b1d-8e0f-3a4b5c6d7e81',
  },
  failoverIps: {
    v4: '5e0b8f1a-2c3d-4e5f-a6b7-c8d9e0f1a2b3',
    v6: '6f1c9a2b-3d4e-4f5a-b7c8-d9e0f1a2b3c4',
  },
  dedicatedServers: {
    ns1: 'ns3000001.ip-198-51-100.eu',
    ns2: 'ns3000002.ip-198-51-100.eu',
  },
} as const

/** The addresses of the default fixture. */
export const OVH_ADDRESSES = {
  cloudV4: '203.0.113.10',
  cloudV6: '2001:db8:1::10',
  classic: '198.51.100.7',
} as const

/** The minimal rules of an ipmove consumer key (see cloud-apis.md). */
export const OVH_MINIMAL_RULES: OvhAccessRule[] = [
  { method: 'GET', path: '/cloud/project' },
  { method: 'GET', path: '/cloud/project/*' },
  { method: 'POST', path: '/cloud/project/*/ip/failover/*/attach' },
  { method: 'GET', path: '/ip/*' },
  { method: 'POST', path: '/ip/*/move' },
]

function instance(id: string, name: string, region: string, n: number): OvhFixtureInstance {
  return {
    id,
    name,
    region,
    ipAddresses: [
      { ip: `203.0.113.${n}`, type: 'public', version: 4, gatewayIp: '203.0.113.1', networkId: 'ext-net' },
      {
        ip: `2001:db8:2::${n}`,
        type: 'public',
        version: 6,
        gatewayIp: '2001:db8:2::1',
        networkId: 'ext-net',
      },
    ],
  }
}

/** A fresh copy of the default fixture (callers may mutate it). */
export function defaultOvhFixture(): OvhFixture {
  const { projects, instances, failoverIps, dedicatedServers } = OVH_IDS
  const readRules = OVH_MINIMAL_RULES.filter((rule) => rule.method === 'GET')
  return {
    applications: [{ key: OVH_CREDENTIALS.applicationKey, secret: OVH_CREDENTIALS.applicationSecret }],
    consumers: [
      {
        key: OVH_CREDENTIALS.consumerKey,
        applicationKey: OVH_CREDENTIALS.applicationKey,
        rules: OVH_MINIMAL_RULES.map((rule) => ({ ...rule })),
      },
      {
        key: OVH_CREDENTIALS.readOnlyConsumerKey,
        applicationKey: OVH_CREDENTIALS.applicationKey,
        rules: readRules.map((rule) => ({ ...rule })),
      },
    ],
    oauthClients: [
      {
        id: OVH_CREDENTIALS.clientId,
        secret: OVH_CREDENTIALS.clientSecret,
        rules: OVH_MINIMAL_RULES.map((rule) => ({ ...rule })),
      },
    ],
    projects: [
      {
        id: projects.t18s,
        description: 't18s',
        instances: [
          instance(instances.sbg1, 'bi-edge-sbg-1', 'SBG5', 21),
          instance(instances.sbg2, 'bi-edge-sbg-2', 'SBG5', 22),
          instance(instances.twinA, 'twin', 'SBG5', 31),
          instance(instances.twinB, 'twin', 'SBG5', 32),
          instance(instances.gra1, 'bi-edge-gra-1', 'GRA11', 41),
        ],
        failoverIps: [
          {
            id: failoverIps.v4,
            ip: OVH_ADDRESSES.cloudV4,
            block: `${OVH_ADDRESSES.cloudV4}/32`,
            routedTo: instances.sbg1,
            region: 'SBG5',
            geoloc: 'fr',
            continentCode: 'EU',
            subType: 'cloud',
          },
          {
            id: failoverIps.v6,
            ip: OVH_ADDRESSES.cloudV6,
            block: `${OVH_ADDRESSES.cloudV6}/128`,
            routedTo: instances.sbg2,
            region: 'SBG5',
            geoloc: 'fr',
            continentCode: 'EU',
            subType: 'cloud',
          },
        ],
      },
      {
        id: projects.staging,
        description: 'staging',
        instances: [instance(instances.staging1, 'stg-sbg-1', 'SBG5', 51)],
        failoverIps: [],
      },
    ],
    dedicatedServers: [
      { name: dedicatedServers.ns1, nexthop: ['198.51.100.1'] },
      { name: dedicatedServers.ns2, nexthop: ['198.51.100.2'] },
    ],
    classicIps: [
      {
        block: `${OVH_ADDRESSES.classic}/32`,
        routedTo: dedicatedServers.ns1,
        description: 'bi-edge classic failover',
      },
    ],
  }
}

/**
 * Check JSON from `--fixture FILE` against the fixture shape; the error names the
 * file and the first field that is wrong (exit 2).
 */
export function parseOvhFixture(value: unknown, source: string): OvhFixture {
  const { object, list, text, oneOf } = fixtureChecks(source)
  const rules = (v: unknown, where: string) =>
    list(v, where, (x, w) => {
      const o = object(x, w)
      return { method: text(o.method, `${w}.method`).toUpperCase(), path: text(o.path, `${w}.path`) }
    })

  const root = object(value, 'the fixture')
  return {
    applications: list(root.applications, 'applications', (x, w) => {
      const o = object(x, w)
      return { key: text(o.key, `${w}.key`), secret: text(o.secret, `${w}.secret`) }
    }),
    consumers: list(root.consumers, 'consumers', (x, w) => {
      const o = object(x, w)
      return {
        key: text(o.key, `${w}.key`),
        applicationKey: text(o.applicationKey, `${w}.applicationKey`),
        rules: rules(o.rules, `${w}.rules`),
        state: o.state === undefined ? undefined : oneOf(o.state, `${w}.state`, OVH_CREDENTIAL_STATES),
      }
    }),
    oauthClients: list(root.oauthClients ?? [], 'oauthClients', (x, w) => {
      const o = object(x, w)
      return {
        id: text(o.id, `${w}.id`),
        secret: text(o.secret, `${w}.secret`),
        rules: rules(o.rules, `${w}.rules`),
      }
    }),
    projects: list(root.projects, 'projects', (x, w) => {
      const o = object(x, w)
      return {
        id: text(o.id, `${w}.id`),
        description: text(o.description, `${w}.description`),
        instances: list(o.instances, `${w}.instances`, (y, v) => {
          const i = object(y, v)
          return {
            id: text(i.id, `${v}.id`),
            name: text(i.name, `${v}.name`),
            region: text(i.region, `${v}.region`),
            ipAddresses: list(i.ipAddresses ?? [], `${v}.ipAddresses`, (z, u) => {
              const a = object(z, u)
              return {
                ip: text(a.ip, `${u}.ip`),
                type: oneOf(a.type, `${u}.type`, ['public', 'private'] as const),
                version: a.version === 6 ? 6 : 4,
                gatewayIp: typeof a.gatewayIp === 'string' ? a.gatewayIp : null,
                networkId: typeof a.networkId === 'string' ? a.networkId : 'ext-net',
              }
            }),
          }
        }),
        failoverIps: list(o.failoverIps ?? [], `${w}.failoverIps`, (y, v) => {
          const f = object(y, v)
          return {
            id: text(f.id, `${v}.id`),
            ip: text(f.ip, `${v}.ip`),
            block: text(f.block, `${v}.block`),
            routedTo: f.routedTo === null ? null : text(f.routedTo, `${v}.routedTo`),
            region: text(f.region, `${v}.region`),
            geoloc: typeof f.geoloc === 'string' ? f.geoloc : 'fr',
            continentCode: typeof f.continentCode === 'string' ? f.continentCode : 'EU',
            subType:
              f.subType === undefined ? 'cloud' : oneOf(f.subType, `${v}.subType`, ['cloud', 'ovh'] as const),
          }
        }),
      }
    }),
    dedicatedServers: list(root.dedicatedServers ?? [], 'dedicatedServers', (x, w) => {
      const o = object(x, w)
      return {
        name: text(o.name, `${w}.name`),
        nexthop: list(o.nexthop ?? [], `${w}.nexthop`, (y, v) => text(y, v)),
      }
    }),
    classicIps: list(root.classicIps ?? [], 'classicIps', (x, w) => {
      const o = object(x, w)
      return {
        block: text(o.block, `${w}.block`),
        routedTo: text(o.routedTo, `${w}.routedTo`),
        description: typeof o.description === 'string' ? o.description : '',
      }
    }),
  }
}
