/**
 * The fault matrix's runner: one table per provider kind, each row a fault
 * against a fresh emulator, the command the built CLI runs, the exit code
 * expected, where the IP must end up (read from the emulator's state endpoint)
 * and how long the run may take. After each run the lock must be free and the
 * cache hold no id the API does not know; then, faults gone, a second run must
 * converge on the target.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { get as httpGet } from 'node:http'
import { get as httpsGet } from 'node:https'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { expect, it } from 'vitest'
import { ipmove, isolatedEnv, type Run } from './cli.js'

/** What the matrix needs of an emulator (both kinds fit). */
export interface MatrixEmulator {
  url: string
  env: Record<string, string>
  caFile?: string
  requests: Array<{ method: string; status: number }>
  clearFaults(): void
  close(): Promise<void>
}

/** The account as GET /_emulator/state shows it. */
export type EmulatorState = Record<string, unknown>

export interface MatrixCase<Emulator extends MatrixEmulator, Options> {
  name: string
  /** Fault specs, as `ipmove emulate … --fault` takes them. */
  faults?: string[]
  /** Emulator options beyond the kind's defaults (a short pending delay). */
  emulator?: Partial<Options>
  /** Arguments after the kind's own (which name the IP and the target). */
  args?: string[]
  /** Replaces the kind's target instance. */
  target?: string
  /** Environment for the faulted run only (refused credentials…); `null` removes a variable. */
  env?: Record<string, string | null>
  /** Before the faulted run: seed the cache, start another operation, change the account… */
  before?: (emulator: Emulator, env: NodeJS.ProcessEnv) => Promise<void>
  /** --timeout of the faulted run, seconds. */
  timeout: number
  exit: number
  /** Holder ids acceptable after the faulted run; the kind's `from` or `to` by name. */
  holder: 'from' | 'to' | string
  /** Move requests the faulted run may send: exactly this many. */
  writes?: number
  /** Before the second run, once faults are cleared: undo what no client could (a stuck task). */
  between?: (emulator: Emulator) => void
  /** The second run's target holder id, when not the kind's `to`. */
  converges?: (state: EmulatorState) => string
}

export interface MatrixKind<Emulator extends MatrixEmulator, Options> {
  /** Shown in test names. */
  name: string
  start(options: Partial<Options> & { faults?: string[] }): Promise<Emulator>
  /** The move command without --timeout and --json, for a target. */
  command(target: string): string[]
  /** The target by default (a name or id the command takes). */
  target: string
  /** Holder ids: where the IP starts, and the default target's id. */
  from: string
  to: string
  holder(state: EmulatorState): string | undefined
  /** Requests that ask the API to move the IP. */
  isWrite(request: Emulator['requests'][number]): boolean
  /** Ids the account knows now; every id in the cache must be one. */
  knownIds(state: EmulatorState): Set<string>
}

/**
 * A row: name, faults, --timeout, exit code, holder after the run, move requests
 * sent, other fields. Tables bind it to their emulator: `matrixRow<Emulator, Options>`.
 */
export function matrixRow<Emulator extends MatrixEmulator, Options>(
  name: string,
  faults: string[],
  timeout: number,
  exit: number,
  holder: MatrixCase<Emulator, Options>['holder'],
  writes?: number,
  more: Partial<MatrixCase<Emulator, Options>> = {},
): MatrixCase<Emulator, Options> {
  return { name, faults, timeout, exit, holder, writes, ...more }
}

/** A fault's `body=` field: the answer's text instead of the API's own. */
export const faultBody = (text: string) => `body=${encodeURIComponent(text)}`

/** A proxy's HTML error page where the API's JSON or XML belongs. */
export const HTML = faultBody('<html><body><h1>502 Bad Gateway</h1></body></html>')

/**
 * Beyond --timeout: the process's start before its deadline is armed, its exit, and this worker's
 * own lag (it serves the emulators of the 12 rows running at once). A timeout that never fires shows
 * as a run several times --timeout long; on a loaded 2-core CI machine a healthy `--timeout 10` row
 * took 15.8 s end to end (3 s of slack failed it), while ipmove's own deadline had not yet fired.
 */
export const START_SLACK_MS = 6_000

/** GET /_emulator/state over the emulator's own HTTP(S), trusting its CA. */
export function emulatorState(emulator: MatrixEmulator): Promise<EmulatorState> {
  const url = new URL('/_emulator/state', emulator.url)
  return new Promise((resolve, reject) => {
    const onResponse = (res: import('node:http').IncomingMessage) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        text += chunk
      })
      res.on('end', () => {
        try {
          resolve(JSON.parse(text) as EmulatorState)
        } catch (error) {
          reject(error)
        }
      })
    }
    const req =
      url.protocol === 'https:'
        ? httpsGet(url, { ca: readFileSync(emulator.caFile!) }, onResponse)
        : httpGet(url, onResponse)
    req.on('error', reject)
  })
}

/**
 * Lock files left in `dir`: for each IP's chain, the highest generation must say
 * "free" (a pid there means a holder), one arrival number per IP is kept, and no scratch file
 * may be left behind.
 */
