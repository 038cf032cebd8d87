import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  writeSync,
} from 'node:fs'
import { dirname } from 'node:path'
import { decode } from 'ini'
import { IpmoveError, usageError } from './errors.js'

/** A settings file as read, with the facts the permission checks need. */
export interface SettingsFile {
  path: string
  text: string
  /** Permission bits (mode & 0o7777). */
  mode: number
  uid: number
}

const checked = process.platform !== 'win32'

const octal = (mode: number) => `0${(mode & 0o7777).toString(8).padStart(3, '0')}`

/**
 * Read a file ipmove takes settings from; undefined when it does not exist.
 * Checks run on the descriptor that is read (fstat), so the file cannot be
 * swapped between check and read. Refused (exit 2), like ssh's StrictModes:
 * - a file owned by anyone other than the current user or root: its owner could
 *   point ipmove, and the secrets it sends, at another API endpoint;
 * - a file anyone may write, for the same reason;
 * - anything but a regular file.
 * An unreadable file throws with details.errno 'EACCES', so callers that only
 * look around (ovh.conf) can skip it.
 */
export function readSettingsFile(path: string): SettingsFile | undefined {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined
    if (code === 'EACCES' || code === 'EPERM') {
      throw new IpmoveError('usage', `cannot read ${path}: permission denied`, {
        file: path,
        errno: 'EACCES',
      })
    }
    throw usageError(`cannot read ${path}: ${code ?? (error as Error).message}`, { file: path })
  }
  try {
    const stat = fstatSync(fd)
    if (!stat.isFile()) throw usageError(`${path} is not a regular file`, { file: path })
    const file: SettingsFile = { path, text: '', mode: stat.mode & 0o7777, uid: stat.uid }
    if (checked) {
      const me = process.geteuid?.() ?? stat.uid
      if (stat.uid !== me && stat.uid !== 0) {
        throw usageError(
          `${path} is owned by uid ${stat.uid}, not by you (uid ${me}) or root; ipmove refuses settings others control (run: chown ${me} ${path})`,
          { file: path },
        )
      }
      if (file.mode & 0o002) {
        throw usageError(`${path} is writable by anyone (mode ${octal(file.mode)}); run: chmod o-w ${path}`, {
          file: path,
        })
      }
    }
    file.text = readFileSync(fd, 'utf8')
    return file
  } finally {
    closeSync(fd)
  }
}

/**
 * Refuse a file that holds secrets when group or others may read it, as ssh
 * refuses an unprotected private key. Skipped on Windows, which has no mode bits.
 */
export function assertPrivate(file: SettingsFile): void {
  if (checked && file.mode & 0o077) {
    throw usageError(
      `${file.path} holds secrets but group or others can access it (mode ${octal(file.mode)}); run: chmod 600 ${file.path}`,
      { file: file.path, mode: octal(file.mode) },
    )
  }
}

/** Read a file that holds secrets: undefined when missing, refused when others could read or write it. */
export function readSecretFile(path: string): string | undefined {
  const file = readSettingsFile(path)
  if (!file) return undefined
  assertPrivate(file)
  return file.text
}

/** An INI file: keys before any section, then sections by their full name. */
export interface IniData {
  globals: Record<string, string>
  sections: Map<string, Record<string, string>>
}

/** Names that would reach an object's prototype, in `ini` or in our own lookups. */
const RESERVED = new Set(['__proto__', 'constructor', 'prototype'])

/** A key is quoted in errors only when it looks like a setting's name, never like a pasted secret. */
export function shownKey(key: string): string {
  return /^[a-z][a-z_.-]{0,31}$/.test(key) ? JSON.stringify(key) : '(not shown: it may be a secret)'
}

/**
 * What `ini` would skip or guess at, refused with the line's number and never
 * its text (it may be a secret pasted on a line of its own, or the first line
 * of a file that is no config at all, such as /etc/shadow): a line that is
 * neither `[SECTION]` nor `KEY = VALUE`, an empty key, a reserved name, a
 * section or key given twice, a control character or a Unicode line separator
 * (a line that displays as two).
 */
