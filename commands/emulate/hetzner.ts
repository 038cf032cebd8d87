import { emulateCommandFlags, runEmulateCommand } from '../../emulator/emulate-command.js'
import { emulateHetzner } from '../../emulator/hetzner/server.js'
import { BaseCommand } from '../../src/command.js'

export default class EmulateHetzner extends BaseCommand {
  static override summary =
    'Run a Hetzner Cloud API and metadata emulator over HTTP on loopback, for CI smoke tests and demos.'
  static override description = `Speaks the part of the Hetzner Cloud API ipmove uses (floating IPs, their
assign actions, servers), checks Bearer tokens (Read tokens may only GET), runs
each action for --pending-ms (the IP is locked meanwhile), sends the RateLimit-*
headers and answers 429 once the hourly budget is spent, and serves the server
metadata service on the same port. Prints the environment to point ipmove (or
the hcloud CLI) at it, also written to DIR/env.sh once it listens, then runs
until SIGINT or SIGTERM.

A fault is comma-separated items: path=GLOB (below /v1), method=METHOD, then one
of status=CODE [retry-after=SECONDS] | reset | hang | slow=MS | pending=MS, and times=N
(default 1; 0 = always). status=423 answers "locked", 429 "rate_limit_exceeded",
409 "conflict". Example: path=/floating_ips/*/actions/assign,status=423,times=2

While it runs, /_emulator/ on the same port is its control API (state, faults, pending-ms, reset, requests); ipmove emulate control calls it.`
  static override examples = [
    '<%= config.bin %> emulate hetzner --port 8780 --dir /tmp/hcloud-emu --this-host web-2 &',
    '<%= config.bin %> emulate hetzner --pending-ms 3000 --fault "path=/actions/*,status=503"',
  ]

  static override flags = emulateCommandFlags({
    pendingMs: { description: 'How long an assign action runs, in milliseconds.', default: '1000' },
    dir: 'Directory for env.sh (default: a temporary one, removed on exit).',
  })

  async run(): Promise<void> {
    const { flags } = await this.parse(EmulateHetzner)
    await runEmulateCommand(this.output, flags, 'Hetzner Cloud', emulateHetzner)
  }
}
