import { emulateDigitalOcean } from '../../emulator/digitalocean/server.js'
import { emulateCommandFlags, runEmulateCommand } from '../../emulator/emulate-command.js'
import { BaseCommand } from '../../src/command.js'

export default class EmulateDigitalOcean extends BaseCommand {
  static override summary =
    'Run a DigitalOcean API and droplet-metadata emulator over HTTP on loopback, for CI smoke tests and demos.'
  static override description =
    `Speaks the part of the DigitalOcean API ipmove uses (reserved IPs, their assign
actions, droplets), checks Bearer tokens and their scopes, keeps each action in
progress for --pending-ms (the IP is locked meanwhile), sends the ratelimit-*
headers and answers 429 past the hourly or per-minute limit, and serves the
droplet metadata service on the same port. Prints the environment to point ipmove
(or doctl) at it, also written to DIR/env.sh once it listens, then runs until
SIGINT or SIGTERM.

A fault is comma-separated items: path=GLOB (below /v2), method=METHOD, then one
of status=CODE [retry-after=SECONDS] | reset | hang | slow=MS | pending=MS, and times=N
(default 1; 0 = always). status=429 answers "too_many_requests". Example:
path=/reserved_ips/*/actions,method=POST,status=429,retry-after=1

While it runs, /_emulator/ on the same port is its control API (state, faults, pending-ms, reset, requests); ipmove emulate control calls it.`
  static override examples = [
    '<%= config.bin %> emulate digitalocean --port 8781 --dir /tmp/do-emu --this-host web-2 &',
    '<%= config.bin %> emulate digitalocean --pending-ms 3000 --fault "path=/actions/*,status=500"',
  ]

  static override flags = emulateCommandFlags({
    pendingMs: {
      description: 'How long an assign action stays in progress, in milliseconds.',
      default: '1000',
    },
    dir: 'Directory for env.sh (default: a temporary one, removed on exit).',
  })

  async run(): Promise<void> {
    const { flags } = await this.parse(EmulateDigitalOcean)
    await runEmulateCommand(this.output, flags, 'DigitalOcean', emulateDigitalOcean)
  }
}
