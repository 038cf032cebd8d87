/** dist/ipmove.1, written by the build from the help texts: complete, and clean for groff and man. */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
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

  it('is linked into share/man/man1 by `npm install -g` of the tarball', () => {
    // npm (bin-links) links a package's man pages only when package.json's `man` is an array: a single
    // path as a string installs no page at all. A package with ipmove's own `bin` and `man` fields,
    // packed and installed into a throw-away prefix (no dependencies, so offline).
    const { bin, man } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      bin: Record<string, string>
      man: unknown
    }
    const dir = mkdtempSync(join(tmpdir(), 'ipmove-man-'))
    try {
      const pkg = join(dir, 'pkg')
      const files = [...Object.values(bin), ...(Array.isArray(man) ? man : [man])] as string[]
      for (const file of files) {
        mkdirSync(dirname(join(pkg, file)), { recursive: true })
        writeFileSync(join(pkg, file), file.endsWith('.1') ? '.TH IPMOVE 1\n' : '#!/bin/sh\n')
      }
      writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'ipmove', version: '0.0.0', bin, man }))
      const npm = (args: string[], cwd: string) =>
        spawnSync('npm', [...args, '--offline', '--no-audit', '--no-fund', '--silent'], {
          cwd,
          encoding: 'utf8',
        })
      expect(npm(['pack', '--pack-destination', dir], pkg).status).toBe(0)
      const install = npm(['install', '-g', '--prefix', join(dir, 'prefix'), './ipmove-0.0.0.tgz'], dir)
      expect(install.stderr).toBe('')
      expect(install.status).toBe(0)
      expect(existsSync(join(dir, 'prefix/bin/ipmove'))).toBe(true)
      expect(existsSync(join(dir, 'prefix/share/man/man1/ipmove.1'))).toBe(true)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
