/**
 * EC2 instances and their interfaces, as far as moving an IP is concerned: the
 * target found by id or Name tag, and the names reports show for holders.
 */
import { networkInterfaces } from 'node:os'
import { DescribeInstancesCommand, type Instance } from '@aws-sdk/client-ec2'
import type { IdCache } from '../../src/cache.js'
import { describeHolder } from '../../src/core/provider.js'
import { notFound } from '../../src/errors.js'
import type { Logger } from '../../src/output.js'
import { type Ec2, listOf } from './client.js'
import { INSTANCE_ID } from './settings.js'

/** Instance states a Name tag may resolve to: terminated instances keep their tags for a while. */
const LIVE_STATES = ['pending', 'running', 'stopping', 'stopped']

/** A network interface, as far as moving an IP is concerned. */
export interface Eni {
  id: string
  subnetId?: string
  vpcId?: string
  mac?: string
  deviceIndex: number
  sourceDestCheck?: boolean
  privateIps: string[]
}

export interface TargetInstance {
  id: string
  name?: string
  state?: string
  /** Primary interface first. */
  enis: Eni[]
}

/** Instance names by id, for reports: from look-ups in this process and the id cache. */
export class InstanceNames {
  private readonly names = new Map<string, string>()

  constructor(private readonly cache: IdCache) {}

  get(instanceId: string): string | undefined {
    const known = this.names.get(instanceId) ?? this.cache.get(`name:${instanceId}`)
    if (known) this.names.set(instanceId, known)
    return known
  }

  set(instanceId: string, name: string): void {
    this.names.set(instanceId, name)
    this.cache.set(`name:${instanceId}`, name)
  }
}

/** --instance as an id or a Name tag (ambiguity refused). */
export async function findInstance(
  ec2: Ec2,
  ref: string,
  context: { region: string; names: InstanceNames; log: Logger },
  signal: AbortSignal,
): Promise<TargetInstance> {
  const byId = INSTANCE_ID.test(ref)
  const output = await ec2.call(
    'DescribeInstances',
    (o) =>
      ec2.client.send(
        new DescribeInstancesCommand(
          byId
            ? { InstanceIds: [ref] }
            : {
                Filters: [
                  { Name: 'tag:Name', Values: [ref] },
                  { Name: 'instance-state-name', Values: LIVE_STATES },
                ],
              },
        ),
        o,
      ),
    signal,
  )
  const instances = listOf('DescribeInstances', output.Reservations)
    .flatMap((r) => r.Instances ?? [])
    .map((i) => remember(i, context.names))
  if (instances.length > 1) {
    throw notFound(
      `instance name ${JSON.stringify(ref)} is ambiguous in ${context.region}: ${instances.map((i) => `${i.id} (${i.state ?? '?'})`).join(', ')}; pass the id`,
    )
  }
  const [match] = instances
  if (!match)
    throw notFound(
      byId
        ? `no instance ${ref} in ${context.region}`
        : `no instance named ${JSON.stringify(ref)} in ${context.region} (searched the Name tags of ${LIVE_STATES.join(', ')} instances)`,
    )
  if (match.state === 'terminated' || match.state === 'shutting-down') {
    throw notFound(`instance ${describeHolder(match)} is ${match.state}`)
  }
  if (match.state !== 'running')
    context.log.warn(`instance ${describeHolder(match)} is ${match.state ?? 'in an unknown state'}`)
  return match
}

function remember(instance: Instance, names: InstanceNames): TargetInstance {
  const id = instance.InstanceId ?? '?'
  const name = instance.Tags?.find((t) => t.Key === 'Name')?.Value || undefined
  if (name) names.set(id, name)
  const enis = (instance.NetworkInterfaces ?? []).map((ni) => ({
    id: ni.NetworkInterfaceId ?? '?',
    subnetId: ni.SubnetId,
    vpcId: ni.VpcId,
    mac: ni.MacAddress?.toLowerCase(),
    deviceIndex: ni.Attachment?.DeviceIndex ?? 0,
    sourceDestCheck: ni.SourceDestCheck,
    privateIps: (ni.PrivateIpAddresses ?? []).flatMap((p) =>
      p.PrivateIpAddress ? [p.PrivateIpAddress] : [],
    ),
  }))
  enis.sort((a, b) => a.deviceIndex - b.deviceIndex)
  return { id, name, state: instance.State?.Name, enis }
}

/** A local interface's hardware address; loopback and tunnels have none worth matching. */
export function macOf(name: string): string | undefined {
  const mac = networkInterfaces()[name]?.find((a) => a.mac && a.mac !== '00:00:00:00:00:00')?.mac
  return mac?.toLowerCase()
}
