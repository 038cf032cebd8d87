/**
 * oclif's own parse errors, as the built CLI prints them: one line that says
 * what is wrong, exit 2, also with --json.
 */
import { beforeAll, describe, expect, it } from 'vitest'
import { ipmove, isolatedEnv, requireBuild } from './helpers/cli.js'

beforeAll(requireBuild)

describe('flag errors oclif finds', () => {
  it.each([
    [['release', '--ip', '192.0.2.1'], 'Missing required flag interface'],
    [['alias', 'add', '--interface', 'lo'], 'Missing required flag ip'],
    [
      ['status', '--tell', 'web=hold', '--clear-flap', 'web'],
      '--clear-flap=web cannot also be provided when using --tell',
    ],
    [['move', '--nope'], 'Nonexistent flag: --nope'],
  ])('%j: one line naming the problem, exit 2', async (args, problem) => {
    for (const mode of [[], ['--json']]) {
      const run = await ipmove([...args, ...mode], isolatedEnv())
      expect(run.code).toBe(2)
      expect(run.stderr.trim().split('\n')).toHaveLength(1)
      expect(run.stderr).toContain(`ipmove: error: ${problem}`)
      expect(run.stderr).not.toMatch(/following error|See more help/)
      if (mode.length > 0)
        expect(JSON.parse(run.stdout)).toMatchObject({
          ok: false,
          error: { exitCode: 2, message: expect.stringContaining(problem) },
        })
    }
  })
})
