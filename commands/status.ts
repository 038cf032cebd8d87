import { Flags } from '@oclif/core'
import { BaseCommand, configFlag, hookFlags } from '../src/command.js'
import { providerChoiceFlag, providerFlags, providerSettingsFromFlags } from '../src/provider-flags.js'
import { ipStatus } from '../src/services/status.js'
import { parseSeconds } from '../src/validate.js'

export default class Status extends BaseCommand {
  static override summary = 'Show who holds a failover IP and whether an operation is pending.'
  static override examples = ['<%= config.bin %> status --project t18s --ip 203.0.113.10 --json']

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
    timeout: Flags.string({ description: 'Give up after this many seconds [default: 120].' }),
    ...providerFlags,
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(Status)
    const result = await ipStatus(
      {
        ip: flags.ip,
        ipId: flags['ip-id'],
        project: flags.project,
        provider: flags.provider,
        interface: flags.interface,
        timeoutMs: flags.timeout === undefined ? undefined : parseSeconds('--timeout', flags.timeout),
        configPath: flags.config,
        providerSettings: providerSettingsFromFlags(flags),
      },
      this.output,
    )
    this.output.result({ ok: true, ...result })
  }
}
