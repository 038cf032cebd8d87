// `npm run sea` (after `npm run build`): dist/ipmove-linux-x64, a Node single executable
// application (https://nodejs.org/api/single-executable-applications.html): a copy of the
// node running this script with dist/ipmove.cjs and its V8 code cache injected (postject).
// A server then needs nothing at all, not even Node. Build it with the Node it should embed.
import { execFileSync } from 'node:child_process'
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { inject } from 'postject'
import { splitLauncher } from './launcher.mjs'

const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'
const dist = fileURLToPath(new URL('../dist/', import.meta.url))
const output = join(dist, `ipmove-${process.platform}-${process.arch}`)

if (process.platform !== 'linux')
  throw new Error(`npm run sea builds for Linux only (this is ${process.platform})`)
if (!readFileSync(process.execPath).includes(`${FUSE}:0`)) {
  // Distributions' own builds (a node linked to a shared libnode) may lack it; nodejs.org's have it.
  throw new Error(`${process.execPath} cannot make a single executable: it has no ${FUSE}`)
}

// The script runs inside a function whose require() loads built-in modules only, and warns when
// asked for anything else (oclif's dependencies probe for optional packages at load): hand the
// bundle a real one. Without the sh launcher lines, which only a file started by #! needs.
const { body } = splitLauncher(readFileSync(join(dist, 'ipmove.cjs'), 'utf8'))
const main = `(function (require) {\n${body}\n})(require('node:module').createRequire(process.execPath))\n`

const work = mkdtempSync(join(tmpdir(), 'ipmove-sea-'))
try {
  writeFileSync(join(work, 'main.cjs'), main)
  const config = {
    main: join(work, 'main.cjs'),
    output: join(work, 'sea.blob'),
    disableExperimentalSEAWarning: true,
    // Start-up: V8 compiles the bundle at build time, not at each failover.
    useCodeCache: true,
  }
  writeFileSync(join(work, 'sea.json'), JSON.stringify(config))
  execFileSync(process.execPath, ['--experimental-sea-config', join(work, 'sea.json')], { stdio: 'inherit' })
  rmSync(output, { force: true })
  copyFileSync(process.execPath, output)
  chmodSync(output, 0o755)
  await inject(output, 'NODE_SEA_BLOB', readFileSync(config.output), { sentinelFuse: FUSE })
} finally {
  rmSync(work, { recursive: true, force: true })
}
const version = execFileSync(output, ['--version'], { encoding: 'utf8' }).trim()
console.log(`built ${output} (${version})`)