export function heldLocks(dir: string): string[] {
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch {
    return [] // never made: nothing held
  }
  const top = new Map<string, number>()
  const problems: string[] = []
  const arrivals = new Map<string, number>()
  for (const name of names) {
    // The arrival numbers of calls (latest intent wins): one file per IP stays, the newest.
    const arrival = /^(.*\.seq\.)(\d+)$/.exec(name)
    if (arrival) {
      arrivals.set(arrival[1]!, (arrivals.get(arrival[1]!) ?? 0) + 1)
      continue
    }
    const match = /^(.*\.lock\.)(\d+)$/.exec(name)
    if (!match) {
      problems.push(`stray file ${name}`)
      continue
    }
    top.set(match[1]!, Math.max(top.get(match[1]!) ?? 0, Number(match[2])))
  }
  for (const [prefix, count] of arrivals) if (count > 1) problems.push(`${count} arrival numbers ${prefix}*`)
  for (const [prefix, n] of top) {
    const text = readFileSync(join(dir, `${prefix}${n}`), 'utf8')
    if (text !== 'free') problems.push(`${prefix}${n} holds "${text}"`)
  }
  return problems
}

/** Cached values that look like ids (not times, flags or names) and that the account does not know. */
export function unknownCachedIds(dir: string, known: Set<string>, idKeys: RegExp): string[] {
  let files: string[]
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.json'))
  } catch {
    return []
  }
  const unknown: string[] = []
  for (const file of files) {
    const entries = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Record<string, { v: string }>
    for (const [key, entry] of Object.entries(entries)) {
      if (idKeys.test(key) && !known.has(entry.v)) unknown.push(`${key} = ${entry.v}`)
    }
  }
  return unknown
}

/** What a failed expectation shows of a run: enough to see why. */
function shown(run: Run): string {
  return `exit ${run.code}\nstdout: ${run.stdout.slice(0, 2000)}\nstderr: ${run.stderr.slice(0, 2000)}`
}

/**
 * One concurrent test per row. `cacheIdKeys` picks the cache entries whose value
 * is an API id (e.g. /^(project|instance|failover):/).
 */
export function matrix<Emulator extends MatrixEmulator, Options>(
  kind: MatrixKind<Emulator, Options>,
  cases: ReadonlyArray<MatrixCase<Emulator, Options>>,
  cacheIdKeys: RegExp,
): void {
  const names = new Set<string>()
  for (const c of cases) {
    if (names.has(c.name)) throw new Error(`duplicate matrix row: ${c.name}`)
    names.add(c.name)
    it.concurrent(`${kind.name}: ${c.name}`, async () => {
      const emulator = await kind.start({ ...c.emulator, faults: c.faults ?? [] } as Partial<Options> & {
        faults?: string[]
      })
      try {
        await runCase(kind, c, emulator, cacheIdKeys)
      } finally {
        await emulator.close()
      }
    })
  }
}

async function runCase<Emulator extends MatrixEmulator, Options>(
  kind: MatrixKind<Emulator, Options>,
  c: MatrixCase<Emulator, Options>,
  emulator: Emulator,
  cacheIdKeys: RegExp,
): Promise<void> {
  const base = isolatedEnv(emulator.env)
  const faulted: NodeJS.ProcessEnv = { ...base }
  for (const [name, value] of Object.entries(c.env ?? {})) {
    if (value === null) delete faulted[name]
    else faulted[name] = value
  }
  await c.before?.(emulator, faulted)
  const command = kind.command(c.target ?? kind.target)
  const writesBefore = emulator.requests.filter((r) => kind.isWrite(r)).length

  const started = performance.now()
  const run = await ipmove([...command, ...(c.args ?? []), '--timeout', String(c.timeout), '--json'], faulted)
  const elapsed = performance.now() - started

  expect(run.code, shown(run)).toBe(c.exit)
  expect(elapsed, `took ${Math.round(elapsed)} ms with --timeout ${c.timeout}`).toBeLessThan(
    c.timeout * 1000 + START_SLACK_MS,
  )
  const result = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>
  expect(result.ok, shown(run)).toBe(c.exit === 0)
  if (c.exit !== 0) expect(result.error, shown(run)).toMatchObject({ exitCode: c.exit })
  expect(run.stderr, 'no stack trace').not.toMatch(/\n\s+at /)
  if (c.writes !== undefined) {
    expect(emulator.requests.filter((r) => kind.isWrite(r)).length - writesBefore, 'writes').toBe(c.writes)
  }

  // Writes the run left in flight settle within the emulator's short pending delay.
  await new Promise((resolve) => setTimeout(resolve, 400))
  const state = await emulatorState(emulator)
  const want = c.holder === 'from' ? kind.from : c.holder === 'to' ? kind.to : c.holder
  expect(kind.holder(state), 'holder after the faulted run').toBe(want)
  expect(heldLocks(base.IPMOVE_LOCK_DIR!), 'locks').toEqual([])
  expect(unknownCachedIds(base.IPMOVE_CACHE_DIR!, kind.knownIds(state), cacheIdKeys), 'cache').toEqual([])

  // Faults gone, the next hook run (same cache and lock, sane credentials) converges.
  emulator.clearFaults()
  c.between?.(emulator)
  const second = await ipmove([...command, '--timeout', '15', '--json'], base)
  expect(second.code, shown(second)).toBe(0)
  const after = await emulatorState(emulator)
  expect(kind.holder(after), 'holder after the second run').toBe(c.converges?.(after) ?? kind.to)
  expect(heldLocks(base.IPMOVE_LOCK_DIR!), 'locks after the second run').toEqual([])
  expect(unknownCachedIds(base.IPMOVE_CACHE_DIR!, kind.knownIds(after), cacheIdKeys), 'cache').toEqual([])
}
