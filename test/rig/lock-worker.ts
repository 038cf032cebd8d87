/**
 * One process of the lock race test (test/lock.test.ts), bundled and started
 * with `node lock-worker.mjs MODE LOCK_DIR MARK_DIR KEY`:
 * - hold: take the lock, print "held", then wait to be killed (a holder that dies);
 * - race: print "ready", then for each "go T" line on stdin spin until the
 *   clock reads T (so that all racers are running when it does), take the lock
 *   once and print "done", or "overlap" / "lost" when it failed to be exclusive.
 * Every file system call first pauses for a random fraction of a millisecond,
 * as a tracer would: races that need a process to stall between two calls
 * then show in a few rounds instead of one in hundreds.
 */
import fs, { readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs'
import { syncBuiltinESMExports } from 'node:module'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { withIpLock } from '../../src/lock.js'

const pause = new Int32Array(new SharedArrayBuffer(4))
for (const name of [
  'linkSync',
  'openSync',
  'readdirSync',
  'readFileSync',
  'unlinkSync',
  'writeFileSync',
] as const) {
  const call = fs[name] as (...args: unknown[]) => unknown
  Object.assign(fs, {
    [name]: (...args: unknown[]) => {
      Atomics.wait(pause, 0, 0, Math.random())
      return call(...args)
    },
  })
}
syncBuiltinESMExports()

const [mode, lockDir, markDir, key] = process.argv.slice(2) as [string, string, string, string]
const quiet = { info() {}, progress() {}, warn() {}, debug() {} }
const options = () => ({ env: { IPMOVE_LOCK_DIR: lockDir }, signal: AbortSignal.timeout(30_000), log: quiet })
const say = (line: string) => process.stdout.write(`${line}\n`)

/** Whether a lock file of this key in the directory names this process (any file layout). */
function stillMine(): boolean {
  const prefix = `${key.replace(/[^0-9A-Za-z.-]/g, '_')}.lock`
  return readdirSync(lockDir)
    .filter((name) => name.startsWith(prefix))
    .some((name) => {
      try {
        // The holder's mark is `PID START` (see ownMark in src/lock.ts).
        return readFileSync(join(lockDir, name), 'utf8').split(' ')[0] === String(process.pid)
      } catch {
        return false
      }
    })
}

/** Hold the lock for a moment: a second holder shows as an existing mark, a deleted lock as "lost". */
async function critical(): Promise<string> {
  const mark = join(markDir, 'holder')
  try {
    writeFileSync(mark, String(process.pid), { flag: 'wx' })
  } catch {
    return 'overlap'
  }
  await sleep(5)
  const verdict = stillMine() ? 'done' : 'lost'
  unlinkSync(mark)
  return verdict
}

if (mode === 'hold') {
  await withIpLock(key, options(), async () => {
    say('held')
    await new Promise(() => setInterval(() => {}, 60_000))
  })
} else {
  say('ready')
  for await (const line of createInterface({ input: process.stdin })) {
    const [word, at] = line.split(' ')
    if (word !== 'go') break
    while (Date.now() < Number(at)) {
      // Busy on purpose: a sleeping racer would wake up alone.
    }
    say(await withIpLock(key, options(), critical).catch((error: Error) => `error ${error.message}`))
  }
}
