import { Flags } from '@oclif/core'
import { emulateAws } from '../../emulator/aws.js'
import { envLines } from '../../emulator/ovh.js'
import { BaseCommand } from '../../src/command.js'

export default class EmulateAws extends BaseCommand {
  static override summary =
    'Run an EC2 and instance-metadata emulator over HTTP on loopback, for CI smoke tests and demos.'
  static override description =
    `Speaks the part of the EC2 Query API ipmove uses (Elastic IPs, secondary private
IPs, route tables, instances, interfaces), checks SigV4 signatures and IAM actions
(DryRun included), serves IMDSv2 on the same port, and shows a write in Describe*
only after --pending-ms, as EC2's eventual consistency does. Prints the environment
to point ipmove (or any AWS SDK) at it, also written to DIR/env.sh once it listens,
then runs until SIGINT or SIGTERM.

A fault is comma-separated items: path=GLOB, method=METHOD, then one of
status=CODE [retry-after=SECONDS] | reset | hang | slow=MS, and times=N (default 1;
0 = always). An EC2 call's path is /ACTION; the metadata service's is its URL path.
status=503 answers RequestLimitExceeded, 500 InternalError. Example:
path=/AssociateAddress,status=503,times=2`
  static override examples = [
    '<%= config.bin %> emulate aws --port 8773 --dir /tmp/aws-emu --this-host web-2 &',
    '<%= config.bin %> emulate aws --pending-ms 2000 --fault "path=/Describe*,status=503"',
  ]

  static override flags = {
    port: Flags.string({ description: 'Port to listen on; 0 picks a free one.', default: '0' }),
    host: Flags.string({ description: 'Address to listen on.', default: '127.0.0.1' }),
    'pending-ms': Flags.string({
      description: 'How long a write takes to show in Describe* answers, in milliseconds.',
      default: '500',
    }),
    fault: Flags.string({ description: 'Inject a fault (repeatable); see above.', multiple: true }),
    fixture: Flags.string({
      description: 'JSON file with the account to serve (same shape as the default fixture).',
    }),
    dir: Flags.string({ description: 'Directory for env.sh (default: a temporary one, removed on exit).' }),
    'this-host': Flags.string({
      description: 'Instance name or id the metadata service reports as this host.',
    }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(EmulateAws)
    const controller = new AbortController()
    const stop = () => controller.abort()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    try {
      await emulateAws(
        {
          port: flags.port,
          host: flags.host,
          pendingMs: flags['pending-ms'],
          faults: flags.fault,
          fixtureFile: flags.fixture,
          dir: flags.dir,
          thisHost: flags['this-host'],
        },
        controller.signal,
        (emulator) => {
          if (flags.json) {
            const { url, port, env } = emulator
            this.output.result({ ok: true, url, port, env })
            return
          }
          for (const line of envLines(emulator.env)) this.output.info(line)
          // A shell comment, so the whole output can be sourced.
          this.output.info(`# ipmove EC2 emulator listening on ${emulator.url} (stop with Ctrl-C or SIGTERM)`)
        },
        this.output,
      )
    } finally {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
    }
  }
}
