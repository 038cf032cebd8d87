import { homedir } from 'node:os'
import { resolve } from 'node:path'
import { Flags } from '@oclif/core'
import { providerNamed } from '../../providers/index.js'
import { BaseCommand, configFlag } from '../../src/command.js'
import { type IpmoveConfig, loadConfig, resolveTarget } from '../../src/config.js'
import type { LimitedKey } from '../../src/core/provider.js'
import { usageError } from '../../src/errors.js'
import { systemKeyring } from '../../src/keyring.js'
import { type IpBlock, parseSeconds } from '../../src/validate.js'

const DEFAULT_TIMEOUT_S = 60
/** With --wait: time for a person to open the URL, log in and allow the key. */
const DEFAULT_WAIT_TIMEOUT_S = 300

/**
 * The IPs as addresses, each given as such or as the name of an [ip.NAME] entry of
 * ipmove.conf, and their one project (--project, else the entries', else the default).
 */
function ovhTargets(
  config: IpmoveConfig,
  given: readonly string[],
  project: string | undefined,
): { ips: IpBlock[]; project?: string } {
  const targets =
    given.length > 0
      ? given.map((ip) => resolveTarget(config, { ip, project }))
      : [resolveTarget(config, { project })]
  for (const target of targets) {
    const provider = target.name ? config.ips[target.name]?.provider : undefined
    if (provider && provider !== 'ovh')
      throw usageError(`--ip ${target.name} is an IP of provider ${provider} in ${config.path}, not of ovh`)
  }
  const projects = [...new Set(targets.map((target) => target.project))]
  if (projects.length > 1) {
    throw usageError(
      `the IPs are in different projects (${projects.map((p) => p ?? 'none: classic').join(', ')}); make one key per project`,
    )
  }
  return { ips: targets.flatMap((target) => (target.ip ? [target.ip] : [])), project: projects[0] }
}

export default class OvhCredential extends BaseCommand {
  static override summary =
    'Make an OVH consumer key that can only do what ipmove does for the given IPs, and store it.'
  static override description =
    `Asks OVH (POST /auth/credential) for a consumer key of your application whose access rules allow exactly the calls ipmove move, status and watch make for these IPs, and nothing else: for a Public Cloud failover IP (--project ID), the project's failover IPs, their attach and its instance list; for a classic failover IP (no --project), /ip/BLOCK, its move tasks and its move. With --ip-id the rules name those failover IPs only.

The application key and secret come from where ipmove reads OVH credentials (OVH_APPLICATION_KEY and OVH_APPLICATION_SECRET, ipmove's config, ovh.conf, the OS keyring); any consumer key there is ignored. The new key is a secret and is never printed: it is stored with the application key and secret, either in a new ovh.conf-style file (--ovh-conf FILE, created chmod 600, never overwritten) or in the OS keyring (--keyring, the entry "ipmove credentials set ovh" writes).

The key works only once a person opens the printed validation URL, logs in to the OVH account and allows it (choose an unlimited validity for a failover hook). With --wait the command then waits until that is done (it asks OVH for the key's state every 2 s, GET /auth/currentCredential) and exits 0, or exits 5 when --timeout passes and 3 when the key was refused. A Public Cloud project must be given by id: a key limited to one project cannot look project names up.`
  static override examples = [
    '<%= config.bin %> ovh credential --project 9f3c2a71d4e84b06a5c1e2f3a4b5c6d7 --ip 203.0.113.10 --ovh-conf /etc/ovh.conf',
    '<%= config.bin %> ovh credential --ip 198.51.100.7/32 --keyring',
    '<%= config.bin %> ovh credential --ip 198.51.100.7/32 --keyring --wait --timeout 600',
  ]

  static override flags = {
    ...configFlag,
    ip: Flags.string({
      description:
        'An IP the key may move (repeatable): 1.2.3.4, 1.2.3.4/32, 2001:db8::1, or a named IP from the config.',
      multiple: true,
    }),
    'ip-id': Flags.string({
      description: 'A Public Cloud failover IP id (repeatable): the key may move only these.',
      multiple: true,
    }),
    project: Flags.string({
      description:
        "OVH Public Cloud project id (default: the named IP's or the config's); without one the IPs are classic failover IPs.",
    }),
    'ovh-conf': Flags.string({ description: 'Store the key in this new file (ovh.conf format, chmod 600).' }),
    keyring: Flags.boolean({ description: 'Store the key in the OS keyring, replacing its OVH entry.' }),
    endpoint: Flags.string({ description: 'OVH endpoint name (ovh-eu, ovh-ca, ovh-us…) or API URL.' }),
    redirection: Flags.string({
      description: 'Where the validation page sends the browser once the key is allowed.',
    }),
    wait: Flags.boolean({
      description: 'After printing the validation URL, wait until the key is allowed there.',
    }),
    timeout: Flags.string({
      description: `Give up after this many seconds [default: ${DEFAULT_TIMEOUT_S}, with --wait ${DEFAULT_WAIT_TIMEOUT_S}].`,
    }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(OvhCredential)
    const config = loadConfig({ path: flags.config, env: process.env, home: process.env.HOME || homedir() })
    const { ips, project } = ovhTargets(config, flags.ip ?? [], flags.project)
    const ipIds = flags['ip-id'] ?? []
    if (Boolean(flags['ovh-conf']) === Boolean(flags.keyring)) {
      throw usageError(
        'say where to keep the new consumer key, a secret that is never printed: --ovh-conf FILE or --keyring',
      )
    }
    const timeoutMs =
      flags.timeout === undefined
        ? (flags.wait ? DEFAULT_WAIT_TIMEOUT_S : DEFAULT_TIMEOUT_S) * 1000
        : parseSeconds('--timeout', flags.timeout)
    const which = ipIds.length > 0 ? ['--ip-id', ipIds[0]] : ['--ip', flags.ip![0]]
    const named = flags.ip?.[0] !== undefined && Object.hasOwn(config.ips, flags.ip[0])
    const check = ['ipmove status', ...(project && !named ? ['--project', project] : []), ...which]
    const made = (key: LimitedKey) => {
      this.output.info(`OVH (${key.endpoint}) made a consumer key limited to ${key.rules.length} calls:`)
      for (const rule of key.rules) this.output.info(`  ${rule.method.padEnd(4)} ${rule.path}`)
      this.output.info(`stored with the application key and secret in ${key.storedIn}`)
      this.output.info(
        'it works once allowed: open this URL, log in to the OVH account and allow it (validity: unlimited for a hook):',
      )
      this.output.info(`  ${key.validationUrl}`)
      if (flags.wait) this.output.info(`waiting up to ${timeoutMs / 1000} s for it to be allowed…`)
      else this.output.info(`then check it (reads only): ${check.join(' ')}`)
    }
    const key = await providerNamed('ovh').limitedKey!.request({
      ips,
      ipIds,
      project,
      endpoint: flags.endpoint,
      redirection: flags.redirection,
      store: flags.keyring ? { keyring: systemKeyring() } : { file: resolve(flags['ovh-conf']!) },
      env: process.env,
      config: { path: config.path, values: config.providers.ovh ?? {} },
      log: this.output,
      signal: AbortSignal.timeout(timeoutMs),
      wait: flags.wait ? { made } : undefined,
    })
    if (flags.wait) this.output.info(`the key is allowed; check it (reads only): ${check.join(' ')}`)
    else made(key)
    this.output.result({ ok: true, ...key, validated: key.state === 'validated' })
  }
}
