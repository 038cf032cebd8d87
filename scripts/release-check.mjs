// `npm run release-check [DIR]`, and before `npm publish`: what a release must carry besides
// the code. package.json's version has its own CHANGELOG.md section, dated
// (`## [0.2.0] - 2026-12-01`), moved there from Unreleased; the license file and the
// addresses npm shows are there.
import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const dir = resolve(process.argv[2] ?? fileURLToPath(new URL('..', import.meta.url)))
const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
const changelog = existsSync(join(dir, 'CHANGELOG.md')) ? readFileSync(join(dir, 'CHANGELOG.md'), 'utf8') : ''
const version = String(pkg.version).replaceAll('.', '\\.')

const problems = [
  !new RegExp(`^## \\[${version}\\] - \\d{4}-\\d{2}-\\d{2}$`, 'm').test(changelog) &&
    `CHANGELOG.md has no "## [${pkg.version}] - YYYY-MM-DD" section`,
  !existsSync(join(dir, 'LICENSE')) && 'LICENSE is missing',
  ...['repository', 'homepage', 'bugs'].map((key) => !pkg[key] && `package.json has no ${key}`),
].filter(Boolean)

for (const problem of problems) console.error(`release-check: ${problem}`)
if (problems.length === 0) console.log(`release-check: ${pkg.name} ${pkg.version} is ready`)
process.exitCode = problems.length === 0 ? 0 : 1
