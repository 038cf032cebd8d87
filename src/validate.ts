import ipaddr from 'ipaddr.js'
import { usageError } from './errors.js'
import { redact } from './output.js'

/** An address or a block, normalised. `address` is the first address of the block. */
export interface IpBlock {
  /** Canonical text of the address (IPv6 compressed, lower case). */
  address: string
  prefix: number
  version: 4 | 6
  /** `address/prefix`, the form OVH's /ip/{block} routes use. */
  block: string
}

const MAX_INPUT = 256

function checkLength(what: string, value: string): void {
  if (value.length === 0) throw usageError(`${what} is empty`)
  if (value.length > MAX_INPUT) throw usageError(`${what} is too long (${value.length} characters)`)
}

/** Quote a user value for an error message: no control characters, no secret, no URL password. */
export function shown(value: string): string {
  const safe = redact(value)
  const clipped = safe.length > 64 ? `${safe.slice(0, 64)}…` : safe
  return JSON.stringify(clipped)
}

/**
 * Parse `1.2.3.4`, `1.2.3.4/32`, `2001:db8::1` or `2001:db8::/64`. A bare address
 * is a single-address block (/32 or /128). Only strict forms are accepted:
 * ipaddr.js alone would also take `1` or `0x7f.1` as IPv4.
 */
export function parseIp(input: string, what = '--ip'): IpBlock {
  checkLength(what, input)
  const [addr, prefixText, ...rest] = input.split('/')
  if (rest.length > 0 || addr === undefined)
    throw usageError(`${what} ${shown(input)} is not an IP address or block`)
  let parsed: ipaddr.IPv4 | ipaddr.IPv6
  if (ipaddr.IPv4.isValidFourPartDecimal(addr)) {
    parsed = ipaddr.IPv4.parse(addr)
  } else if (addr.includes(':') && ipaddr.IPv6.isValid(addr)) {
    parsed = ipaddr.IPv6.parse(addr)
    if ((parsed as ipaddr.IPv6).zoneId) throw usageError(`${what} ${shown(input)} must not carry a zone`)
  } else {
    throw usageError(`${what} ${shown(input)} is not an IP address or block`)
  }
  // The kernel takes `ip addr add 0.0.0.0/0` and adds nothing; no cloud routes these either.
  const range = parsed.range()
  if (range === 'unspecified' || range === 'multicast' || range === 'broadcast') {
    throw usageError(`${what} ${shown(input)} is in the ${range} range: not an address a host can carry`)
  }
  const version = parsed.kind() === 'ipv4' ? 4 : 6
  const max = version === 4 ? 32 : 128
  let prefix = max
  if (prefixText !== undefined) {
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) {
      throw usageError(`${what} ${shown(input)} has an invalid prefix length`)
    }
    prefix = Number(prefixText)
  }
  const address = parsed.toString()
  if (prefix < max) {
    const cidr = `${address}/${prefix}`
    const first = (version === 4 ? ipaddr.IPv4 : ipaddr.IPv6).networkAddressFromCIDR(cidr).toString()
    if (first !== address) {
      throw usageError(`${what} ${shown(input)} has host bits set; did you mean ${first}/${prefix}?`)
    }
  }
  return { address, prefix, version, block: `${address}/${prefix}` }
}

/**
 * Names of projects, instances, services and config entries. Cloud names may
 * hold spaces and dots, but never shell metacharacters, quotes or control
 * characters: a hook line that has them is a mistake or an attack.
 */
const NAME = /^[A-Za-z0-9][A-Za-z0-9 ._:@+-]*$/

export function validateName(what: string, value: string): string {
  checkLength(what, value)
  if (!NAME.test(value) || value.endsWith(' ')) {
    throw usageError(
      `${what} ${shown(value)} has characters a name cannot have (letters, digits, space . _ : @ + -)`,
    )
  }
  return value
}

/**
 * Linux allows up to 15 bytes (IFNAMSIZ-1) and no '/', ':' or white space; the BSDs
 * are stricter. An alias label is `IF:LABEL` and obeys the same 15-byte limit.
 */
const INTERFACE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/

export function validateInterface(value: string, what = '--interface'): string {
  if (value.length === 0) throw usageError(`${what} is empty`)
  if (!INTERFACE.test(value)) {
    throw usageError(
      `${what} ${shown(value)} is not a valid interface name (at most 15 of letters, digits, _ . -)`,
    )
  }
  return value
}

/**
 * Seconds given on the command line or in the config file, as milliseconds:
 * plain decimal only (`5`, `2.5`, `0.05`), not `0x10`, `+5`, `5.` or `1e-9`,
 * and at least a millisecond, so a flag and a config line mean the same.
 */
export function parseSeconds(what: string, value: string): number {
  const ms = /^\d{1,5}(\.\d{1,3})?$/.test(value) ? Math.round(Number(value) * 1000) : Number.NaN
  if (!(ms >= 1 && ms <= 86_400_000)) {
    throw usageError(`${what} must be a number of seconds from 0.001 to 86400 (such as 30 or 2.5)`)
  }
  return ms
}
