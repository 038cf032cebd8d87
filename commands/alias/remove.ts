import { Flags } from '@oclif/core'
import { removeAlias } from '../../src/alias/service.js'
import { BaseCommand, hookFlags } from '../../src/command.js'

export default class AliasRemove extends BaseCommand {
  static override summary = 'Take an address off a local interface.'
  static override description = 'Removing an address that is not there is success (changed: false).'
  static override examples = ['<%= config.bin %> alias remove --ip 203.0.113.5 --interface eth0']

  static override flags = {
    ...hookFlags,
    ip: Flags.string({ description: 'Address to remove.', required: true }),
    interface: Flags.string({ description: 'Interface that carries it.', required: true }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(AliasRemove)
    const result = await removeAlias({ ip: flags.ip, interface: flags.interface })
    this.output.info(
      result.changed
        ? `removed ${result.ip} from ${result.interface}`
        : `${result.ip} was not on ${result.interface}`,
    )
    this.output.result({ ok: true, ...result })
  }
}
