/** AWS as the registry sees it: settings, flags and the IAM policy helper, none of which loads the SDK. */
import type { ProviderDescriptor } from '../../src/core/provider.js'
import { refuseUncheckedTls } from '../tls.js'
import { AWS_FLAGS } from './flags.js'
import { AWS_MODES, AWS_SETTING_KEYS, awsPolicy, checkAwsSetting } from './settings.js'

export const aws: ProviderDescriptor = {
  name: 'aws',
  settings: { keys: AWS_SETTING_KEYS, secrets: [], check: checkAwsSetting },
  flags: AWS_FLAGS,
  accountKey: (env, settings) =>
    [
      settings.endpoint ?? env.AWS_ENDPOINT_URL_EC2,
      settings.region ?? env.AWS_REGION,
      settings.profile ?? env.AWS_PROFILE,
      env.AWS_ACCESS_KEY_ID,
    ]
      .map((part) => part ?? '')
      .join('|'),
  async load(context) {
    refuseUncheckedTls()
    const { AwsProvider } = await import('./provider.js')
    return AwsProvider.create(context)
  },
  policy: { modes: AWS_MODES, build: (modes) => awsPolicy({ modes }) },
}
