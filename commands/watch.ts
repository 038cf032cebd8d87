import { Flags } from '@oclif/core'
import { BaseCommand, configFlag, hookFlags } from '../src/command.js'
import { runWatch } from '../src/services/watch.js'

export default class Watch extends BaseCommand {
  static override summary =
    'Run the daemon: move failover IPs by its own health probes, or as an election engine it follows says.'
  static override description =
    "Runs in the foreground (systemd, rc.d and containers supervise it) for every [watch.NAME] section of the config file (see the README). It probes the peer, this node and the service at the IP, or follows an election engine (source =), reads the API's holder, and claims or yields the IP. SIGHUP reloads the config; SIGTERM stops. Nothing starts unless the whole file is valid."
  static override examples = [
    '<%= config.bin %> watch --check',
    '<%= config.bin %> watch --config /etc/ipmove/ipmove.conf --syslog',
  ]

  static override flags = {
    ...hookFlags,
    ...configFlag,
    check: Flags.boolean({ description: 'Only validate the config, then exit.' }),
    'release-on-stop': Flags.boolean({
      description: 'On SIGTERM, drop every address before exiting (the API is left as it is).',
    }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(Watch)
    const summary = await runWatch(
      { configPath: flags.config, check: flags.check, releaseOnStop: flags['release-on-stop'] },
      this.output,
    )
    this.output.result({ ok: true, ...summary })
  }
}