function checkLines(text: string, path: string): void {
  const seenSections = new Set<string>()
  let keys = new Set<string>()
  for (const [index, line] of text.split(/\r\n|\r|\n/).entries()) {
    const where = `${path}: line ${index + 1}`
    // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
    if (/[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]/.test(line)) {
      throw usageError(`${where} holds a control character or a Unicode line separator`)
    }
    if (/^\s*([;#]|$)/.test(line)) continue
    const section = /^\[([^\]]*)\]\s*$/.exec(line)
    if (section) {
      const name = section[1]!.trim()
      if (!name || RESERVED.has(name)) throw usageError(`${where}: [${name}] is not a section name`)
      if (seenSections.has(name)) throw usageError(`${where}: section [${name}] appears twice`)
      seenSections.add(name)
      keys = new Set()
      continue
    }
    const eq = line.indexOf('=')
    if (eq < 0 || line.trimStart().startsWith('[')) {
      throw usageError(
        `${where} is neither [SECTION] nor KEY = VALUE (the line is not shown: it may be a secret)`,
      )
    }
    const key = line.slice(0, eq).trim()
    if (!key) throw usageError(`${where} has a value but no key`)
    if (RESERVED.has(key)) throw usageError(`${where}: ${key} is not a key name`)
    if (keys.has(key)) throw usageError(`${where}: key ${shownKey(key)} appears twice in its section`)
    keys.add(key)
  }
}

/**
 * Where each section header and key sits in INI text (1-based line numbers),
 * so errors found after parsing can still name the line. Keys are
 * `SECTION\0KEY`; a section's own line is under `SECTION\0`.
 */
export function iniLines(text: string): Map<string, number> {
  const lines = new Map<string, number>()
  let section = ''
  for (const [index, line] of text.split(/\r\n|\r|\n/).entries()) {
    if (/^\s*([;#]|$)/.test(line)) continue
    const header = /^\[([^\]]*)\]\s*$/.exec(line)
    if (header) {
      section = header[1]!.trim()
      lines.set(`${section}\0`, index + 1)
      continue
    }
    const eq = line.indexOf('=')
    if (eq > 0) lines.set(`${section}\0${line.slice(0, eq).trim()}`, index + 1)
  }
  return lines
}

/**
 * Parse INI text with the `ini` package, keeping section names whole: `ini`
 * would nest `[ip.web]` or `[https://eu.api.ovh.com/1.0]` at every dot, so dots
 * in headers are escaped first. Values come back as strings (`ini` turns
 * "true" into a boolean); `key[]` lists are refused, no setting takes one.
 * The lines are checked first (checkLines): what `ini` would skip silently is
 * an error.
 */
export function parseIni(text: string, path: string): IniData {
  checkLines(text, path)
  const escaped = text.replace(/^\[([^\]]*)\]/gm, (_, name: string) => `[${name.replace(/\./g, '\\.')}]`)
  const raw = decode(escaped) as Record<string, unknown>
  const data: IniData = { globals: {}, sections: new Map() }
  const scalars = (section: string | undefined, entries: Record<string, unknown>) => {
    const out: Record<string, string> = Object.create(null)
    for (const [key, value] of Object.entries(entries)) {
      if (Array.isArray(value)) {
        throw usageError(`${path}: ${section ? `[${section}] ` : ''}${key}[]: lists are not supported`)
      }
      out[key] = String(value)
    }
    return out
  }
  const globals: Record<string, unknown> = Object.create(null)
  for (const [key, value] of Object.entries(raw)) {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      data.sections.set(key, scalars(key, value as Record<string, unknown>))
    } else {
      globals[key] = value
    }
  }
  data.globals = scalars(undefined, globals)
  return data
}

/**
 * Why files found in `dir` could have been put there by another user, or
 * undefined when only the current user and root can write it: for the
 * working directory, where ./ovh.conf is looked for.
 */
export function sharedDirReason(dir: string): string | undefined {
  if (!checked) return undefined
  let stat: ReturnType<typeof statSync>
  try {
    stat = statSync(dir)
  } catch (error) {
    return `${dir} cannot be examined (${(error as NodeJS.ErrnoException).code})`
  }
  const me = process.geteuid?.() ?? stat.uid
  if (stat.uid !== me && stat.uid !== 0) return `${dir} is owned by uid ${stat.uid}, neither you nor root`
  if (stat.mode & 0o022) return `${dir} is writable by others (mode ${octal(stat.mode)})`
  return undefined
}

/** The reason a directory failed an operation, and what to configure instead. */
export function unusableDir(dir: string, setting: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message
  return `cannot use ${dir} (${code}); set ${setting} to a private directory on a writable local file system`
}

/** Why a directory cannot be used; `unsafe` when someone else could control it. */
export interface DirProblem {
  reason: string
  unsafe: boolean
}

/**
 * Make sure `dir` exists and is private to the current user, for the lock and
 * cache directories: a directory someone else owns or may write could hold
 * planted symlinks (making ipmove overwrite a file of their choosing), a planted
 * lock (blocking failover) or planted ids. Refused, never repaired: `dir` itself
 * must not be a symlink, must be owned by the effective user and must not be
 * writable by group or others. The reason names `setting`, what to configure.
 */
export function privateDirProblem(dir: string, setting: string): DirProblem | undefined {
  const unusable = (error: unknown): DirProblem => ({
    reason: unusableDir(dir, setting, error),
    unsafe: false,
  })
  const unsafe = (reason: string): DirProblem => ({ reason, unsafe: true })
  let stat: ReturnType<typeof lstatSync>
  try {
    makeDir(dir)
    stat = lstatSync(dir)
  } catch (error) {
    return unusable(error)
  }
  if (stat.isSymbolicLink())
    return unsafe(`${dir} is a symlink, which ipmove does not follow; set ${setting} to the real directory`)
  if (!stat.isDirectory()) return unusable(new Error('not a directory'))
  if (!checked) return undefined
  const me = process.geteuid?.() ?? stat.uid
  if (stat.uid !== me) {
    return unsafe(
      `${dir} is owned by uid ${stat.uid}, not by you (uid ${me}); set ${setting} to a directory of yours`,
    )
  }
  if (stat.mode & 0o022) {
    return unsafe(
      `${dir} is writable by others (mode ${octal(stat.mode)}); run: chmod 700 ${dir}, or set ${setting}`,
    )
  }
  return undefined
}

/**
 * mkdir -p, bounded: Node's own `recursive` loops for ever where mkdir says
 * ENOENT though the parent exists (under /proc), at full CPU.
 */
function makeDir(dir: string): void {
  try {
    mkdirSync(dir, { mode: 0o700 })
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EEXIST') return
    if (code !== 'ENOENT' || dirname(dir) === dir) throw error
    makeDir(dirname(dir))
    try {
      mkdirSync(dir, { mode: 0o700 })
    } catch (again) {
      if ((again as NodeJS.ErrnoException).code !== 'EEXIST') throw again
    }
  }
}

/**
 * Create `path` with `text` in it, failing with EEXIST when anything is there
 * already: O_EXCL never follows a symlink, so a planted one cannot redirect the write.
 */
export function createExclusive(path: string, text: string): void {
  const fd = openSync(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  )
  try {
    writeSync(fd, text)
  } finally {
    closeSync(fd)
  }
}
