import { describe, expect, it } from 'vitest'
import AliasAdd from '../commands/alias/add.js'
import AliasRemove from '../commands/alias/remove.js'
import AliasShow from '../commands/alias/show.js'
import AwsPolicy from '../commands/aws/policy.js'
import CredentialsDelete from '../commands/credentials/delete.js'
import CredentialsSet from '../commands/credentials/set.js'
import EmulateAws from '../commands/emulate/aws.js'
import EmulateOvh from '../commands/emulate/ovh.js'
import Move from '../commands/move.js'
import Release from '../commands/release.js'
import Status from '../commands/status.js'
import { normalizeArgv, VALUE_FLAGS } from '../src/argv.js'

describe('normalizeArgv', () => {
  it('makes flags without a command mean move', () => {
    expect(normalizeArgv(['--ip', '203.0.113.10', '--instance', 'a'])).toEqual([
      'move',
      '--ip',
      '203.0.113.10',
      '--instance',
      'a',
    ])
  })

  it('translates ipmoveOvh’s one-dash flags, so an ifstated line only changes the program name', () => {
    expect(
      normalizeArgv(['-project', 't18s', '-ip', '146.59.143.231', '-instance', 'bi-edge-sbg-2']),
    ).toEqual(['move', '--project', 't18s', '--ip', '146.59.143.231', '--instance', 'bi-edge-sbg-2'])
    expect(normalizeArgv(['-project-id=abc', '-instance-id', 'x'])).toEqual([
      'move',
      '--project=abc',
      '--instance',
      'x',
    ])
  })

  it('makes `help [COMMAND…]` mean `[COMMAND…] --help`', () => {
    expect(normalizeArgv(['help'])).toEqual(['--help'])
    expect(normalizeArgv(['help', 'alias', 'add'])).toEqual(['alias', 'add', '--help'])
    expect(normalizeArgv(['help', '-ip', '192.0.2.1'])).toEqual(['move', '--ip', '192.0.2.1', '--help'])
    expect(normalizeArgv(['move', '--ip', 'help'])).toEqual(['move', '--ip', 'help'])
  })

  it('leaves commands, root flags and values alone', () => {
    expect(normalizeArgv(['status', '--ip', '-ip'])).toEqual(['status', '--ip=-ip'])
    expect(normalizeArgv(['--help'])).toEqual(['--help'])
    expect(normalizeArgv(['--version'])).toEqual(['--version'])
    expect(normalizeArgv([])).toEqual([])
    expect(normalizeArgv(['emulate', 'ovh'])).toEqual(['emulate', 'ovh'])
  })

  it('never takes a flag’s value for a flag: it is glued on, for validation to refuse', () => {
    expect(normalizeArgv(['--ip', '--help'])).toEqual(['move', '--ip=--help'])
    expect(normalizeArgv(['--ip', '-h', '--instance', 'a'])).toEqual(['move', '--ip=-h', '--instance', 'a'])
    expect(normalizeArgv(['status', '--timeout', '--version'])).toEqual(['status', '--timeout=--version'])
    expect(normalizeArgv(['-ip', '--json'])).toEqual(['move', '--ip=--json'])
    // Flags that take no value leave the next word alone.
    expect(normalizeArgv(['--json', '--help'])).toEqual(['move', '--json', '--help'])
  })

  it('translates one-dash names only where a flag stands, never in a value', () => {
    expect(normalizeArgv(['--label', '-project'])).toEqual(['move', '--label=-project'])
    expect(normalizeArgv(['alias', 'add', '--label', '-ip', '--ip', '192.0.2.1'])).toEqual([
      'alias',
      'add',
      '--label=-ip',
      '--ip',
      '192.0.2.1',
    ])
    expect(normalizeArgv(['--', '-project'])).toEqual(['move', '--', '-project'])
    expect(normalizeArgv(['__proto__', '-constructor'])).toEqual(['__proto__', '-constructor'])
  })

  it('knows exactly the flags that take a value, in every command', () => {
    const commands = [
      Move,
      Status,
      Release,
      AliasAdd,
      AliasRemove,
      AliasShow,
      AwsPolicy,
      CredentialsSet,
      CredentialsDelete,
      EmulateOvh,
      EmulateAws,
    ]
    const taking = new Set<string>()
    for (const command of commands) {
      const flags = { ...command.baseFlags, ...command.flags } as Record<string, { type: string }>
      for (const [name, flag] of Object.entries(flags)) if (flag.type === 'option') taking.add(name)
    }
    expect([...VALUE_FLAGS].sort()).toEqual([...taking].sort())
  })
})
