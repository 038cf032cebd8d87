import { emulateCommandFlags, runEmulateCommand } from '../../emulator/emulate-command.js'
import { emulateRobot } from '../../emulator/hetzner-robot/server.js'
import { BaseCommand } from '../../src/command.js'

export default class EmulateHetznerRobot extends BaseCommand {
  static override summary =
    'Run a Hetzner Robot (dedicated servers) failover-IP emulator over HTTP on loopback, for CI smoke tests and demos.'
  static override description = `Speaks the failover part of the Robot web service: GET/POST/DELETE
/failover/{ip} with form-encoded active_server_ip, HTTP Basic auth (an address
is blocked for 10 minutes after 3 failed logins), a synchronous switch that
answers after --pending-ms (40-60 s in reality), FAILOVER_ALREADY_ROUTED,
FAILOVER_LOCKED during a switch, and the hourly request limits (403
RATE_LIMIT_EXCEEDED). Prints the environment to point ipmove at it, also written
to DIR/env.sh once it listens, then runs until SIGINT or SIGTERM. Dedicated
servers have no metadata service: --this-host is refused.

A fault is comma-separated items: path=GLOB, method=METHOD, then one of
status=CODE [retry-after=SECONDS] | reset | hang | slow=MS | pending=MS, and times=N
(default 1; 0 = always). status=500 answers INTERNAL_ERROR. Example:
path=/failover/*,method=POST,status=503

While it runs, /_emulator/ on the same port is its control API (state, faults, pending-ms, reset, requests); ipmove emulate control calls it.`
  static override examples = [
    '<%= config.bin %> emulate hetzner-robot --port 8783 --dir /tmp/robot-emu --pending-ms 2000 &',
    '<%= config.bin %> emulate hetzner-robot --fault "path=/failover/*,method=POST,hang"',
  ]

  static override flags = emulateCommandFlags({
    pendingMs: {
      description: 'How long a switch takes before POST answers, in milliseconds.',
      default: '5000',
    },
    dir: 'Directory for env.sh (default: a temporary one, removed on exit).',
  })

  async run(): Promise<void> {
    const { flags } = await this.parse(EmulateHetznerRobot)
    await runEmulateCommand(this.output, flags, 'Hetzner Robot', emulateRobot)
  }
}
