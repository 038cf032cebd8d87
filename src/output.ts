import { spawn } from 'node:child_process'

/** Where the engine and providers report. Every line passes through redaction. */
export interface Logger {
  /** A state change worth a line in a hook's log. */
  info(message: string): void
  /** A transient status (waiting, percent done), shown only on a terminal. */
  progress(message: string): void
  warn(message: string): void
  /** Only with --debug or IPMOVE_DEBUG=1. Never pass secrets, even here. */
  debug(message: string): void
}

/** Every form of every registered secret, longest first once sorted. */
const secrets = new Set<string>()
let ordered: string[] = []

/** The encodings a secret may go through on its way out, in any order, up to two deep. */
const ENCODINGS: ((value: string) => string)[] = [
  // Inside a JSON string: an API echoing a request body, or our own --json.
  (value) => JSON.stringify(value).slice(1, -1),
  // Percent-encoded in a URL, in either case of hex digits, or in a form body.
  encodeURIComponent,
  (value) => encodeURIComponent(value).replace(/%[0-9A-F]{2}/g, (hex) => hex.toLowerCase()),
  (value) => new URLSearchParams({ v: value }).toString().slice(2),
]

/** A secret as is, and as any one or two of ENCODINGS make it (JSON in a URL, a URL in JSON…). */
function formsOf(value: string): Set<string> {
  const forms = new Set([value])
  for (let depth = 0; depth < 2; depth++) {
    for (const form of [...forms]) for (const encode of ENCODINGS) forms.add(encode(form))
  }
  return forms
}

/**
 * Remember a secret so that no line ipmove prints can carry it, whatever path
 * it takes there (an API echoing a header back, an exception message…).
 */
export function registerSecret(value: string | undefined): void {
  if (!value || value.length < 4) return
  for (const form of formsOf(value)) secrets.add(form)
  // Longest first: a secret that contains another is replaced whole.
  ordered = [...secrets].sort((a, b) => b.length - a.length)
}

/** Forget every registered secret: for tests that register thousands, and callers that switch accounts. */
export function forgetSecrets(): void {
  secrets.clear()
  ordered = []
}

/** A URL's user and password, as in https://user:password@host/: never printed, whoever wrote them. */
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^/?#\s"'<>]*@/gi

export function redact(text: string): string {
  let out = text.replace(URL_USERINFO, '$1***@')
  for (const secret of ordered) out = out.split(secret).join('***')
  return out
}

/** Longest line ipmove prints: an API may echo 100 KB of text back into an error. */
export const MAX_LINE = 2000

/** C0 and C1 controls, DEL, and the Unicode line and paragraph separators. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/g
const ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' }

/**
 * Make text fit for one printed line: secrets redacted, control characters
 * escaped (an API message holding a newline and ANSI codes cannot forge a second
 * `ipmove: error:` line, in a terminal or in syslog), and the length capped.
 * Redaction comes first, so a cap never cuts a secret in two.
 */
