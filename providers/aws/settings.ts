/**
 * AWS settings, ids and IAM policies: everything about AWS that needs no SDK,
 * so that the config file, `ipmove aws policy` and flag checks never load
 * `@aws-sdk/client-ec2` (providers/aws/provider.ts is the only module that does).
 */
import { isIP } from 'node:net'
import { usageError } from '../../src/errors.js'
import { shown } from '../../src/validate.js'

export const AWS_MODES = ['eip', 'private', 'route'] as const
export type AwsMode = (typeof AWS_MODES)[number]

/** Keys the config file's `[aws]` section may hold (all of them flags too). No secrets: credentials stay with the SDK. */
export const AWS_SETTING_KEYS: readonly string[] = [
  'mode',
  'region',
  'profile',
  'endpoint',
  'route-table',
  'eni',
  'private-ip',
]

export const INSTANCE_ID = /^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$/
export const ENI_ID = /^eni-(?:[0-9a-f]{8}|[0-9a-f]{17})$/
export const ALLOCATION_ID = /^eipalloc-(?:[0-9a-f]{8}|[0-9a-f]{17})$/
export const ROUTE_TABLE_ID = /^rtb-(?:[0-9a-f]{8}|[0-9a-f]{17})$/
/** us-east-1, eu-west-3, us-gov-west-1, cn-north-1, ap-southeast-5… */
const REGION = /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/
/** What the SDK's ini parser accepts in a profile name, minus anything a shell would interpret. */
const PROFILE = /^[A-Za-z0-9_.+@-]{1,64}$/
const LOOPBACK = /^(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])$/

/** Provider settings after validation: from `[aws]` and the flags, flags winning. */
export interface AwsSettings {
  mode: AwsMode
  region?: string
  profile?: string
  endpoint?: string
  /** Route tables to update in route mode; empty means "every table that has a route for the IP". */
  routeTables: string[]
  /** The target's network interface, on instances with several. */
  eni?: string
  /** eip mode: the private address on the target's interface the EIP maps to. */
  privateIp?: string
  /** `move --dry-run`: check every write with EC2's DryRun instead of writing. */
  dryRun: boolean
}

export function parseAwsMode(value: string, where = '--mode'): AwsMode {
  if (!(AWS_MODES as readonly string[]).includes(value)) {
    throw usageError(`${where} ${shown(value)} is not a mode (known: ${AWS_MODES.join(', ')})`)
  }
  return value as AwsMode
}

/** Check one `[aws]` value (or flag); `where` names it in the error. */
export function checkAwsSetting(key: string, value: string, where: string): void {
  switch (key) {
    case 'mode':
      parseAwsMode(value, where)
      return
    case 'region':
      if (!REGION.test(value)) throw usageError(`${where} ${shown(value)} is not an AWS region name`)
      return
    case 'profile':
      if (!PROFILE.test(value)) throw usageError(`${where} ${shown(value)} is not a valid profile name`)
      return
    case 'endpoint':
      checkEndpoint(value, where)
      return
    case 'route-table':
      for (const id of splitList(value)) {
        if (!ROUTE_TABLE_ID.test(id))
          throw usageError(`${where} ${shown(id)} is not a route table id (rtb-…)`)
      }
      if (splitList(value).length === 0) throw usageError(`${where} is empty`)
      return
    case 'eni':
      if (!ENI_ID.test(value))
        throw usageError(`${where} ${shown(value)} is not a network interface id (eni-…)`)
      return
    case 'private-ip':
      if (isIP(value) !== 4) throw usageError(`${where} ${shown(value)} is not an IPv4 address`)
      return
    default:
      throw usageError(`${where}: unknown AWS setting`)
  }
}

function splitList(value: string): string[] {
  return value
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
}

/** http:// only on loopback (emulators): a session token travels in a header. */
function checkEndpoint(value: string, where: string): void {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw usageError(`${where} ${shown(value)} is not a URL`)
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK.test(url.hostname))) {
    throw usageError(`${where} ${shown(value)} must be https:// (http:// only on loopback, for emulators)`)
  }
  if (url.username || url.password || url.search || url.hash) {
    throw usageError(`${where} ${shown(value)} must not carry credentials, a query or a fragment`)
  }
}

/**
 * Validate the merged provider settings. Keys the flags add for every provider
 * (`dry-run`) are read here; unknown keys cannot come from the config file,
 * which config.ts checks against AWS_SETTING_KEYS. Settings of another mode
 * (`route-table` while moving an EIP) are kept and ignored: one `[aws]`
 * section serves IPs of every mode.
 */
export function parseAwsSettings(values: Record<string, string | undefined>): AwsSettings {
  const where = (key: string) => `--${key}`
  const present = (key: string) => {
    const value = values[key]
    if (value === undefined) return undefined
    checkAwsSetting(key, value, where(key))
    return value
  }
  const mode = parseAwsMode(values.mode ?? 'eip', where('mode'))
  const settings: AwsSettings = {
    mode,
    region: present('region'),
    profile: present('profile'),
    endpoint: present('endpoint'),
    routeTables: [...new Set(splitList(present('route-table') ?? ''))],
    eni: present('eni'),
    privateIp: present('private-ip'),
    dryRun: values['dry-run'] === 'true',
  }
  return settings
}

/** The EC2 actions each mode calls, reads first. */
export const AWS_MODE_ACTIONS: Record<AwsMode, { reads: string[]; writes: string[] }> = {
  eip: { reads: ['DescribeAddresses', 'DescribeInstances'], writes: ['AssociateAddress'] },
  private: {
    reads: ['DescribeNetworkInterfaces', 'DescribeInstances'],
    writes: ['AssignPrivateIpAddresses'],
  },
  route: { reads: ['DescribeRouteTables', 'DescribeInstances'], writes: ['ReplaceRoute', 'CreateRoute'] },
}

export interface AwsPolicyResult {
  modes: AwsMode[]
  policy: {
    Version: '2012-10-17'
    Statement: Array<{ Sid: string; Effect: 'Allow'; Action: string[]; Resource: '*' }>
  }
}

/**
 * `ipmove aws policy`: the least an IAM identity needs for the given modes.
 * Describe* calls accept no resource restriction, hence `*`; the writes may be
 * narrowed by hand to the addresses, interfaces or route tables in use.
 */
export function awsPolicy(options: { modes: readonly string[] }): AwsPolicyResult {
  const modes = [...new Set((options.modes.length ? options.modes : ['eip']).map((m) => parseAwsMode(m)))]
  const collect = (kind: 'reads' | 'writes') =>
    [...new Set(modes.flatMap((mode) => AWS_MODE_ACTIONS[mode][kind]))].sort().map((a) => `ec2:${a}`)
  return {
    modes,
    policy: {
      Version: '2012-10-17',
      Statement: [
        { Sid: 'IpmoveRead', Effect: 'Allow', Action: collect('reads'), Resource: '*' },
        { Sid: 'IpmoveMove', Effect: 'Allow', Action: collect('writes'), Resource: '*' },
      ],
    },
  }
}
