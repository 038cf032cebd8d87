import type { ProviderFlag } from '../../src/core/provider.js'
import { AWS_MODES } from './settings.js'

/** The flags `move` and `status` (and `list`, the account ones) take for AWS; they reach the provider as plain settings. */
export const AWS_FLAGS: readonly ProviderFlag[] = [
  {
    key: 'mode',
    description: 'AWS: what moves — an Elastic IP, a secondary private IP, or VPC routes [default: eip].',
    options: AWS_MODES,
  },
  { key: 'region', description: 'AWS region (default: AWS_REGION, then the profile).', account: true },
  {
    key: 'profile',
    description: 'AWS shared-config profile (default: AWS_PROFILE, else the default chain).',
    account: true,
  },
  { key: 'endpoint', description: 'AWS: EC2 endpoint URL (default: AWS_ENDPOINT_URL_EC2).', account: true },
  {
    key: 'route-table',
    description:
      'AWS route mode: a route table to point at the target (repeatable; default: every table routing the IP).',
    multiple: true,
  },
  { key: 'eni', description: "AWS: the target's network interface (eni-…), on instances with several." },
  { key: 'private-ip', description: "AWS eip mode: the target's private address the EIP maps to." },
]
