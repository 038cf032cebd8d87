import { Flags } from '@oclif/core'
import { BaseCommand, configFlag, hookFlags } from '../src/command.js'
import { providerChoiceFlag, providerFlags, providerSettingsFromFlags } from '../src/provider-flags.js'
import { moveIp } from '../src/services/move.js'
import { parseSeconds } from '../src/validate.js'

export default class Move extends BaseCommand {
  static override summary =
    'Route a failover IP to an instance through the provider API, and wait until it is done.'
  static override description =
    `The default command: \`ipmove --ip … --instance …\` means \`ipmove move …\`. Reads the current holder first and writes nothing when the IP is already there. ipmoveOvh's spelling (-project, -ip, -instance, -project-id, -ip-id, -instance-id) is accepted. A newer move or release of the same IP on this host makes it stand down (outcome superseded, exit 0): at once while it waits for the lock, at its next poll when it wants something else.`
  static override examples = [
    '<%= config.bin %> --project t18s --ip 203.0.113.10 --instance bi-edge-sbg-2',
    '<%= config.bin %> move --ip 198.51.100.7 --instance ns3000002.ip-198-51-100.eu --json',
    '<%= config.bin %> --ip web --dry-run   # a named IP from the config file',
  ]

  static override flags = {
    ...hookFlags,
    ...configFlag,
    ip: Flags.string({
      description: 'The IP (1.2.3.4, 1.2.3.4/32, 2001:db8::1) or a named IP from the config.',
    }),
    'ip-id': Flags.string({
      description: "The provider's id of the IP instead of --ip (OVH failover IP id, AWS allocation id).",
    }),
    instance: Flags.string({
      description: 'Target instance name or id (default: this host, from the metadata service).',
    }),
    project: Flags.string({ description: 'OVH Public Cloud project id or name (its description).' }),
    ...providerChoiceFlag,
    interface: Flags.string({ description: 'Also configure the address on this interface and announce it.' }),
    timeout: Flags.string({ description: 'Give up after this many seconds in all [default: 120].' }),
    wait: Flags.boolean({
      description: 'Wait until the API says the move is done.',
      default: true,
      allowNo: true,
    }),
    'dry-run': Flags.boolean({ description: 'Resolve names and read the state; write nothing.' }),
    cache: Flags.boolean({
      description: 'Use the on-disk id cache.',
      default: true,
      allowNo: true,
      hidden: true,
    }),
    ...providerFlags,
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(Move)
    const result = await moveIp(
      {
        ip: flags.ip,
        ipId: flags['ip-id'],
        instance: flags.instance,
        project: flags.project,
        provider: flags.provider,
        interface: flags.interface,
        timeoutMs: flags.timeout === undefined ? undefined : parseSeconds('--timeout', flags.timeout),
        configPath: flags.config,
        wait: flags.wait,
        dryRun: flags['dry-run'],
        cache: flags.cache,
        providerSettings: providerSettingsFromFlags(flags),
      },
      this.output,
    )
    this.output.result({ ok: true, ...result })
  }
}
