/**
 * A secondary private IP, re-assigned to the target's interface in the same
 * subnet (AssignPrivateIpAddresses with AllowReassignment).
 */
import {
  AssignPrivateIpAddressesCommand,
  DescribeNetworkInterfacesCommand,
  type NetworkInterface,
} from '@aws-sdk/client-ec2'
import { describeHolder } from '../../../src/core/provider.js'
import { notFound, usageError } from '../../../src/errors.js'
import { listOf } from '../client.js'
import type { Attachment, AwsIp } from '../located.js'
import { checkIpv4, type ModeModule, type ModeOps, refuseIpId, type Write } from './mode.js'

interface PrivateLocation {
  vpcId?: string
  current: Attachment | null
}

export const privateIp: ModeModule = {
  name: 'private',
  hostCarries: true,
  // AssignPrivateIpAddresses has no DryRun in the EC2 API.
  dryRunnable: false,
  checkRequest(ip, ipId) {
    checkIpv4(ip, 'private', true)
    refuseIpId(ipId, 'private')
  },
  open: (ip) => new PrivateOps(ip),
}

class PrivateOps implements ModeOps<NetworkInterface[], PrivateLocation> {
  constructor(private readonly s: AwsIp) {}

  async fetch(signal: AbortSignal, previous?: PrivateLocation): Promise<NetworkInterface[]> {
    const { ec2 } = this.s
    const filters = [{ Name: 'addresses.private-ip-address', Values: [this.s.ip!.address] }]
    if (previous?.vpcId) filters.push({ Name: 'vpc-id', Values: [previous.vpcId] })
    const output = await ec2.call(
      'DescribeNetworkInterfaces',
      (o) => ec2.client.send(new DescribeNetworkInterfacesCommand({ Filters: filters }), o),
      signal,
    )
    return listOf('DescribeNetworkInterfaces', output.NetworkInterfaces)
  }

  locate(interfaces: NetworkInterface[], previous?: PrivateLocation): PrivateLocation {
    const ip = this.s.ip!
    const targetVpc = this.s.target?.enis[0]?.vpcId
    let holders = interfaces.filter((ni) =>
      ni.PrivateIpAddresses?.some((p) => p.PrivateIpAddress === ip.address),
    )
    if (targetVpc) holders = holders.filter((ni) => ni.VpcId === targetVpc)
    if (holders.length > 1) {
      throw notFound(
        `${ip.address} is on interfaces of several VPCs (${holders.map((ni) => `${ni.NetworkInterfaceId} in ${ni.VpcId}`).join(', ')}); pass --instance`,
      )
    }
    const [ni] = holders
    const vpcId = targetVpc ?? ni?.VpcId ?? previous?.vpcId
    if (!ni) return { vpcId, current: null }
    const primary = ni.PrivateIpAddresses?.find((p) => p.PrivateIpAddress === ip.address)?.Primary === true
    return {
      vpcId,
      current: {
        instanceId: ni.Attachment?.InstanceId,
        eniId: ni.NetworkInterfaceId,
        subnetId: ni.SubnetId,
        privateIp: primary ? 'primary' : undefined,
      },
    }
  }

  state(location: PrivateLocation) {
    return this.s.settling({ holder: this.s.holderOf(location.current), pending: false })
  }

  check(location: PrivateLocation, inPlace: boolean): void {
    if (inPlace) return
    if (location.current?.privateIp === 'primary') {
      throw usageError(
        `${this.s.ip!.address} is the primary address of ${location.current.eniId} (${describeHolder(this.s.holderOf(location.current))}); only secondary addresses can move`,
      )
    }
    this.s.targetEni(location.current)
  }

  writes(location: PrivateLocation, dryRun: boolean): Write[] {
    const { s } = this
    const input = {
      NetworkInterfaceId: s.targetEni(location.current).id,
      PrivateIpAddresses: [s.ip!.address],
      AllowReassignment: true,
    }
    return [
      {
        action: 'AssignPrivateIpAddresses',
        send: (signal) =>
          s.ec2.sendWrite(
            'AssignPrivateIpAddresses',
            (o) => s.ec2.client.send(new AssignPrivateIpAddressesCommand(input), o),
            signal,
            dryRun,
          ),
      },
    ]
  }
}
