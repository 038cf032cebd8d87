/** An Elastic IP, re-associated to the target (AssociateAddress with AllowReassociation). */
import { type Address, AssociateAddressCommand, DescribeAddressesCommand } from '@aws-sdk/client-ec2'
import { notFound, usageError } from '../../../src/errors.js'
import { parseIp } from '../../../src/validate.js'
import { listOf } from '../client.js'
import type { Attachment, AwsIp } from '../located.js'
import { ALLOCATION_ID } from '../settings.js'
import { checkIpv4, type ModeModule, type ModeOps, type Write } from './mode.js'

interface EipLocation {
  allocationId: string
  current: Attachment | null
}

export const eip: ModeModule = {
  name: 'eip',
  // EC2 NATs an EIP onto a private address the instance already has.
  hostCarries: false,
  dryRunnable: true,
  checkRequest(ip, ipId) {
    checkIpv4(ip, 'eip', true)
    if (ipId !== undefined && !ALLOCATION_ID.test(ipId))
      throw usageError(`--ip-id ${JSON.stringify(ipId)} is not an allocation id (eipalloc-…)`)
  },
  open: (ip) => new EipOps(ip),
}

class EipOps implements ModeOps<Address[], EipLocation> {
  constructor(private readonly s: AwsIp) {}

  async fetch(signal: AbortSignal, previous?: EipLocation): Promise<Address[]> {
    const { ec2 } = this.s
    const allocationId = previous?.allocationId ?? this.s.allocationId
    const input = allocationId
      ? { AllocationIds: [allocationId] }
      : { Filters: [{ Name: 'public-ip', Values: [this.s.ip!.address] }] }
    const output = await ec2.call(
      'DescribeAddresses',
      (o) => ec2.client.send(new DescribeAddressesCommand(input), o),
      signal,
    )
    return listOf('DescribeAddresses', output.Addresses)
  }

  locate(addresses: Address[]): EipLocation {
    const { ip, allocationId: given } = this.s
    const address = addresses.find(
      (a) => (!ip || a.PublicIp === ip.address) && (!given || a.AllocationId === given),
    )
    if (!address?.AllocationId || !address.PublicIp) {
      const what = [ip?.address, given].filter(Boolean).join(' with allocation id ')
      throw notFound(`${what} is not an Elastic IP of this account in ${this.s.region}`)
    }
    this.s.ip ??= parseIp(address.PublicIp, 'the Elastic IP')
    const current =
      address.NetworkInterfaceId || address.InstanceId
        ? {
            instanceId: address.InstanceId,
            eniId: address.NetworkInterfaceId,
            privateIp: address.PrivateIpAddress,
          }
        : null
    return { allocationId: address.AllocationId, current }
  }

  state(location: EipLocation) {
    return this.s.settling({ holder: this.s.holderOf(location.current), pending: false })
  }

  check(): void {}

  writes(location: EipLocation, dryRun: boolean): Write[] {
    const { s } = this
    const target = s.target!
    const input: ConstructorParameters<typeof AssociateAddressCommand>[0] = {
      AllocationId: location.allocationId,
      AllowReassociation: true,
      DryRun: dryRun || undefined,
    }
    if (s.pin) {
      input.NetworkInterfaceId = s.pin.eni.id
      input.PrivateIpAddress = s.pin.privateIp
    } else if (target.enis.length > 1) {
      // EC2 refuses InstanceId for an instance with several interfaces.
      input.NetworkInterfaceId = s.targetEni(location.current).id
    } else {
      input.InstanceId = target.id
    }
    return [
      {
        action: 'AssociateAddress',
        send: (signal) =>
          s.ec2.sendWrite(
            'AssociateAddress',
            (o) => s.ec2.client.send(new AssociateAddressCommand(input), o),
            signal,
            dryRun,
          ),
      },
    ]
  }
}
