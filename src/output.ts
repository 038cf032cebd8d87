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
  private progressShown = false

  constructor(private readonly options: OutputOptions) {
    this.stdout = options.stdout ?? process.stdout
    this.stderr = options.stderr ?? process.stderr
    this.now = options.now ?? Date.now
    this.started = this.now()
  }

  private get tty(): boolean {
    return Boolean(this.stdout.isTTY) && !this.options.json
  }

  private clearProgress(): void {
    if (this.progressShown) {
      this.stdout.write('\r\x1b[2K')
      this.progressShown = false
    }
  }

  info(message: string): void {
    const line = printable(message)
    this.syslog('notice', line)
    if (this.options.json) return
    this.clearProgress()
    this.stdout.write(`${line}\n`)
  }

  progress(message: string): void {
    if (!this.tty) return
    const elapsed = ((this.now() - this.started) / 1000).toFixed(1)
    this.stdout.write(`\r\x1b[2K${printable(message)} (${elapsed} s)`)
    this.progressShown = true
  }

  warn(message: string): void {
    const line = printable(message)
    this.syslog('warning', line)
    this.clearProgress()
    this.stderr.write(`ipmove: warning: ${line}\n`)
  }

  debug(message: string): void {
    if (!this.options.debug) return
    this.clearProgress()
    this.stderr.write(`ipmove: debug: ${printable(message)}\n`)
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
