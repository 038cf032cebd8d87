/**
 * Help, as an operator asks for it: `ipmove help [COMMAND]`, `-h`, `--help`,
 * from the built CLI (bin/run.js, or IPMOVE_TEST_BIN such as the single file).
 */
import { beforeAll, describe, expect, it } from 'vitest'
import { PROVIDER_NAMES } from '../providers/index.js'
import { ipmove, isolatedEnv, requireBuild } from './helpers/cli.js'

beforeAll(requireBuild)

const env = (columns = 80) => isolatedEnv({ OCLIF_COLUMNS: String(columns) })

describe('ipmove help', () => {
  it.each([
    [['help'], 'TOPICS'],
    [['-h'], 'TOPICS'],
    [['--help'], 'TOPICS'],
    [[], 'TOPICS'],
    [['help', 'move'], '$ ipmove move'],
    [['move', '-h'], '$ ipmove move'],
    [['move', '--help'], '$ ipmove move'],
    [['--ip', '203.0.113.10', '-h'], '$ ipmove move'],
    [['help', 'alias', 'add'], '$ ipmove alias add'],
    [['alias', 'add', '-h'], '$ ipmove alias add'],
    [['help', 'credentials'], 'credentials set'],
  ])('%j shows help and exits 0', async (args, expected) => {
    const run = await ipmove(args, env())
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    expect(run.stdout).toContain(expected)
  })

  it.each([[['help', 'nope']], [['nope']], [['nope', '-h']], [['help', 'alias', 'nope']]])(
    '%j is one ipmove error line naming the commands, exit 2',
    async (args) => {
      for (const mode of [[], ['--json']]) {
        const run = await ipmove([...args, ...mode], env())
        expect(run.code).toBe(2)
        expect(run.stderr).toMatch(
          /^ipmove: error: unknown command "[a-z ]+" \(commands: alias add, .*move, .*\)/,
        )
        expect(run.stderr.trim().split('\n')).toHaveLength(1)
        if (mode.length > 0)
          expect(JSON.parse(run.stdout)).toMatchObject({ ok: false, error: { exitCode: 2 } })
        else expect(run.stdout).toBe('')
      }
    },
  )

  it('describes each topic by itself, not by its first command', async () => {
    const { stdout } = await ipmove(['help'], env())
    expect(stdout).toMatch(/^ {2}credentials +Store or delete API credentials in the OS keyring\.$/m)
    expect(stdout).toMatch(/^ {2}alias +Put addresses on local interfaces/m)
  })

  it("lists --provider's choices from the registry and --[no-]wait's default", async () => {
    const { stdout } = await ipmove(['help', 'move'], env(200))
    expect(stdout).toContain(`<options: ${PROVIDER_NAMES.join('|')}>`)
    expect(stdout).toMatch(/--\[no-\]wait .*\[default: true\]/)
    const status = await ipmove(['status', '--help'], env(200))
    expect(status.stdout).toContain(`--provider=<option>`)
  })

  it('shows the config and syslog flags only on the commands that use them', async () => {
    const flagsOf = async (...command: string[]) => {
      const { stdout } = await ipmove([...command, '--help'], env(200))
      return new Set([...stdout.matchAll(/^ {2}(--[a-z-]+)/gm)].map((m) => m[1]))
    }
    expect(await flagsOf('move')).toEqual(expect.objectContaining({}))
    for (const command of [['move'], ['status']]) {
      const flags = await flagsOf(...command)
      for (const flag of ['--config', '--syslog', '--json', '--debug'])
        expect(flags, `${command} ${flag}`).toContain(flag)
    }
    for (const command of [['release'], ['alias', 'add'], ['alias', 'remove']]) {
      const flags = await flagsOf(...command)
      expect(flags, `${command}`).toContain('--syslog')
      expect(flags, `${command}`).not.toContain('--config')
    }
    for (const command of [
      ['emulate', 'ovh'],
      ['aws', 'policy'],
      ['credentials', 'set'],
      ['alias', 'show'],
    ]) {
      const flags = await flagsOf(...command)
      expect(flags, `${command}`).toContain('--json')
      expect(flags, `${command}`).not.toContain('--config')
      expect(flags, `${command}`).not.toContain('--syslog')
    }
  })

  it('wraps to the terminal width, keeping table rows indented', async () => {
    for (const columns of [60, 120]) {
      const { stdout } = await ipmove(['emulate', 'ovh', '--help'], env(columns))
      const lines = stdout.split('\n')
      // Examples are left whole (they are meant to be copied); everything else fits.
      const prose = lines.filter((line) => !line.trimStart().startsWith('$ '))
      for (const line of prose) expect(line.length, line).toBeLessThanOrEqual(columns)
      // A paragraph is re-flowed to the width, not broken where the source was.
      const intro = lines.findIndex((line) => line.includes('Speaks the part of the OVH API'))
      expect(lines[intro]!.length).toBeGreaterThan(columns - 20)
      // The fault table keeps its indentation; its continuation lines hang under its second column.
      const row = lines.findIndex((line) => /^ {4}task=STATUS {2,}/.test(line))
      expect(row).toBeGreaterThan(0)
      if (columns === 60) expect(lines[row + 1]).toMatch(/^ {33}\S/)
    }
  })
})
