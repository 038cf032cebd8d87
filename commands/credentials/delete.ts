import { Args } from '@oclif/core'
import { deleteOvhCredentials } from '../../providers/ovh/credentials.js'
import { BaseCommand } from '../../src/command.js'
import { systemKeyring } from '../../src/keyring.js'

export default class CredentialsDelete extends BaseCommand {
  static override summary = 'Delete the OVH API credentials stored in the OS keyring.'
  static override description =
    'Succeeds when nothing was stored; fails (exit 2) when no keyring is available.'
  static override examples = ['<%= config.bin %> credentials delete ovh']

  static override args = {
    provider: Args.string({ description: 'The provider.', options: ['ovh'], required: true }),
  }

  async run(): Promise<void> {
    await this.parse(CredentialsDelete)
    const keyring = systemKeyring()
    const deleted = await deleteOvhCredentials(keyring)
    this.output.info(
      deleted
        ? `deleted the OVH credentials from ${keyring.description}`
        : `no OVH credentials in ${keyring.description}`,
    )
    this.output.result({ ok: true, provider: 'ovh', deleted })
  }
}
