/** `ipmove list` on AWS: the region's Elastic IPs and the instances they are associated with. */
import { DescribeAddressesCommand, DescribeInstancesCommand } from '@aws-sdk/client-ec2'
import type { Holder, ListedIp } from '../../src/core/provider.js'
import { type Ec2, listOf } from './client.js'
import type { InstanceNames } from './instances.js'

export async function listElasticIps(
  ec2: Ec2,
  names: InstanceNames,
  signal: AbortSignal,
): Promise<ListedIp[]> {
  const output = await ec2.call(
    'DescribeAddresses',
    (o) => ec2.client.send(new DescribeAddressesCommand({}), o),
    signal,
  )
  const addresses = listOf('DescribeAddresses', output.Addresses).filter((a) => a.PublicIp)
  const unnamed = [
    ...new Set(addresses.flatMap((a) => (a.InstanceId && !names.get(a.InstanceId) ? [a.InstanceId] : []))),
  ]
  if (unnamed.length > 0) {
    // One request names every holder (their Name tags).
    const described = await ec2.call(
      'DescribeInstances',
      (o) => ec2.client.send(new DescribeInstancesCommand({ InstanceIds: unnamed }), o),
      signal,
    )
    for (const instance of listOf('DescribeInstances', described.Reservations).flatMap(
      (r) => r.Instances ?? [],
    )) {
      const name = instance.Tags?.find((t) => t.Key === 'Name')?.Value
      if (instance.InstanceId && name) names.set(instance.InstanceId, name)
    }
  }
  return addresses.map((a) => {
    const holderId = a.InstanceId ?? a.NetworkInterfaceId
    const holder: Holder | null = holderId
      ? { id: holderId, name: a.InstanceId ? names.get(a.InstanceId) : undefined }
      : null
    // EC2 answers writes at once: there is no pending state to show.
    return { ip: `${a.PublicIp}/32`, kind: 'eip', id: a.AllocationId, holder, pending: false }
  })
}
