import { Flags } from '@oclif/core'
import { emulateCommandFlags, FAULT_HELP, runEmulateCommand } from '../../emulator/emulate-command.js'
import { emulateOvh } from '../../emulator/ovh/server.js'
import { BaseCommand } from '../../src/command.js'

export default class EmulateOvh extends BaseCommand {
  static override summary = 'Run an OVH API emulator over HTTPS, for CI smoke tests and demos.'
  static override description =
    `Speaks the part of the OVH API ipmove uses, checks request signatures and each consumer key's access rules like the real API, moves IPs after --pending-ms, and injects faults. POST /1.0/auth/credential makes consumer keys (ipmove ovh credential works against it); each is refused until allowed at its validation URL, a page whose form a script can post: credentialToken=TOKEN and action=validate to https://HOST:PORT/auth/. Prints the environment to point ipmove at it (fake credentials, a throw-away CA), also written to DIR/env.sh once it listens, then runs until SIGINT or SIGTERM.

${FAULT_HELP}

Example: path=/cloud/project/*/ip/failover/*/attach,method=POST,status=503,times=2`
  static override examples = [
    '<%= config.bin %> emulate ovh --port 8443 --dir /tmp/ovh-emu --this-host bi-edge-sbg-2 &',
    '<%= config.bin %> emulate ovh --pending-ms 500 --fault "path=/ip/*/move,method=POST,status=409"',
  ]

  static override flags = emulateCommandFlags(
    {
      pendingMs: { description: 'How long a move takes, in milliseconds.', default: '3000' },
      dir: 'Directory for ca.pem and env.sh (default: a temporary one, removed on exit).',
    },
    {
      'clock-skew': Flags.string({
        description: 'Seconds the server clock is ahead (negative: behind), e.g. --clock-skew=-120.',
      }),
    },
  )

  async run(): Promise<void> {
    const { flags } = await this.parse(EmulateOvh)
    await runEmulateCommand(this.output, flags, 'OVH', emulateOvh)
  }
}
