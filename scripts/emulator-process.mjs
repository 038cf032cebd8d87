// Start `ipmove emulate ovh` as a child process and collect the env lines it
// prints, for the demo and the benchmark. The e2e tests start the emulator
// in-process instead.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'

/** bin/run.js, or the file IPMOVE_TEST_BIN names (the single file dist/ipmove.cjs), as in the tests. */
export const BIN = fileURLToPath(
  new URL(process.env.IPMOVE_TEST_BIN || 'bin/run.js', new URL('../', import.meta.url)),
)

const isolatedDirs = []
function removeIsolatedDirs() {
  for (const dir of isolatedDirs.splice(0)) rmSync(dir, { recursive: true, force: true })
}

/**
 * An environment that shields a run from this machine's own ipmove config,
 * id cache and locks: an empty config file, a fresh cache directory and a
 * lock directory of its own (so a hook or test on this host that moves or
 * releases the same IP cannot supersede the demo's moves, nor the demo
 * theirs), all removed when this process exits.
 */
export function isolatedEnv(extra = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'ipmove-run-'))
  // One exit listener for them all: `npm run bench` makes more than Node's warning limit of 10.
  if (isolatedDirs.length === 0) process.once('exit', removeIsolatedDirs)
  isolatedDirs.push(dir)
  const config = join(dir, 'ipmove.conf')
  writeFileSync(config, '', { mode: 0o600 })
  return {
    ...process.env,
    IPMOVE_CONFIG: config,
    IPMOVE_CACHE_DIR: join(dir, 'cache'),
    IPMOVE_LOCK_DIR: join(dir, 'locks'),
    ...extra,
  }
}

/**
 * Options: `netns`, a network namespace to run it in; `onStderr(text, at)`,
 * to read its debug lines (one per request with --debug) as they come, with
 * the performance.now() of their arrival; stderr is inherited otherwise.
 */
export function startEmulator(args = [], { netns, onStderr } = {}) {
  const argv = [BIN, 'emulate', 'ovh', '--port', '0', ...args]
  const child = netns
    ? spawn('ip', ['netns', 'exec', netns, process.execPath, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', onStderr ? 'pipe' : 'inherit'] })
  if (onStderr) child.stderr.on('data', (chunk) => onStderr(String(chunk), performance.now()))
  else if (netns) child.stderr.pipe(process.stderr)
  return new Promise((resolve, reject) => {
    const env = {}
    let buffer = ''
    const timer = setTimeout(() => reject(new Error('the emulator did not start within 10 s')), 10_000)
    child.on('exit', (code) => reject(new Error(`the emulator exited with code ${code}`)))
    child.stdout.on('data', (chunk) => {
      buffer += chunk
      for (;;) {
        const end = buffer.indexOf('\n')
        if (end < 0) break
        const line = buffer.slice(0, end)
        buffer = buffer.slice(end + 1)
        const match = /^export (\w+)=(.*)$/.exec(line)
        if (match) env[match[1]] = match[2].replace(/^'(.*)'$/, '$1')
        else if (/listening/i.test(line)) {
          clearTimeout(timer)
          // stop() resolves once the emulator has exited, having removed its own directory (5 s at most).
          const stop = () =>
            new Promise((done) => {
              const kill = setTimeout(() => child.kill('SIGKILL'), 5_000)
              child.once('exit', () => {
                clearTimeout(kill)
                done()
              })
              child.kill('SIGTERM')
            })
          resolve({ env, stop })
        }
      }
    })
  })
}
