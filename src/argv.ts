import { PROVIDER_FLAGS } from '../providers/index.js'

/**
 * ipmoveOvh (a Go tool) spells its flags with one dash; ipmove takes them too,
 * so an existing ifstated or keepalived line switches by changing only the
 * program's name.
 */
const GO_FLAGS = new Map([
  ['-project', '--project'],
  ['-project-id', '--project'],
  ['-ip', '--ip'],
  ['-ip-id', '--ip-id'],
  ['-instance', '--instance'],
  ['-instance-id', '--instance'],
])

/**
 * Every flag of every command that takes a value (test/argv.test.ts keeps this
 * list equal to the commands' own): the commands' flags here, the providers'
 * from the registry. Loading the commands here instead would cost every hook
 * their start-up; the registry is light.
 */
export const VALUE_FLAGS: ReadonlySet<string> = new Set([
  'clear-flap',
  'clock-skew',
  'config',
  'count',
  'dir',
  'endpoint',
  'fault',
  'fixture',
  'host',
  'instance',
  'interface',
  'interval',
  'ip',
  'ip-id',
  'label',
  'mode',
  'pending-ms',
  'port',
  'project',
  'provider',
  'socket',
  'tell',
  'this-host',
  'timeout',
  ...PROVIDER_FLAGS.map((flag) => flag.key),
])

/** Flags that mean something without a command. */
const ROOT_FLAGS = new Set(['--help', '-h', '--version', '-v'])

/**
 * Rewrite argv before oclif sees it: translate Go-style flags, make flags
 * with no command mean `move` (`ipmove --ip … --instance …`), and `help X` mean `X --help`.
 *
 * The word after a flag that takes a value is that value, always: one that
 * starts with a dash is glued on (`--ip --help` becomes `--ip=--help`), so it can neither show the help and
 * exit 0 in a hook that then did nothing, nor be taken for a flag of its own;
 * validation then refuses it with exit 2. Go-style names are translated only
 * where a flag stands, never in a value (`--label -project` stays a label).
 */
export function normalizeArgv(argv: readonly string[]): string[] {
  // `ipmove help [COMMAND…]` is `ipmove [COMMAND…] --help`.
  if (argv[0] === 'help') return [...normalizeArgv(argv.slice(1)), '--help']
  const out: string[] = []
  let awaiting: string | undefined
  for (const [index, arg] of argv.entries()) {
    if (awaiting !== undefined) {
      if (arg.startsWith('-')) out[out.length - 1] = `${awaiting}=${arg}`
      else out.push(arg)
      awaiting = undefined
      continue
    }
    if (arg === '--') {
      out.push(...argv.slice(index))
      break
    }
    const [name = '', ...value] = arg.split('=')
    const long = GO_FLAGS.get(name) ?? name
    out.push(value.length > 0 ? `${long}=${value.join('=')}` : long)
    if (value.length === 0 && long.startsWith('--') && VALUE_FLAGS.has(long.slice(2))) awaiting = long
  }
  const first = out[0]
  if (first?.startsWith('-') && !ROOT_FLAGS.has(first)) out.unshift('move')
  return out
}
