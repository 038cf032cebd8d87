/**
 * `source = keepalived-fifo`: follow one VRRP instance (or sync group) of
 * keepalived through its notify FIFO (`vrrp_notify_fifo` or `notify_fifo` in
 * global_defs). keepalived writes one line per event, in the order its state
 * machine takes them (unlike notify scripts, which run concurrently):
 *
 *   INSTANCE "VI_1" MASTER 100        TYPE "NAME" STATE PRIORITY
 *   GROUP "VG_1" BACKUP 0             (a group's priority is always 0)
 *
 * States (keepalived's vrrp_notify.c): MASTER, MASTER_RX_LOWER_PRI (a master
 * heard a lower-priority master: the end of a split), MASTER_PRIORITY → hold;
 * BACKUP, BACKUP_PRIORITY, FAULT, STOP, DELETED → do not hold. Other lines
 * (an LVS checker's VS / RS lines on a shared notify_fifo, other instances)
 * are skipped.
 *
 * The FIFO's life: keepalived creates it if missing (root's) and removes
 * it on exit if it created it; it opens it read-write and non-blocking, so
 * lines wait in the pipe until read (a full pipe drops them) and a reader
 * sees end-of-file only when keepalived is gone. So: wait for the path to
 * exist, read lines as they come, and on end-of-file say unknown and open
 * the path again (a restarted keepalived makes a new FIFO there). A FIFO
 * that another user may write is refused: anyone could say MASTER.
 *
 * One reader per path serves every IP that follows it (a line read by one
 * reader is gone for the others); the latest line per instance is kept for
 * the daemon's life, so an IP restarted by a reload knows the state at once.
 * After a restart of ipmove the state is unknown until keepalived's next
 * event (keepalived 2.2.7's fifo_write_vrrp_states_on_reload writes nothing
 * on a reload): unknown claims nothing and leaves things as they are.
 */
import { close, constants, fstat, open, type Stats } from 'node:fs'
import { Socket } from 'node:net'
import { promisify } from 'node:util'
import type { Logger } from '../../output.js'
import { now } from '../../probes/probe.js'
import type { HoldSource, SourceAnswer, SourceContext, SourceSettings, Wish } from './source.js'

export interface KeepalivedFifoSettings {
  fifo: string
  /** `INSTANCE` with keepalived-instance, `GROUP` with keepalived-group. */
  type: 'INSTANCE' | 'GROUP'
  name: string
}

export interface FifoLine {
  type: 'INSTANCE' | 'GROUP'
  name: string
  state: string
  priority: number
}

const STATES: Record<string, { wish: Wish; recheck?: true }> = {
  MASTER: { wish: 'hold' },
  MASTER_RX_LOWER_PRI: { wish: 'hold', recheck: true },
  MASTER_PRIORITY: { wish: 'hold' },
  BACKUP: { wish: 'release' },
  BACKUP_PRIORITY: { wish: 'release' },
  FAULT: { wish: 'release' },
  STOP: { wish: 'release' },
  DELETED: { wish: 'release' },
}

/** How often a missing FIFO is looked for, and a refused one looked at again. */
const RETRY_MS = 500
/** A line longer than this is not keepalived's: dropped. */
const MAX_LINE = 1024

/** One line of the FIFO, or undefined for a line that is not a VRRP event. */
export function parseFifoLine(line: string): FifoLine | undefined {
  const match = /^(INSTANCE|GROUP) "([^"]*)" ([A-Z_]+) (\d{1,3})$/.exec(line.trim())
  if (!match) return undefined
  const [, type, name, state, priority] = match as unknown as [
    string,
    FifoLine['type'],
    string,
    string,
    string,
  ]
  return { type, name, state, priority: Number(priority) }
}

/** What a line says for the followed instance or group, or undefined when it says nothing about it. */
export function answerOf(
  line: FifoLine,
  follow: KeepalivedFifoSettings,
  at: number,
): SourceAnswer | undefined {
  if (line.type !== follow.type || line.name !== follow.name) return undefined
  const meaning = STATES[line.state]
  if (!meaning) return undefined
  const why = `keepalived: ${line.type} "${line.name}" ${line.state} ${line.priority}`
  return { wish: meaning.wish, why, at, ...(meaning.recheck ? { recheck: true } : {}) }
}

type Listener = (event: { line?: FifoLine; gone?: string; at: number }) => void

/** The reader of one FIFO path, shared by every source that follows it. */
class FifoReader {
  readonly listeners = new Set<Listener>()
  private socket: Socket | undefined
  private retry: NodeJS.Timeout | undefined
  private stopped = false
  private said: string | undefined

