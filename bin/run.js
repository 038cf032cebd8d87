#!/bin/sh
':' //; export NODE_COMPILE_CACHE="${NODE_COMPILE_CACHE-${TMPDIR:-/tmp}/node-compile-cache}"
':' //; [ -n "$IPMOVE_NODE" ] && exec "$IPMOVE_NODE" "$0" "$@"
':' //; for node in "${0%/*}/node" "$(command -v node)" /usr/local/bin/node /usr/bin/node; do [ -f "$node" ] && [ -x "$node" ] && exec "$node" "$0" "$@"; done
':' //; echo "ipmove: error: node not found beside $0, on PATH, in /usr/local/bin or /usr/bin: set IPMOVE_NODE" >&2; exit 127
// The lines above are sh and JavaScript at once: failover hooks often run with a
// PATH without node (`PATH=/usr/sbin:/sbin`), where `#!/usr/bin/env node` exits
// 127. sh runs them and execs the first node found: $IPMOVE_NODE, the one beside
// this file's link (npm's global bin directory), PATH's, /usr/local/bin, /usr/bin.
// Node sees a string and comments. scripts/build.mjs gives dist/ipmove.cjs the same lines.
// NODE_COMPILE_CACHE (Node >= 22.1) caches the compiled entry file too, which
// matters to the single file: it is all of ipmove (enableCompileCache() below comes too late for it).
//
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
