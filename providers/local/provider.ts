/**
 * A LAN or bare metal with no cloud API: the address is "routed" to whichever
 * host answers for it. Locating probes the link (duplicate address detection)
 * and reports who answers; writing does nothing remote, since claiming the
 * address is the engine's alias step (add it, then announce it, so the LAN's
 * caches take the new MAC). The election (carp, keepalived…) decided that this
 * host is the holder, so another host that still answers is warned about,
 * not obeyed.
 */
import { localError } from '../../src/alias/driver.js'
import { pickDriver } from '../../src/alias/platform.js'
import { probeAddress } from '../../src/alias/probe.js'
import { hasNeighbours } from '../../src/alias/service.js'
import type {
  Holder,
  IpState,
  LocatedIp,
  LocateRequest,
  Provider,
  ProviderContext,
} from '../../src/core/provider.js'
import { usageError } from '../../src/errors.js'
import type { Logger } from '../../src/output.js'
import { validateInterface } from '../../src/validate.js'
import { DEFAULT_PROBE_MS, parseProbeTimeout } from './settings.js'

export class LocalProvider implements Provider {
  readonly name = 'local'
  readonly hasCloudApi = false
  readonly requests = 0
  readonly roundTrips = 0
  /** The probe already looked for other holders: the kernel's IPv6 DAD would only repeat it, a second slower. */
  readonly probesLink = true

  private constructor(
    private readonly log: Logger,
    private readonly probeMs: number,
  ) {}

  static create(context: ProviderContext): LocalProvider {
    const setting = context.settings['probe-timeout']
    const probeMs =
      setting === undefined ? DEFAULT_PROBE_MS : parseProbeTimeout(setting, '[local] probe-timeout')
    return new LocalProvider(context.log, probeMs)
  }

  /** What the local provider can serve, told before the engine runs `ip` or `arping`. */
  check(request: LocateRequest): void {
    if (request.interface === undefined) {
      throw usageError('the local provider needs --interface: the LAN interface to claim the address on')
    }
    if (request.ipId !== undefined)
      throw usageError('--ip-id does not apply to the local provider; give --ip')
    if (request.instance !== undefined) {
      throw usageError('--instance does not apply to the local provider: it claims the address for this host')
    }
    if (request.project !== undefined) throw usageError('--project does not apply to the local provider')
    const ip = request.ip
    if (!ip) throw usageError('--ip is required')
    if (ip.prefix !== (ip.version === 4 ? 32 : 128)) {
      throw usageError(`the local provider claims single addresses, not the block ${ip.block}`)
    }
    validateInterface(request.interface)
  }

  async locate(request: LocateRequest): Promise<LocatedIp> {
    this.check(request)
    const ip = request.ip!
    const iface = request.interface!

    const entries = await (await pickDriver()).list(iface)
    const mac = entries.find((e) => e.mac)?.mac
    if (!hasNeighbours(mac)) {
      throw localError(`${iface} has no link-layer address: the local provider claims addresses on a LAN`, {
        interface: iface,
      })
    }
    const here = entries.some((e) => e.address === ip.address && e.state !== 'dadfailed')
    const probe = await probeAddress(ip, iface, this.probeMs)
    this.log.debug(
      `local: ${probe.tool} probed ${ip.address} on ${iface} in ${probe.ms} ms: ` +
        (probe.macs.length > 0 ? `answered by ${probe.macs.join(', ')}` : 'no answer'),
    )

    const self: Holder = { id: mac, name: `this host on ${iface}` }
    const others = probe.macs.filter((m) => m !== mac)
    const other = (m: string): Holder => ({ id: m, name: `another host on ${iface}` })
    let note: string
    if (here) {
      note = others.length > 0 ? `here, and also answered by ${others.join(', ')}` : `on ${iface} here`
    } else {
      note =
        others.length > 0 ? `answered by ${others.join(', ')}` : `nobody answered within ${this.probeMs} ms`
    }
    let state: IpState = { holder: here ? self : others[0] ? other(others[0]) : null, pending: false, note }
    if (request.needTarget && others.length > 0) {
      this.log.warn(
        `${others.join(', ')} still answers for ${ip.address} on ${iface}; claiming it anyway ` +
          '(the announcements take the LAN’s caches over)',
      )
    }
    return {
      ip,
      kind: 'lan',
      ...(request.needTarget ? { target: self } : {}),
      state,
      read: async () => state,
      /** Nothing remote to do: the engine's alias step puts the address here and announces it. */
      write: async (target: Holder) => {
        state = { holder: target, pending: false }
        return state
      },
    }
  }

  close(): void {}
}
