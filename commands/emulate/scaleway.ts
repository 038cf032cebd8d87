import { emulateCommandFlags, runEmulateCommand } from '../../emulator/emulate-command.js'
import { emulateScaleway } from '../../emulator/scaleway/server.js'
import { BaseCommand } from '../../src/command.js'

export default class EmulateScaleway extends BaseCommand {
  static override summary =
    'Run a Scaleway Instance API and metadata emulator over HTTP on loopback, for CI smoke tests and demos.'
  static override description = `Speaks the part of the Scaleway Instance API ipmove uses (flexible IPs and
servers, by zone; an IP moves with PATCH …/ips/{ip} {"server": ID}), checks the
X-Auth-Token secret key (read-only keys may not PATCH), keeps a moved IP
"pending" for --pending-ms, and serves the Instance metadata service (/conf) on
the same port. Prints the environment to point ipmove (or the scw CLI) at it,
also written to DIR/env.sh once it listens, then runs until SIGINT or SIGTERM.

A fault is comma-separated items: path=GLOB (below /instance/v1), method=METHOD,
then one of status=CODE [retry-after=SECONDS] | reset | hang | slow=MS | pending=MS, and
times=N (default 1; 0 = always). Example: path=/zones/*/ips/*,method=PATCH,status=503

While it runs, /_emulator/ on the same port is its control API (state, faults, pending-ms, reset, requests); ipmove emulate control calls it.`
  static override examples = [
    '<%= config.bin %> emulate scaleway --port 8782 --dir /tmp/scw-emu --this-host web-2 &',
    '<%= config.bin %> emulate scaleway --fault "path=/zones/*/servers,status=429,retry-after=1"',
  ]

  static override flags = emulateCommandFlags({
    pendingMs: { description: 'How long a moved IP stays pending, in milliseconds.', default: '500' },
    dir: 'Directory for env.sh (default: a temporary one, removed on exit).',
  })

  async run(): Promise<void> {
    const { flags } = await this.parse(EmulateScaleway)
    await runEmulateCommand(this.output, flags, 'Scaleway', emulateScaleway)
  }
}
