import { Flags } from '@oclif/core'
import { emulateAws } from '../../emulator/aws/server.js'
import { emulateCommandFlags, FAULT_HELP, runEmulateCommand } from '../../emulator/emulate-command.js'
import { BaseCommand } from '../../src/command.js'

export default class EmulateAws extends BaseCommand {
  static override summary =
    'Run an EC2 and instance-metadata emulator over HTTP on loopback, for CI smoke tests and demos.'
  static override description =
    `Speaks the part of the EC2 Query API ipmove uses (Elastic IPs, secondary private IPs, route tables, instances, interfaces), checks SigV4 signatures and IAM actions (DryRun included), serves IMDSv2 on the same port, and shows a write in Describe* only after --pending-ms, as EC2's eventual consistency does. Prints the environment to point ipmove (or any AWS SDK) at it, also written to DIR/env.sh once it listens, then runs until SIGINT or SIGTERM.

${FAULT_HELP}

An EC2 call's path is /ACTION; the metadata service's is its URL path. status=503 answers RequestLimitExceeded, 429 Throttling, 500 InternalError. Example: path=/AssociateAddress,status=503,times=2`
  static override examples = [
    '<%= config.bin %> emulate aws --port 8773 --dir /tmp/aws-emu --this-host web-2 &',
    '<%= config.bin %> emulate aws --pending-ms 2000 --fault "path=/Describe*,status=503"',
  ]

  static override flags = emulateCommandFlags(
    {
      pendingMs: {
        description: 'How long a write takes to show in Describe* answers, in milliseconds.',
        default: '500',
      },
      dir: 'Directory for env.sh (default: a temporary one, removed on exit).',
    },
    {
      'clock-skew': Flags.string({
        description: 'Seconds the server clock is ahead (negative: behind), e.g. --clock-skew=-900.',
      }),
    },
  )

  async run(): Promise<void> {
    const { flags } = await this.parse(EmulateAws)
    await runEmulateCommand(this.output, flags, 'EC2', emulateAws)
  }
}
