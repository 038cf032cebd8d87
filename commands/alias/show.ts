import { Flags } from '@oclif/core'
import { showAliases } from '../../src/alias/service.js'
import { BaseCommand } from '../../src/command.js'

export default class AliasShow extends BaseCommand {
  static override summary = 'List the addresses of local interfaces.'
  static override examples = [
    '<%= config.bin %> alias show',
    '<%= config.bin %> alias show --interface eth0 --json',
  ]

  static override flags = {
    interface: Flags.string({ description: 'Only this interface.' }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(AliasShow)
    const addresses = await showAliases({ interface: flags.interface })
    for (const a of addresses) {
      const notes = [a.scope === 'global' ? '' : a.scope, a.state === 'ready' ? '' : a.state, a.label ?? '']
      this.output.info([a.iface, `${a.address}/${a.prefix}`, ...notes].filter(Boolean).join(' '))
    }
    this.output.result({ ok: true, addresses })
  }
}