  constructor(
    readonly path: string,
    private readonly log: Logger,
  ) {}

  start(): void {
    void this.openFifo()
  }

  stop(): void {
    this.stopped = true
    clearTimeout(this.retry)
    this.socket?.destroy()
  }

  private async openFifo(): Promise<void> {
    if (this.stopped) return
    let fd: number | undefined
    try {
      fd = await promisify(open)(this.path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW)
      const refused = whyRefused(await promisify(fstat)(fd))
      if (refused) throw new Error(refused)
    } catch (error) {
      if (fd !== undefined) closeQuietly(fd)
      const code = (error as NodeJS.ErrnoException).code
      this.gone(
        code === 'ENOENT'
          ? `waiting for keepalived to create ${this.path}`
          : `${this.path}: ${(error as Error).message}`,
      )
      this.retry = setTimeout(() => void this.openFifo(), RETRY_MS)
      return
    }
    if (this.stopped) return closeQuietly(fd)
    this.log.debug(`reading keepalived's events from ${this.path}`)
    const socket = new Socket({ fd, readable: true, writable: false })
    this.socket = socket
    let pending = ''
    socket.on('data', (chunk: Buffer) => {
      const lines = (pending + chunk.toString('utf8')).split('\n')
      pending = lines.pop()!
      if (pending.length > MAX_LINE) pending = ''
      for (const text of lines) this.onLine(text)
    })
    socket.on('error', (error) => this.log.warn(`reading ${this.path}: ${error.message}`))
    socket.on('close', () => {
      if (this.stopped) return
      // keepalived closed its end (it stopped or died): the state is unknown until it writes again.
      this.gone(`keepalived closed ${this.path}`)
      this.retry = setTimeout(() => void this.openFifo(), 0)
    })
  }

  private onLine(text: string): void {
    const line = parseFifoLine(text)
    if (!line) {
      if (text.trim()) this.log.debug(`${this.path}: skipped ${JSON.stringify(text.slice(0, 100))}`)
      return
    }
    this.said = undefined
    const latest = remembered.get(this.path) ?? new Map<string, FifoLine>()
    remembered.set(this.path, latest.set(`${line.type} ${line.name}`, line))
    for (const listener of this.listeners) listener({ line, at: now() })
  }

  private gone(why: string): void {
    remembered.delete(this.path)
    if (why === this.said) return
    this.said = why
    for (const listener of this.listeners) listener({ gone: why, at: now() })
  }
}

/** Refuse what is not a FIFO, or one that others than root or this daemon's user may write. */
function whyRefused(stats: Stats): string | undefined {
  if (!stats.isFIFO()) return 'not a FIFO'
  if ((stats.mode & 0o022) !== 0)
    return 'others than its owner may write it (mode must not allow group/other write)'
  if (stats.uid !== 0 && stats.uid !== process.getuid?.())
    return `owned by uid ${stats.uid}, neither root nor this daemon's user`
  return undefined
}

function closeQuietly(fd: number): void {
  close(fd, () => {})
}

/** The open readers, one per path. */
const readers = new Map<string, FifoReader>()
/**
 * The latest line per path and `TYPE NAME`, kept while keepalived runs and
 * beyond a reader: lines wait in the pipe while no reader is open (keepalived
 * holds it open), so a reader opened again by a reload misses nothing.
 */
const remembered = new Map<string, Map<string, FifoLine>>()

export function keepalivedFifoSource(settings: SourceSettings, context: SourceContext): HoldSource {
  const follow = settings as unknown as KeepalivedFifoSettings
  let listener: Listener | undefined
  return {
    start(report) {
      listener = (event) => {
        if (event.gone !== undefined) {
          report({ wish: 'unknown', why: event.gone, at: event.at })
          return
        }
        const answer = answerOf(event.line!, follow, event.at)
        if (answer) report(answer)
      }
      let reader = readers.get(follow.fifo)
      if (!reader) {
        reader = new FifoReader(follow.fifo, context.log)
        readers.set(follow.fifo, reader)
        reader.start()
      }
      reader.listeners.add(listener)
      const known = remembered.get(follow.fifo)?.get(`${follow.type} ${follow.name}`)
      if (known) listener({ line: known, at: now() })
    },
    async stop() {
      const reader = readers.get(follow.fifo)
      if (!reader || !listener) return
      reader.listeners.delete(listener)
      if (reader.listeners.size === 0) {
        readers.delete(follow.fifo)
        reader.stop()
      }
    },
  }
}
