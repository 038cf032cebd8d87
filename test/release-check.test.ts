/** scripts/release-check.mjs, which `npm publish` runs first, on throw-away package directories. */
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'

const SCRIPT = fileURLToPath(new URL('../scripts/release-check.mjs', import.meta.url))
const PACKAGE = {
  name: 'ipmove',
  version: '1.2.0',
  repository: { type: 'git', url: 'git+https://github.com/ipmove/ipmove.git' },
  homepage: 'https://github.com/ipmove/ipmove#readme',
  bugs: { url: 'https://github.com/ipmove/ipmove/issues' },
}
const dirs: string[] = []

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

/** A package directory with these files, then release-check's exit code and messages. */
function check(files: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'ipmove-release-'))
  dirs.push(dir)
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text)
  return new Promise((resolve) => {
    execFile(process.execPath, [SCRIPT, dir], (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code) : 0, stdout, stderr })
    })
  })
}

const released = '# Changelog\n\n## [Unreleased]\n\n## [1.2.0] - 2026-12-01\n### Added\n- x\n'

describe('release-check', () => {
  it('passes a package whose version has a dated CHANGELOG section, with LICENSE and addresses', async () => {
    const run = await check({
      'package.json': JSON.stringify(PACKAGE),
      'CHANGELOG.md': released,
      LICENSE: 'MIT',
    })
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    expect(run.stdout).toBe('release-check: ipmove 1.2.0 is ready\n')
  })

  it('fails while the changes are only under Unreleased, or under another version', async () => {
    for (const changelog of [
      '## [Unreleased]\n### Added\n- x\n',
      '## [1.2.0]\n- undated\n',
      '## [1.2.01] - 2026-12-01\n',
      '## [1.1.0] - 2026-11-01\n',
    ]) {
      const run = await check({
        'package.json': JSON.stringify(PACKAGE),
        'CHANGELOG.md': changelog,
        LICENSE: 'MIT',
      })
      expect(run.code).toBe(1)
      expect(run.stderr).toBe('release-check: CHANGELOG.md has no "## [1.2.0] - YYYY-MM-DD" section\n')
    }
  })

  it('names each missing piece: LICENSE, repository, homepage, bugs', async () => {
    const { name, version } = PACKAGE
    const run = await check({ 'package.json': JSON.stringify({ name, version }), 'CHANGELOG.md': released })
    expect(run.code).toBe(1)
    expect(run.stderr.trim().split('\n')).toEqual([
      'release-check: LICENSE is missing',
      'release-check: package.json has no repository',
      'release-check: package.json has no homepage',
      'release-check: package.json has no bugs',
    ])
  })
})
