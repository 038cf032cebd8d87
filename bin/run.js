#!/usr/bin/env node
// ipmove's entry. It runs inside failover hooks, where start-up time is downtime:
// the compile cache (Node >= 22.1) and the --version shortcut keep it near Node's own.
import module from 'node:module'

module.enableCompileCache?.()

const args = process.argv.slice(2)
if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) {
  // Same text as oclif's version flag, without loading oclif.
  const { readFileSync } = await import('node:fs')
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
  process.stdout.write(`ipmove/${version} ${process.platform}-${process.arch} node-${process.version}\n`)
} else {
  const { run } = await import('../dist/src/main.js')
  await run(args, import.meta.url)
}
