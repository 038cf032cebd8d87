import { Flags } from '@oclif/core'
import { providerNamed } from '../../providers/index.js'
import { BaseCommand } from '../../src/command.js'

const policy = providerNamed('aws').policy!

export default class AwsPolicy extends BaseCommand {
  static override summary = 'Print the minimal IAM policy ipmove needs on AWS, for one mode or several.'
  static override description =
    "The policy allows the EC2 calls `ipmove move` makes in the given modes and nothing else: the Describe* reads (which IAM cannot narrow to resources) and the mode's writes. Narrow the writes' Resource to your addresses, interfaces or route tables if you like."
  static override examples = [
    '<%= config.bin %> aws policy --mode route > ipmove-route.json',
    '<%= config.bin %> aws policy --mode eip --mode private',
  ]

  static override flags = {
    mode: Flags.string({
      description: 'Mode to allow (repeatable) [default: eip].',
      options: [...policy.modes],
      multiple: true,
    }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(AwsPolicy)
    const result = policy.build(flags.mode ?? [])
    if (flags.json) this.output.result({ ok: true, ...result })
    // Line by line: every printed line is escaped, and this document is ours to lay out.
    else for (const line of JSON.stringify(result.policy, null, 2).split('\n')) this.output.info(line)
  }
}
