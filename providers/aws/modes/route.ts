/**
 * VPC routes: `IP/32` (or a block) in one or more route tables pointed at the
 * target's interface (ReplaceRoute, or CreateRoute where the route is missing).
 */
import {
  CreateRouteCommand,
  DescribeRouteTablesCommand,
  ReplaceRouteCommand,
  type Route,
  type RouteTable,
} from '@aws-sdk/client-ec2'
import { describeHolder, type IpState, sameHolder } from '../../../src/core/provider.js'
import { type IpmoveError, notFound } from '../../../src/errors.js'
import { listOf } from '../client.js'
import type { Attachment, AwsIp } from '../located.js'
import { checkIpv4, type ModeModule, type ModeOps, refuseIpId, type Write } from './mode.js'

interface RouteLocation {
  tables: string[]
  /** Each table's route for the IP; null where it has none. */
  current: Map<string, Attachment | null>
}

export const route: ModeModule = {
  name: 'route',
  hostCarries: true,
  dryRunnable: true,
  checkRequest(ip, ipId) {
    checkIpv4(ip, 'route', false)
    refuseIpId(ipId, 'route')
  },
  open: (ip) => new RouteOps(ip),
}

class RouteOps implements ModeOps<RouteTable[], RouteLocation> {
  constructor(private readonly s: AwsIp) {}

  async fetch(signal: AbortSignal, previous?: RouteLocation): Promise<RouteTable[]> {
    const { ec2 } = this.s
    const ids = previous?.tables ?? this.s.settings.routeTables
    const output = await ec2.call(
      'DescribeRouteTables',
      (o) =>
        ec2.client.send(
          new DescribeRouteTablesCommand(
            ids.length > 0
              ? { RouteTableIds: ids }
              : { Filters: [{ Name: 'route.destination-cidr-block', Values: [this.s.ip!.block] }] },
          ),
          o,
        ),
      signal,
    )
    return listOf('DescribeRouteTables', output.RouteTables)
  }

  locate(tables: RouteTable[]): RouteLocation {
    const ip = this.s.ip!
    if (tables.length === 0) {
      throw notFound(
        `no route table in ${this.s.region} has a route for ${ip.block}; pass --route-table to create one`,
      )
    }
    const current = new Map<string, Attachment | null>()
    for (const table of tables) {
      const found = table.Routes?.find((r) => r.DestinationCidrBlock === ip.block)
      current.set(table.RouteTableId ?? '?', found ? routeAttachment(found) : null)
    }
    return { tables: [...current.keys()], current }
  }

  /** One holder when the tables agree; while our write lands table by table, pending. */
  state(location: RouteLocation): IpState {
    const { s } = this
    const entries = [...location.current.entries()].map(([table, attachment]) => ({
      table,
      holder: s.holderOf(attachment),
      blackhole: attachment?.blackhole,
    }))
    const first = entries[0]!
    const blackholes = entries.filter((e) => e.blackhole).map((e) => e.table)
    const blackholeNote = blackholes.length ? `blackhole in ${blackholes.join(', ')}` : undefined
    if (entries.every((e) => sameHolder(e.holder, first.holder) || (!e.holder && !first.holder))) {
      return s.settling({ holder: first.holder, pending: false, note: blackholeNote })
    }
    const target = s.target ? s.targetHolder() : undefined
    const from = s.wroteFrom?.holder
    const updated = entries.filter((e) => sameHolder(e.holder, target)).length
    if (
      s.wroteFrom &&
      entries.every((e) => sameHolder(e.holder, target) || !e.holder || sameHolder(e.holder, from))
    ) {
      return {
        holder: from ?? null,
        pending: true,
        note: `${updated} of ${entries.length} route tables updated`,
      }
    }
    const odd = entries.find((e) => !sameHolder(e.holder, target)) ?? first
    return {
      holder: odd.holder,
      pending: false,
      note: `route tables disagree: ${entries.map((e) => `${e.table} → ${describeHolder(e.holder)}`).join(', ')}`,
    }
  }

  /** Routed traffic reaches an instance only with its source/destination check off. */
  check(location: RouteLocation): void {
    const eni = this.s.targetEni(this.currentOnTarget(location))
    if (eni.sourceDestCheck !== false) {
      this.s.log.warn(
        `source/destination check is on for ${eni.id}: the instance will drop traffic for ${this.s.ip!.block} until it is turned off`,
      )
    }
  }

  writes(location: RouteLocation, dryRun: boolean): Write[] {
    const { ec2 } = this.s
    const eni = this.s.targetEni(this.currentOnTarget(location))
    const block = this.s.ip!.block
    return [...location.current.entries()]
      .filter(([, attachment]) => dryRun || attachment?.eniId !== eni.id)
      .map(([table, attachment]) => {
        const input = {
          RouteTableId: table,
          DestinationCidrBlock: block,
          NetworkInterfaceId: eni.id,
          DryRun: dryRun || undefined,
        }
        const replace = (signal: AbortSignal) =>
          ec2.sendWrite(
            'ReplaceRoute',
            (o) => ec2.client.send(new ReplaceRouteCommand(input), o),
            signal,
            dryRun,
          )
        const create = (signal: AbortSignal) =>
          ec2.sendWrite(
            'CreateRoute',
            (o) => ec2.client.send(new CreateRouteCommand(input), o),
            signal,
            dryRun,
          )
        return {
          action: attachment ? 'ReplaceRoute' : 'CreateRoute',
          // The route may have appeared or vanished since we read: fall over to the other call.
          send: (signal: AbortSignal) =>
            (attachment ? replace(signal) : create(signal)).catch((error: unknown) => {
              const code = (error as IpmoveError).details?.awsCode
              if (attachment && code === 'InvalidRoute.NotFound') return create(signal)
              if (!attachment && code === 'RouteAlreadyExists') return replace(signal)
              throw error
            }),
        }
      })
  }

  /** A table's current attachment that is already one of the target's interfaces, if any. */
  private currentOnTarget(location: RouteLocation): Attachment | null {
    const enis = new Set(this.s.target?.enis.map((e) => e.id))
    return [...location.current.values()].find((a) => a?.eniId && enis.has(a.eniId)) ?? null
  }
}

function routeAttachment(found: Route): Attachment {
  return {
    instanceId: found.InstanceId,
    eniId: found.NetworkInterfaceId,
    other:
      found.GatewayId ??
      found.NatGatewayId ??
      found.TransitGatewayId ??
      found.VpcPeeringConnectionId ??
      found.LocalGatewayId ??
      found.CarrierGatewayId ??
      found.EgressOnlyInternetGatewayId ??
      found.CoreNetworkArn,
    blackhole: found.State === 'blackhole',
  }
}
