import ipaddr from 'ipaddr.js'

/** The network address of the /64 an IPv6 address is in (clouds route IPv6 by /64: Hetzner's floating IPs, Robot's failover nets). */
export function network64(address: string): string {
  return ipaddr.IPv6.networkAddressFromCIDR(`${address}/64`).toString()
}
