/**
 * The OVH access rules of a consumer key that can do what `ipmove move`, `status`
 * and `watch` do for some IPs (`release` asks no API), and nothing else. Light: no
 * HTTP, no credentials.
 *
 * The rules follow providers/ovh/provider.ts call by call (test/e2e-ovh-credential
 * moves IPs with a key holding only these rules, at the emulator, which enforces them):
 * - a Public Cloud failover IP: the project's failover list (to find the IP's id),
 *   the IP by id (its state), its attach, and the project's instances (names);
 * - a classic failover IP: /ip/{block} (routing), its move tasks, and its move.
 */
import { usageError } from '../../src/errors.js'
import { type IpBlock, shown } from '../../src/validate.js'

/** auth.AccessRule of the OVH API; `*` in a path matches any run of characters. */
export interface OvhAccessRule {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE'
  path: string
}

export interface ConsumerKeyScope {
  /** A Public Cloud project id; absent for classic failover IPs (/ip). */
  projectId?: string
  /** The IPs; for Public Cloud ones the rules name the IP by id, so an address alone narrows nothing. */
  ips: readonly IpBlock[]
  /** Public Cloud failover IP ids (what `--ip-id` takes): the rules then name only these. */
  ipIds?: readonly string[]
}

/** Public Cloud project ids are 32 hex digits (the provider checks the same). */
export const OVH_PROJECT_ID = /^[0-9a-f]{32}$/
/** A failover IP id as OVH makes them; never `*` or `/`, which would widen a rule. */
const IP_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/

/**
 * The rules for `scope`. Which form of a block's path OVH matches a rule against,
 * `/ip/198.51.100.7%2F32` as sent or `/ip/198.51.100.7/32` decoded, is not
 * published: each classic rule is given in both forms, which name the same call.
 */
export function consumerKeyRules(scope: ConsumerKeyScope): OvhAccessRule[] {
  if (scope.projectId !== undefined) {
    if (!OVH_PROJECT_ID.test(scope.projectId)) {
      throw usageError(
        `project ${shown(scope.projectId)} is not a project id: a key limited to one project cannot look its name up; give its id (32 hex digits, shown by "ipmove list" and the OVH console)`,
      )
    }
    const base = `/cloud/project/${scope.projectId}`
    const ids = scope.ipIds ?? []
    for (const id of ids) {
      if (!IP_ID.test(id)) throw usageError(`--ip-id ${shown(id)} is not a failover IP id`)
    }
    const ip = (id: string): OvhAccessRule[] => [
      { method: 'GET', path: `${base}/ip/failover/${id}` },
      { method: 'POST', path: `${base}/ip/failover/${id}/attach` },
    ]
    return [
      { method: 'GET', path: `${base}/instance` },
      ...(ids.length > 0
        ? ids.flatMap(ip)
        : [{ method: 'GET', path: `${base}/ip/failover` } as OvhAccessRule, ...ip('*')]),
    ]
  }
  if (scope.ipIds && scope.ipIds.length > 0) {
    throw usageError('--ip-id needs --project: only Public Cloud failover IPs are known by id')
  }
  return scope.ips.flatMap((ip) =>
    [ip.block, encodeURIComponent(ip.block)].flatMap((block): OvhAccessRule[] => [
      { method: 'GET', path: `/ip/${block}` },
      { method: 'GET', path: `/ip/${block}/task` },
      { method: 'GET', path: `/ip/${block}/task/*` },
      { method: 'POST', path: `/ip/${block}/move` },
    ]),
  )
}
