import { Flags } from '@oclif/core'
import { emulateOvh, envLines } from '../../emulator/ovh.js'
import { BaseCommand } from '../../src/command.js'

export default class EmulateOvh extends BaseCommand {
  static override summary = 'Run an OVH API emulator over HTTPS, for CI smoke tests and demos.'
  static override description =
    `Speaks the part of the OVH API ipmove uses, checks request signatures like the
real API, moves IPs after --pending-ms, and injects faults. Prints the environment
to point ipmove at it (fake credentials, a throw-away CA), also written to DIR/env.sh
once it listens, then runs until SIGINT or SIGTERM.

A fault is comma-separated items: path=GLOB (default /**; * is one path segment, ** any
number), method=METHOD, then one of status=CODE [retry-after=SECONDS] | reset | hang |
slow=MS, and times=N (default 1; 0 = always). Example:
path=/cloud/project/*/ip/failover/*/attach,method=POST,status=503,times=2`
  static override examples = [
    '<%= config.bin %> emulate ovh --port 8443 --dir /tmp/ovh-emu --this-host bi-edge-sbg-2 &',
    '<%= config.bin %> emulate ovh --pending-ms 500 --fault "path=/ip/*/move,method=POST,status=409"',
  ]

  static override flags = {
    port: Flags.string({ description: 'Port to listen on; 0 picks a free one.', default: '0' }),
    host: Flags.string({ description: 'Address to listen on.', default: '127.0.0.1' }),
    'pending-ms': Flags.string({ description: 'How long a move takes, in milliseconds.', default: '3000' }),
    fault: Flags.string({ description: 'Inject a fault (repeatable); see above.', multiple: true }),
    fixture: Flags.string({
      description: 'JSON file with the account to serve (same shape as the default fixture).',
    }),
    'clock-skew': Flags.string({
      description: 'Seconds the server clock is ahead (negative: behind), e.g. --clock-skew=-120.',
    }),
    dir: Flags.string({
      description: 'Directory for ca.pem and env.sh (default: a temporary one, removed on exit).',
    }),
    'this-host': Flags.string({
      description: 'Instance name or id the metadata service reports as this host.',
    }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(EmulateOvh)
    const controller = new AbortController()
    const stop = () => controller.abort()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    try {
      await emulateOvh(
        {
          port: flags.port,
          host: flags.host,
          pendingMs: flags['pending-ms'],
          faults: flags.fault,
          fixtureFile: flags.fixture,
          clockSkew: flags['clock-skew'],
          dir: flags.dir,
          thisHost: flags['this-host'],
        },
        controller.signal,
        (emulator) => {
          if (flags.json) {
            const { url, port, caFile, env } = emulator
            this.output.result({ ok: true, url, port, caFile, env })
            return
          }
          for (const line of envLines(emulator.env)) this.output.info(line)
          // A shell comment, so the whole output can be sourced.
          this.output.info(`# ipmove OVH emulator listening on ${emulator.url} (stop with Ctrl-C or SIGTERM)`)
        },
        this.output,
      )
    } finally {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
    }
  }
}
