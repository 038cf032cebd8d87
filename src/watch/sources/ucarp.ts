/**
 * `source = ucarp`: the wish comes from the scripts ucarp runs on each change
 * (contrib/ucarp/vip-up-watch and vip-down-watch), or any engine's scripts
 * that run one command per transition (heartbeat's haresources, a custom
 * failover tool). Each script runs
 *
 *   ipmove status --watch --tell NAME=hold      (became master)
 *   ipmove status --watch --tell NAME=release   (became backup)
 *
 * which records the wish in the daemon's lock directory (`watch-NAME.wish`,
 * beside the control socket) and tells the running daemon through its
 * control socket (src/watch/control.ts). The daemon then does what the
 * scripts alone cannot: it reads the API every api-interval, so a node that
 * stayed master through a split re-asserts, and a backup never writes.
 *
 * The recorded wish is read when the source starts: a daemon restarted while
 * ucarp stays in its state (ucarp runs no script then), or started after a
 * script ran, begins from the last wish instead of from unknown. /run is
 * cleared at boot, so no wish outlives the machine's uptime.
 */
import { closeSync, constants, fstatSync, openSync, readSync, renameSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import { lockDir } from '../../lock.js'
import { now } from '../../probes/probe.js'
import { createExclusive } from '../../secure-file.js'
import type { HoldSource, SourceContext, SourceSettings, ToldWish } from './source.js'

/** Where the wish of the watched IP `name` is recorded: beside the control socket, in `dir`. */
export function wishFile(dir: string, name: string): string {
  return join(dir, `watch-${name}.wish`)
}

/** Record `wish` whole (a private file renamed into place), so a reader never sees half of it. */
export function recordWish(dir: string, name: string, wish: ToldWish): void {
  const path = wishFile(dir, name)
  const scratch = `${path}.${process.pid}.tmp`
  try {
    unlinkSync(scratch)
  } catch {
    // None left by a crashed run: the usual case.
  }
  createExclusive(scratch, `${wish}\n`)
  renameSync(scratch, path)
}

/** The wish recorded for `name`, and when; undefined when there is none (or it is not one). Never follows a symlink. */
export function recalledWish(dir: string, name: string): { wish: ToldWish; at: number } | undefined {
  let fd: number
  try {
    fd = openSync(wishFile(dir, name), constants.O_RDONLY | constants.O_NOFOLLOW)
  } catch {
    return undefined
  }
  try {
    const buffer = Buffer.alloc(16)
    const text = buffer.subarray(0, readSync(fd, buffer)).toString('utf8').trim()
    if (text !== 'hold' && text !== 'release') return undefined
    return { wish: text, at: fstatSync(fd).mtimeMs }
  } finally {
    closeSync(fd)
  }
}

export function ucarpSource(_settings: SourceSettings, context: SourceContext): HoldSource {
  // The daemon's lock directory, where its control socket is (src/services/watch.ts reads the same environment).
  const dir = lockDir(process.env)
  let report: ((answer: { wish: ToldWish; why: string; at: number }) => void) | undefined
  return {
    start(onAnswer) {
      report = onAnswer
      const recalled = recalledWish(dir, context.name)
      if (!recalled) {
        context.log.debug('ucarp: no wish recorded yet; waiting for its next script')
        return
      }
      const ago = Math.max(0, Math.round((Date.now() - recalled.at) / 1000))
      report({
        wish: recalled.wish,
        why: `ucarp's last script said ${recalled.wish} (${ago} s before this start)`,
        at: now(),
      })
    },
    async stop() {
      report = undefined
    },
    tell(wish) {
      report?.({ wish, why: `ucarp's script says ${wish}`, at: now() })
    },
  }
}
