import { Args, Flags } from '@oclif/core'
import { PROVIDERS, providerNamed } from '../../providers/index.js'
import { BaseCommand } from '../../src/command.js'
import { systemKeyring } from '../../src/keyring.js'

/** Providers whose credentials ipmove keeps in the OS keyring. */
const KEYRING_PROVIDERS = PROVIDERS.filter((p) => p.credentials).map((p) => p.name)

export default class CredentialsSet extends BaseCommand {
  static override summary = 'Store OVH API credentials in the OS keyring.'
  static override description = `Secrets are never taken from flags: the command line shows in ps.

On a terminal, ipmove prompts for each value and does not echo the secrets. Otherwise it reads KEY=VALUE lines from standard input, with the key names of ovh.conf: endpoint (default ovh-eu), then either application_key, application_secret and consumer_key, or client_id and client_secret for an OAuth2 service account. Blank lines and lines starting with # are ignored.

ipmove looks for OVH credentials in ${providerNamed('ovh').credentials!.order}. Values combine key by key, the first place holding a key giving it. On Linux it is the Secret Service of a desktop session (D-Bus); a server without one should use /etc/ovh.conf (chmod 600) instead. Fails with exit 2 when no keyring is available.`
  static override examples = [
    '<%= config.bin %> credentials set ovh',
    '<%= config.bin %> credentials set ovh --oauth2 --endpoint ovh-ca',
    'printf "application_key=%s\\napplication_secret=%s\\nconsumer_key=%s\\n" "$AK" "$AS" "$CK" | <%= config.bin %> credentials set ovh',
  ]

  static override args = {
    provider: Args.string({ description: 'The provider.', options: KEYRING_PROVIDERS, required: true }),
  }

  static override flags = {
    endpoint: Flags.string({ description: 'OVH endpoint name (ovh-eu, ovh-ca, ovh-us…) or API URL.' }),
    oauth2: Flags.boolean({ description: 'Prompt for an OAuth2 service account (client id and secret).' }),
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(CredentialsSet)
    const store = providerNamed(args.provider).credentials!
    const keyring = systemKeyring()
    const { endpointName } = await store.set({
      input: process.stdin,
      prompts: process.stderr,
      endpoint: flags.endpoint,
      oauth2: flags.oauth2,
      keyring,
    })
    this.output.info(`stored ${store.title} credentials for ${endpointName} in ${keyring.description}`)
    this.output.result({ ok: true, provider: args.provider, endpoint: endpointName })
  }
}
