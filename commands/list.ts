import { Flags } from '@oclif/core'
import { BaseCommand, configFlag } from '../src/command.js'
import { accountFlags, providerChoiceFlag, providerSettingsFromFlags } from '../src/provider-flags.js'
import { listIps } from '../src/services/list.js'
import { parseSeconds } from '../src/validate.js'

export default class List extends BaseCommand {
  static override summary =
    'List the failover IPs the credentials can see, with holder, kind and pending state.'
  static override description =
    'Reads only. On OVH: the failover IPs of every Public Cloud project (or of --project), then the classic failover IPs of the account (/ip). On AWS: the Elastic IPs of the region. On Hetzner Cloud: the floating IPs of the project; on Hetzner Robot: the failover IPs of the account; on DigitalOcean: the reserved IPs of the account; on Scaleway: the IPv4 flexible IPs of the zone (SCW_DEFAULT_ZONE or zone=). Each line names what a hook line needs: the IP, its project, its id for --ip-id, and where it is now.'
  static override examples = [
    '<%= config.bin %> list',
    '<%= config.bin %> list --project t18s --json',
    '<%= config.bin %> list --provider aws --region eu-west-3',
  ]

  static override flags = {
    ...configFlag,
    project: Flags.string({ description: 'Only this OVH Public Cloud project (id or name).' }),
    ...providerChoiceFlag,
    timeout: Flags.string({ description: 'Give up after this many seconds in all [default: 120].' }),
    ...accountFlags,
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(List)
    const result = await listIps(
      {
        project: flags.project,
        provider: flags.provider,
        timeoutMs: flags.timeout === undefined ? undefined : parseSeconds('--timeout', flags.timeout),
        configPath: flags.config,
        providerSettings: providerSettingsFromFlags(flags),
      },
      this.output,
    )
    this.output.result({ ok: true, ...result })
  }
}
