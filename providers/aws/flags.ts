import { Flags } from '@oclif/core'
import { AWS_MODES } from './settings.js'

/** The flags `move` and `status` take for AWS; they reach the provider as plain settings. */
export const awsFlags = {
  mode: Flags.string({
    description: 'AWS: what moves — an Elastic IP, a secondary private IP, or VPC routes [default: eip].',
    options: [...AWS_MODES],
  }),
  region: Flags.string({ description: 'AWS region (default: AWS_REGION, then the profile).' }),
  profile: Flags.string({
    description: 'AWS shared-config profile (default: AWS_PROFILE, else the default chain).',
  }),
  endpoint: Flags.string({ description: 'AWS: EC2 endpoint URL (default: AWS_ENDPOINT_URL_EC2).' }),
  'route-table': Flags.string({
    description:
      'AWS route mode: a route table to point at the target (repeatable; default: every table routing the IP).',
    multiple: true,
  }),
  eni: Flags.string({
    description: "AWS: the target's network interface (eni-…), on instances with several.",
  }),
  'private-ip': Flags.string({ description: "AWS eip mode: the target's private address the EIP maps to." }),
}

export interface AwsFlagValues {
  mode?: string
  region?: string
  profile?: string
  endpoint?: string
  'route-table'?: string[]
  eni?: string
  'private-ip'?: string
}

/** The given AWS flags as provider settings; absent flags leave the config file's values alone. */
export function awsSettingsFromFlags(flags: AwsFlagValues): Record<string, string> {
  const settings: Record<string, string> = {}
  for (const key of ['mode', 'region', 'profile', 'endpoint', 'eni', 'private-ip'] as const) {
    const value = flags[key]
    if (value !== undefined) settings[key] = value
  }
  if (flags['route-table']?.length) settings['route-table'] = flags['route-table'].join(',')
  return settings
}
