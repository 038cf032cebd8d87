import { describe, expect, it } from 'vitest'
import { normalizeArgv } from '../src/argv.js'

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

  it('leaves commands, root flags and values alone', () => {
    expect(normalizeArgv(['status', '--ip', '-ip'])).toEqual(['status', '--ip', '--ip'])
    expect(normalizeArgv(['--help'])).toEqual(['--help'])
    expect(normalizeArgv(['--version'])).toEqual(['--version'])
    expect(normalizeArgv([])).toEqual([])
    expect(normalizeArgv(['emulate', 'ovh'])).toEqual(['emulate', 'ovh'])
  })
})
