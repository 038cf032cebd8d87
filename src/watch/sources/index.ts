/**
 * The sources `ipmove watch` can follow instead of its own probes, chosen per
 * IP with `source = KIND` in `[watch.NAME]` (the interface: ./source.ts).
 * A new source is one implementation file here plus one descriptor in
 * SOURCES: its kind, the keys it reads and how it checks them, and a lazy
 * load of the implementation.
 */
import { checkTiming } from '../../probes/probe.js'
import { shown, validateInterface } from '../../validate.js'
import type { SectionReader } from '../section.js'
import { ETCD_KEYS, parseEtcdSettings } from './etcd-settings.js'
import type { SourceDescriptor } from './source.js'

export type { HoldSource, SourceAnswer, SourceContext, SourceSettings, Wish } from './source.js'

/** ipmove's own probes and the decision in src/watch/decide.ts: not in SOURCES, it is the default. */
export const PROBES = 'probes'

const DEFAULT_COMMAND_INTERVAL_MS = 2000
const DEFAULT_COMMAND_TIMEOUT_MS = 5000
/** carp changes state within its advertisement interval (1 s by default): look as often. */
const DEFAULT_CARP_INTERVAL_MS = 1000

export const SOURCES: readonly SourceDescriptor[] = [
  {
    kind: 'command',
    keys: ['command', 'command-interval', 'command-timeout'],
    parse: (r: SectionReader) => {
      const timing = {
        intervalMs: r.seconds('command-interval', DEFAULT_COMMAND_INTERVAL_MS),
        timeoutMs: r.seconds('command-timeout', DEFAULT_COMMAND_TIMEOUT_MS),
      }
      r.wrap('command-interval', () => checkTiming('the command source', timing))
      return { argv: r.argv('command'), ...timing }
    },
    load: async () => (await import('./command.js')).commandSource,
  },
  {
    kind: 'carp',
    keys: ['carp-interface', 'carp-vhid', 'carp-interval'],
    parse: (r: SectionReader) => {
      const iface = r.need(
        'carp-interface',
        'the carp interface (OpenBSD carp0; FreeBSD the one with the vhid)',
      )
      const intervalMs = r.seconds('carp-interval', DEFAULT_CARP_INTERVAL_MS)
      r.wrap('carp-interval', () => checkTiming('the carp source', { intervalMs, timeoutMs: intervalMs }))
      return {
        interface: r.wrap('carp-interface', () => validateInterface(iface, 'the value')),
        vhid: r.integer('carp-vhid', 1, 255, 0),
        intervalMs,
      }
    },
    load: async () => (await import('./carp.js')).carpSource,
  },
  {
    // Told by ucarp's scripts through the control socket; no keys of its own.
    kind: 'ucarp',
    keys: [],
    parse: () => ({}),
    load: async () => (await import('./ucarp.js')).ucarpSource,
  },
  {
    kind: 'keepalived-fifo',
    keys: ['keepalived-fifo', 'keepalived-instance', 'keepalived-group'],
    parse: (r: SectionReader) => {
      const fifo = r.need('keepalived-fifo', "the path of keepalived's vrrp_notify_fifo")
      if (!fifo.startsWith('/'))
        throw r.fail('keepalived-fifo', `expected an absolute path, got ${shown(fifo)}`)
      const instance = r.get('keepalived-instance')
      const group = r.get('keepalived-group')
      if ((instance === undefined) === (group === undefined)) {
        throw r.fail(
          undefined,
          'needs either keepalived-instance = NAME (a vrrp_instance) or keepalived-group = NAME (a vrrp_sync_group)',
        )
      }
      const name = (instance ?? group)!
      if (!/^[^\s"]{1,64}$/.test(name)) {
        throw r.fail(
          instance === undefined ? 'keepalived-group' : 'keepalived-instance',
          `expected keepalived's name for it, got ${shown(name)}`,
        )
      }
      return { fifo, type: instance === undefined ? 'GROUP' : 'INSTANCE', name }
    },
    load: async () => (await import('./keepalived-fifo.js')).keepalivedFifoSource,
  },
  {
    kind: 'etcd',
    keys: ETCD_KEYS,
    // A node of higher priority takes the lease back once it has campaigned for preempt-delay.
    sharedKeys: ['priority', 'preempt', 'preempt-delay'],
    parse: (r: SectionReader) => ({ ...parseEtcdSettings(r) }),
    load: async () => (await import('./etcd.js')).etcdSource,
  },
]

export const SOURCE_KINDS: readonly string[] = [PROBES, ...SOURCES.map((s) => s.kind)]

export function sourceNamed(kind: string): SourceDescriptor | undefined {
  return SOURCES.find((s) => s.kind === kind)
}
