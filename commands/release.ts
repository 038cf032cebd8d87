import { Flags } from '@oclif/core'
import { BaseCommand, hookFlags } from '../src/command.js'
import { releaseIp } from '../src/services/release.js'

export default class Release extends BaseCommand {
  static override summary = 'Drop a failover address from this host (the demoted state).'
  static override description =
    'Removes the address from the interface and announces nothing; the cloud is never asked. ' +
    'Releasing an address that is not there is success (changed: false). ' +
    'A newer move or release of the same IP arriving while this one waits makes it stand down (outcome superseded, exit 0).'
  static override examples = ['<%= config.bin %> release --ip 203.0.113.5 --interface eth0']

  static override flags = {
    ...hookFlags,
    ip: Flags.string({ description: 'Address to release.', required: true }),
    interface: Flags.string({ description: 'Interface that carries it.', required: true }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(Release)
    const result = await releaseIp({ ip: flags.ip, interface: flags.interface }, this.output)
    // A superseded call has said so already.
    if (result.outcome !== 'superseded')
      this.output.info(
        result.changed
          ? `released ${result.ip} from ${result.interface}`
          : `${result.ip} was not on ${result.interface}; nothing to release`,
      )
    this.output.result({ ok: true, ...result })
  }
}
