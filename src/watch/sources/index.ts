/**
 * The sources `ipmove watch` can follow instead of its own probes, chosen per
 * IP with `source = KIND` in `[watch.NAME]` (the interface: ./source.ts).
 * A new source is one implementation file here plus one descriptor in
 * SOURCES: its kind, the keys it reads and how it checks them, and a lazy
 * load of the implementation.
 */
import { checkTiming } from '../../probes/probe.js'
import type { SectionReader } from '../section.js'
import { ETCD_KEYS, parseEtcdSettings } from './etcd-settings.js'
import type { SourceDescriptor } from './source.js'

export type { HoldSource, SourceAnswer, SourceContext, SourceSettings, Wish } from './source.js'

/** ipmove's own probes and the decision in src/watch/decide.ts: not in SOURCES, it is the default. */
export const PROBES = 'probes'

const DEFAULT_COMMAND_INTERVAL_MS = 2000
const DEFAULT_COMMAND_TIMEOUT_MS = 5000

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
    kind: 'etcd',
    keys: ETCD_KEYS,
    parse: (r: SectionReader) => ({ ...parseEtcdSettings(r) }),
    load: async () => (await import('./etcd.js')).etcdSource,
  },
]

export const SOURCE_KINDS: readonly string[] = [PROBES, ...SOURCES.map((s) => s.kind)]

export function sourceNamed(kind: string): SourceDescriptor | undefined {
  return SOURCES.find((s) => s.kind === kind)
}
