import { Flags } from '@oclif/core'
import { BaseCommand, configFlag, hookFlags } from '../src/command.js'
import { providerChoiceFlag, providerFlags, providerSettingsFromFlags } from '../src/provider-flags.js'
import { ipStatus } from '../src/services/status.js'
import { parseSeconds } from '../src/validate.js'

export default class Status extends BaseCommand {
  static override summary = 'Show who holds a failover IP and whether an operation is pending.'
  static override examples = [
    '<%= config.bin %> status --project t18s --ip 203.0.113.10 --json',
    '<%= config.bin %> status --watch',
    '<%= config.bin %> status --watch --clear-flap web',
    "<%= config.bin %> status --watch --tell web=hold   # in ucarp's up script (source = ucarp)",
  ]

  static override flags = {
    ...hookFlags,
    ...configFlag,
    ip: Flags.string({ description: 'The IP or a named IP from the config.' }),
    'ip-id': Flags.string({
      description: "The provider's id of the IP instead of --ip (OVH failover IP id, AWS allocation id).",
    }),
    project: Flags.string({ description: 'OVH Public Cloud project id or name.' }),
    ...providerChoiceFlag,
    interface: Flags.string({ description: 'Also report whether this interface carries the address.' }),
    timeout: Flags.string({ description: 'Give up after this many seconds [default: 120; 5 with --watch].' }),
    watch: Flags.boolean({
      description:
        "Show the running ipmove watch daemon's state (roles, probes, failovers) instead of asking the API.",
    }),
    socket: Flags.string({
      description: "The daemon's control socket [default: /run/ipmove/watch.sock for root].",
    }),
    'clear-flap': Flags.string({
      description: 'Clear the anti-flap stop of this watched IP (by its name) in the running daemon.',
    }),
    tell: Flags.string({
      description:
        "NAME=hold or NAME=release: an engine's script tells the daemon this node's wish for a watched IP that follows source = ucarp (recorded for a daemon not running yet).",
      exclusive: ['clear-flap'],
    }),
    ...providerFlags,
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(Status)
    const timeoutMs = flags.timeout === undefined ? undefined : parseSeconds('--timeout', flags.timeout)
    // Explicit rather than guessed from the socket's presence: the same command line always reads the same source.
    if (
      flags.watch ||
      flags.socket !== undefined ||
      flags['clear-flap'] !== undefined ||
      flags.tell !== undefined
    ) {
      // Loaded only here, so that asking the API costs what it did.
      const { clearFlap, tell, watchStatus } = await import('../src/watch/status-client.js')
      const options = { socket: flags.socket, ip: flags.ip, timeoutMs }
      const result =
        flags.tell !== undefined
          ? await tell(flags.tell, options, this.output)
          : flags['clear-flap'] !== undefined
            ? await clearFlap(flags['clear-flap'], options, this.output)
            : await watchStatus(options, this.output)
      this.output.result({ ok: true, ...result })
      return
    }
    const result = await ipStatus(
      {
        ip: flags.ip,
        ipId: flags['ip-id'],
        project: flags.project,
        provider: flags.provider,
        interface: flags.interface,
        timeoutMs,
        configPath: flags.config,
        providerSettings: providerSettingsFromFlags(flags),
      },
      this.output,
    )
    this.output.result({ ok: true, ...result })
  }
}
