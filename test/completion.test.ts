/**
 * `ipmove completion bash|zsh`, driven by the real shells: bash through its
 * completion variables, zsh with _arguments and _describe replaced by functions
 * that print what they were given (the dispatch is ours; those are zsh's).
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PROVIDER_NAMES } from '../providers/index.js'
import { ipmove, isolatedEnv, requireBuild } from './helpers/cli.js'

const dir = mkdtempSync(join(tmpdir(), 'ipmove-completion-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const has = (shell: string) => spawnSync(shell, ['-c', 'exit 0']).status === 0

async function script(shell: 'bash' | 'zsh'): Promise<string> {
  const run = await ipmove(['completion', shell], isolatedEnv())
  expect(run.stderr).toBe('')
  expect(run.code).toBe(0)
  const file = join(dir, shell)
  writeFileSync(file, run.stdout)
  return file
}

beforeAll(requireBuild)

describe('bash completion', () => {
  let file: string
  beforeAll(async () => {
    file = await script('bash')
  })

  /** What bash offers for the words typed so far, the last being the one completed. */
  function complete(...typed: string[]): string[] {
    const words = ['ipmove', ...typed].map((w) => `'${w}'`).join(' ')
    const run = spawnSync(
      'bash',
      [
        '-c',
        `source "$1"; COMP_WORDS=(${words}); COMP_CWORD=${typed.length}; _ipmove; printf '%s\\n' "\${COMPREPLY[@]}"`,
        'bash',
        file,
      ],
      { encoding: 'utf8' },
    )
    expect(run.stderr).toBe('')
    return run.stdout.split('\n').filter(Boolean)
  }

  it('completes commands, topics and their commands', () => {
    expect(complete('')).toEqual(expect.arrayContaining(['move', 'status', 'list', 'alias', 'help']))
    expect(complete('st')).toEqual(['status'])
    expect(complete('alias', '')).toEqual(['add', 'remove', 'show'])
    expect(complete('help', 'cr')).toEqual(['credentials'])
  })

  it('completes a command’s flags, --[no-]flags and arguments; flags alone mean move', () => {
    expect(complete('move', '--no-')).toEqual(['--no-wait'])
    expect(complete('move', '--ip', '192.0.2.1', '--dr')).toEqual(['--dry-run'])
    expect(complete('--ins')).toEqual(['--instance'])
    expect(complete('release', '--')).not.toContain('--config')
    expect(complete('credentials', 'set', '')).toEqual(['ovh'])
    expect(complete('credentials', 'set', 'ovh', '--o')).toEqual(['--oauth2'])
  })

  it('completes values: --provider from the registry, --mode, interfaces; nothing for free text', () => {
    expect(complete('move', '--provider', '')).toEqual([...PROVIDER_NAMES])
    expect(complete('status', '--mode', 'p')).toEqual(['private'])
    expect(complete('alias', 'add', '--interface', 'l')).toContain('lo')
    expect(complete('move', '--ip', '')).toEqual([])
  })
})

describe('zsh completion', () => {
  let file: string
  beforeAll(async () => {
    file = await script('zsh')
  })

  /** What our function hands to _arguments or _describe, for the words typed so far. */
  function complete(...typed: string[]): string {
    const words = ['ipmove', ...typed].map((w) => `'${w}'`).join(' ')
    const run = spawnSync(
      'zsh',
      [
        '-fc',
        `_arguments() { print -r -- "arguments $words[*] $CURRENT"; print -rl -- "$@" }
_describe() { print -r -- describe; print -rl -- "\${(@P)2}" }
source <(sed '$d' "$1") # without its last line, which completes at once when autoloaded
words=(${words}); CURRENT=${typed.length + 1}; _ipmove`,
        'zsh',
        file,
      ],
      { encoding: 'utf8' },
    )
    expect(run.stderr).toBe('')
    return run.stdout
  }

  it.skipIf(!has('zsh'))(
    'parses, and hands each command’s flags to _arguments with its own words (skipped without zsh)',
    () => {
      expect(spawnSync('zsh', ['-n', file]).status).toBe(0)
      expect(readFileSync(file, 'utf8').trimEnd().split('\n').at(-1)).toBe('_ipmove "$@"')
      const top = complete('')
      expect(top).toMatch(/^describe\n/)
      expect(top).toContain('credentials:Store or delete API credentials in the OS keyring.')
      const move = complete('move', '--ip', '192.0.2.1', '--')
      expect(move.split('\n')[0]).toBe('arguments ipmove --ip 192.0.2.1 -- 4')
      expect(move).toContain(
        `--provider=[Provider (default\\: from the config file, else ovh).]:provider:(${PROVIDER_NAMES.join(' ')})`,
      )
      expect(move).toContain('--no-wait[')
      expect(move).toContain(
        '--interface=[Also configure the address on this interface and announce it.]:interface:_net_interfaces',
      )
      // Flags alone mean move; a topic's commands are described.
      expect(complete('--i')).toContain('--instance=[')
      expect(complete('alias', '')).toMatch(/^describe\nadd:Put an address/)
      expect(complete('credentials', 'set', '')).toContain('1:argument:(ovh)')
    },
  )
})