export function printable(text: string): string {
  const line = redact(text).replace(
    CONTROL,
    (ch) => ESCAPES[ch] ?? `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
  if (line.length <= MAX_LINE) return line
  return `${line.slice(0, MAX_LINE)}… (${line.length - MAX_LINE} more characters)`
}

/** How often the progress line's elapsed time is redrawn. */
const PROGRESS_TICK_MS = 250

export interface OutputOptions {
  json: boolean
  syslog: boolean
  debug: boolean
  stdout?: NodeJS.WriteStream
  stderr?: NodeJS.WriteStream
  now?: () => number
}

type SyslogLevel = 'info' | 'notice' | 'warning' | 'err' | 'debug'

/**
 * Human lines on stdout (hooks pipe them into `logger` today), warnings and
 * errors on stderr; with --json stdout carries exactly one JSON object.
 */
export class Output implements Logger {
  private readonly stdout: NodeJS.WriteStream
  private readonly stderr: NodeJS.WriteStream
  private readonly started: number
  private readonly now: () => number
  /** The progress line being shown on the terminal (stderr), redrawn by the ticker. */
  private progressLine: string | undefined
  private progressShown = false
  private ticker: NodeJS.Timeout | undefined

  constructor(private readonly options: OutputOptions) {
    this.stdout = options.stdout ?? process.stdout
    this.stderr = options.stderr ?? process.stderr
    this.now = options.now ?? Date.now
    this.started = this.now()
  }

  /** Progress is for a person at a terminal: on stderr, which stays out of stdout's lines and JSON. */
  private get tty(): boolean {
    return Boolean(this.stderr.isTTY)
  }

  /** Erase the progress line; `stop` also ends it (the ticker stops until the next progress()). */
  private clearProgress(stop = true): void {
    if (this.progressShown) {
      this.stderr.write('\r\x1b[2K')
      this.progressShown = false
    }
    if (stop) {
      clearInterval(this.ticker)
      this.ticker = undefined
      this.progressLine = undefined
    }
  }

  /**
   * Draw the progress line with the elapsed time, cut to the terminal's width: a line
   * that wrapped would leave its first row behind at each redraw.
   */
  private drawProgress(): void {
    if (this.progressLine === undefined) return
    const suffix = ` (${((this.now() - this.started) / 1000).toFixed(1)} s)`
    const room = Math.max(20, (this.stderr.columns || 80) - 1) - suffix.length
    const chars = [...this.progressLine]
    const text = chars.length > room ? `${chars.slice(0, room - 1).join('')}…` : this.progressLine
    this.stderr.write(`\r\x1b[2K${text}${suffix}`)
    this.progressShown = true
  }

  /** Print a line of its own while a progress line may be showing, then put the progress back. */
  private around(write: () => void): void {
    this.clearProgress(false)
    write()
    this.drawProgress()
  }

  info(message: string): void {
    const line = printable(message)
    this.syslog('notice', line)
    if (this.options.json) return
    // A state change: whatever was awaited is over (a new wait shows a new progress line).
    this.clearProgress()
    this.stdout.write(`${line}\n`)
  }

  progress(message: string): void {
    if (!this.tty) return
    this.progressLine = printable(message)
    this.drawProgress()
    // Keep the time ticking while a request hangs; never keep the process alive for it.
    this.ticker ??= setInterval(() => this.drawProgress(), PROGRESS_TICK_MS)
    this.ticker.unref?.()
  }

  warn(message: string): void {
    const line = printable(message)
    this.syslog('warning', line)
    this.around(() => this.stderr.write(`ipmove: warning: ${line}\n`))
  }

  debug(message: string): void {
    if (!this.options.debug) return
    this.around(() => this.stderr.write(`ipmove: debug: ${printable(message)}\n`))
  }

  /** The one-line failure report. */
  error(message: string): void {
    const line = printable(message)
    this.syslog('err', line)
    this.clearProgress()
    this.stderr.write(`ipmove: error: ${line}\n`)
  }

  /** The final object of a --json run. */
  result(value: object): void {
    this.clearProgress()
    if (this.options.json) this.stdout.write(`${redact(JSON.stringify(value))}\n`)
  }

  /**
   * syslog through logger(1), as hooks do today; argv only, no shell. A missing
   * logger must not fail a failover, so errors are swallowed.
   */
  private syslog(level: SyslogLevel, line: string): void {
    if (!this.options.syslog) return
    try {
      const child = spawn('logger', ['-t', 'ipmove', '-p', `daemon.${level}`, '--', line], {
        stdio: 'ignore',
      })
      child.on('error', () => {})
      child.unref()
    } catch {
      // ignore
    }
  }
}

/** A logger that keeps lines in memory, for tests and for library callers. */
export class MemoryLogger implements Logger {
  readonly lines: string[] = []
  info(message: string): void {
    this.lines.push(printable(message))
  }
  progress(): void {}
  warn(message: string): void {
    this.lines.push(`warning: ${printable(message)}`)
  }
  debug(): void {}
}
