import { Args } from '@oclif/core'
import { PROVIDERS, providerNamed } from '../../providers/index.js'
import { BaseCommand } from '../../src/command.js'
import { systemKeyring } from '../../src/keyring.js'

/** Providers whose credentials ipmove keeps in the OS keyring. */
const KEYRING_PROVIDERS = PROVIDERS.filter((p) => p.credentials).map((p) => p.name)

export default class CredentialsDelete extends BaseCommand {
  static override summary = 'Delete the OVH API credentials stored in the OS keyring.'
  static override description =
    'Succeeds when nothing was stored; fails (exit 2) when no keyring is available.'
  static override examples = ['<%= config.bin %> credentials delete ovh']

  static override args = {
    provider: Args.string({ description: 'The provider.', options: KEYRING_PROVIDERS, required: true }),
  }

  async run(): Promise<void> {
    const { args } = await this.parse(CredentialsDelete)
    const store = providerNamed(args.provider).credentials!
    const keyring = systemKeyring()
    const deleted = await store.delete(keyring)
    this.output.info(
      deleted
        ? `deleted the ${store.title} credentials from ${keyring.description}`
        : `no ${store.title} credentials in ${keyring.description}`,
    )
    this.output.result({ ok: true, provider: args.provider, deleted })
  }
}
