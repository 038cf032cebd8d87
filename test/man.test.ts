/** dist/ipmove.1, written by the build from the help texts: complete, and clean for groff and man. */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { beforeAll, describe, expect, it } from 'vitest'
import { PROVIDER_NAMES } from '../providers/index.js'

const page = () => readFileSync(new URL('../dist/ipmove.1', import.meta.url), 'utf8')
const manifest = () =>
  JSON.parse(readFileSync(new URL('../oclif.manifest.json', import.meta.url), 'utf8')) as {
    commands: Record<string, { hidden?: boolean; summary?: string }>
  }
const has = (tool: string) => spawnSync(tool, ['--version']).status === 0

beforeAll(() => {
  expect(() => page(), 'run `npm run build` first').not.toThrow()
})

describe('the man page', () => {
  it('has a section per command, with the help’s summaries, choices and defaults', () => {
    const text = page()
    for (const [id, command] of Object.entries(manifest().commands)) {
      if (command.hidden) continue
      expect(text).toContain(`.SS "ipmove ${id.replaceAll(':', ' ').replaceAll('-', '\\-')}"`)
    }
    // roff escapes every hyphen, those inside provider names too.
    const names = PROVIDER_NAMES.join('|').replaceAll('-', '\\-')
    expect(text).toContain(`.B \\-\\-provider \\fI${names}\\fR`)
    expect(text).toMatch(
      /\.B \\-\\-\[no\\-\]wait\nWait until the API says the move is done\. \[default: true\]/,
    )
    expect(text).toContain('Store or delete API credentials in the OS keyring.')
    expect(text).not.toContain('<%=')
    // No line starts a request by accident; no raw non-ASCII for groff to refuse.
    for (const line of text.split('\n')) expect(line).not.toMatch(/^'/)
    expect(text).not.toMatch(/[\u0080-\uffff]/)
  })

  it.skipIf(!has('groff'))('renders without a warning in groff -ww (skipped without groff)', () => {
    const run = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z', 'dist/ipmove.1'], { encoding: 'utf8' })
    expect(run.stderr).toBe('')
    expect(run.status).toBe(0)
  })

  it.skipIf(!has('man'))('reads in man -l at 80 columns without a warning (skipped without man)', () => {
    const run = spawnSync('man', ['-l', 'dist/ipmove.1'], {
      encoding: 'utf8',
      env: { ...process.env, MANWIDTH: '80', MANPAGER: 'cat', PAGER: 'cat' },
    })
    expect(run.stderr).toBe('')
    expect(run.stdout).toMatch(/^IPMOVE\(1\)/)
    expect(run.stdout).toContain('ipmove list [flags]')
  })
})
