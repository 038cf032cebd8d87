/**
 * ipmoveOvh (a Go tool) spells its flags with one dash; ipmove takes them too,
 * so an existing ifstated or keepalived line switches by changing only the
 * program's name.
 */
const GO_FLAGS: Record<string, string> = {
  '-project': '--project',
  '-project-id': '--project',
  '-ip': '--ip',
  '-ip-id': '--ip-id',
  '-instance': '--instance',
  '-instance-id': '--instance',
}

/** Flags that mean something without a command. */
const ROOT_FLAGS = new Set(['--help', '-h', '--version', '-v'])

/**
 * Rewrite argv before oclif sees it: translate Go-style flags, and make flags
 * with no command mean `move` (`ipmove --ip … --instance …`).
 */
export function normalizeArgv(argv: readonly string[]): string[] {
  const out = argv.map((arg) => {
    const [name, ...value] = arg.split('=')
    const long = name !== undefined ? GO_FLAGS[name] : undefined
    if (!long) return arg
    return value.length > 0 ? `${long}=${value.join('=')}` : long
  })
  const first = out[0]
  if (first?.startsWith('-') && !ROOT_FLAGS.has(first)) out.unshift('move')
  return out
}
