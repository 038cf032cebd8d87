import { Flags } from '@oclif/core'
import { DEFAULT_ANNOUNCE } from '../../src/alias/announce.js'
import { type AddAliasResult, addAlias } from '../../src/alias/service.js'
import { BaseCommand, hookFlags } from '../../src/command.js'

function describeAnnounced(result: AddAliasResult): string {
  const { announced } = result
  if (!announced) return 'not announced'
  if ('skipped' in announced) return `not announced: ${announced.skipped}`
  return `announced ${announced.count}× every ${announced.intervalMs} ms with ${announced.tool}`
}

export default class AliasAdd extends BaseCommand {
  static override summary = 'Put an address on a local interface and announce it to the LAN.'
  static override description =
    'Adds IP as /32 (IPv4) or /128 (IPv6) unless a block is given, waits out IPv6 duplicate address ' +
    'detection, then sends gratuitous ARP (IPv4) or unsolicited neighbour advertisements (IPv6). ' +
    'An address already present is left alone and announced again.'
  static override examples = [
    '<%= config.bin %> alias add --ip 203.0.113.5 --interface eth0',
    '<%= config.bin %> alias add --ip 203.0.113.5 --interface eth0 --label vip --count 3 --interval 100',
    '<%= config.bin %> alias add --ip 2001:db8::5 --interface eth0 --nodad',
  ]

  static override flags = {
    ...hookFlags,
    ip: Flags.string({ description: 'Address (or block) to add.', required: true }),
    interface: Flags.string({ description: 'Interface to carry it.', required: true }),
    label: Flags.string({ description: 'Linux IPv4 label: LABEL becomes IF:LABEL (15 characters at most).' }),
    announce: Flags.boolean({
      description: 'Announce the address (gratuitous ARP / unsolicited NA).',
      default: true,
      allowNo: true,
    }),
    count: Flags.integer({ description: 'Announcements to send.', default: DEFAULT_ANNOUNCE.count }),
    interval: Flags.integer({
      description: 'Milliseconds between announcements.',
      default: DEFAULT_ANNOUNCE.intervalMs,
    }),
    nodad: Flags.boolean({ description: 'IPv6 on Linux: skip duplicate address detection.' }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(AliasAdd)
    const result = await addAlias({
      ip: flags.ip,
      interface: flags.interface,
      label: flags.label,
      announce: flags.announce ? { count: flags.count, intervalMs: flags.interval } : false,
      nodad: flags.nodad,
    })
    const where = result.label ? `${result.interface} (${result.label})` : result.interface
    const what = result.changed ? `added ${result.ip} to ${where}` : `${result.ip} already on ${where}`
    this.output.info(`${what}; ${describeAnnounced(result)}`)
    this.output.result({ ok: true, ...result })
  }
}
