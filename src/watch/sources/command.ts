/**
 * `source = command`: a command says whether this node should hold the IP,
 * by its exit status, every `command-interval`:
 *
 *   exit 0       hold
 *   exit 1       do not hold
 *   anything else (another exit code, killed, not found, no end within
 *   `command-timeout`): unknown, which changes nothing
 *
 * Its output is only logged (the first line), never parsed. The argv runs
 * without a shell, in a process group killed on timeout or stop.
 */
import { setTimeout as delay } from 'node:timers/promises'
import { type CommandEnd, describeEnd, runCommand } from '../../probes/command.js'
import { now } from '../../probes/probe.js'
import type { HoldSource, SourceAnswer, SourceContext, SourceSettings, Wish } from './source.js'

export interface CommandSourceSettings {
  argv: readonly string[]
  intervalMs: number
  timeoutMs: number
}

export function wishOf(end: CommandEnd): Wish {
  if (!('code' in end)) return 'unknown'
  if (end.code === 0) return 'hold'
  return end.code === 1 ? 'release' : 'unknown'
}

export function commandSource(settings: SourceSettings, context: SourceContext): HoldSource {
  const { argv, intervalMs, timeoutMs } = settings as unknown as CommandSourceSettings
  const stopping = new AbortController()
  let loop: Promise<void> | undefined
  const label = `command ${argv.join(' ')}`

  async function run(report: (answer: SourceAnswer) => void): Promise<void> {
    while (!stopping.signal.aborted) {
      const started = now()
      const signal = AbortSignal.any([stopping.signal, AbortSignal.timeout(timeoutMs)])
      const end = await runCommand(argv, signal)
      if (stopping.signal.aborted) return
      const timedOut = signal.aborted
      const wish = timedOut ? 'unknown' : wishOf(end)
      const how = timedOut ? `no end within ${timeoutMs} ms` : describeEnd(end)
      report({ wish, why: `${label}: ${how}`, at: now() })
      const wait = started + intervalMs - now()
      // An abort (stop) ends the pause early; the loop then ends.
      if (wait > 0) await delay(wait, undefined, { signal: stopping.signal }).catch(() => {})
    }
  }

  return {
    start(report) {
      context.log.debug(`following ${label} every ${intervalMs} ms`)
      loop = run(report)
    },
    async stop() {
      stopping.abort()
      await loop
    },
  }
}
