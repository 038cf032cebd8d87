/**
 * A command as a health check: exit 0 is healthy. The argv runs without a
 * shell, in a process group of its own, so that a timeout or a stop kills
 * the command and whatever it started. Its output is kept only up to a few
 * kilobytes, for the one line a failure reports. A command costs a fork per
 * run: prefer the other kinds for sub-second intervals.
 */
import { spawn } from 'node:child_process'
import { usageError } from '../errors.js'
import { type Probe, periodicProbe, reason, type Timing } from './probe.js'

export interface CommandSpec extends Timing {
  argv: readonly string[]
}

/** Output kept per stream, for the failure's message. */
const KEEP_BYTES = 4096
const DETAIL_CHARS = 200
/** How long output may trail the exit of the command. */
const OUTPUT_GRACE_MS = 100

/** Collect the start of a stream, and keep draining the rest so the command never blocks on a full pipe. */
function head(stream: NodeJS.ReadableStream): () => string {
  let kept = ''
  stream.on('data', (chunk: Buffer) => {
    if (kept.length < KEEP_BYTES) kept += chunk.toString('utf8').slice(0, KEEP_BYTES - kept.length)
  })
  return () => kept
}

function firstLine(text: string): string {
  const line =
    text
      .split('\n')
      .map((l) => l.trim())
      .find(Boolean) ?? ''
  return line.length > DETAIL_CHARS ? `${line.slice(0, DETAIL_CHARS)}…` : line
}

/** How one run of a command ended: its exit code or the signal that killed it, and the first line it said. */
export type CommandEnd =
  | { code: number; killedBy: null; said: string }
  | { code: null; killedBy: NodeJS.Signals; said: string }
  | { error: string }

/**
 * Run `argv` once, without a shell, in a process group of its own: when
 * `signal` aborts, the group is killed (the command and whatever it started).
 */
export function runCommand(argv: readonly string[], signal: AbortSignal): Promise<CommandEnd> {
  const [file, ...args] = argv
  return new Promise((resolve) => {
    const child = spawn(file!, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    const stdout = head(child.stdout)
    const stderr = head(child.stderr)
    const onAbort = () => {
      // The group's leader is not reaped before 'exit', so its id cannot belong to anyone else yet.
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-child.pid, 'SIGKILL')
        } catch {
          // Already gone.
        }
      }
    }
    signal.addEventListener('abort', onAbort)
    let done = false
    let grace: NodeJS.Timeout | undefined
    const finish = (end: CommandEnd) => {
      if (done) return
      done = true
      clearTimeout(grace)
      signal.removeEventListener('abort', onAbort)
      child.stdout.destroy()
      child.stderr.destroy()
      resolve(end)
    }
    const report = (code: number | null, killedBy: NodeJS.Signals | null) => {
      const said = firstLine(stderr()) || firstLine(stdout())
      finish(code === null ? { code, killedBy: killedBy ?? 'SIGKILL', said } : { code, killedBy: null, said })
    }
    child.once('error', (error) => finish({ error: reason(error) }))
    child.once('close', report)
    // 'close' waits for the pipes, which a grandchild that left the group may hold open: give it a moment only.
    child.once('exit', (code, killedBy) => {
      grace = setTimeout(() => report(code, killedBy), OUTPUT_GRACE_MS)
    })
  })
}

/** `exit 1: no such service`, `killed by SIGKILL`. */
export function describeEnd(end: CommandEnd): string {
  if ('error' in end) return end.error
  const how = end.code === null ? `killed by ${end.killedBy}` : `exit ${end.code}`
  return end.said ? `${how}: ${end.said}` : how
}

export function commandProbe(spec: CommandSpec): Probe {
  const argv = [...spec.argv]
  if (!argv[0]) throw usageError('command probe: argv is empty')
  return periodicProbe(`command ${argv.join(' ')}`, spec, async (signal) => {
    const end = await runCommand(argv, signal)
    if ('code' in end && end.code === 0) return { ok: true, detail: 'exit 0' }
    return { ok: false, detail: describeEnd(end) }
  })
}
