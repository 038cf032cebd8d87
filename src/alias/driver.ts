import { execFile } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import ipaddr from 'ipaddr.js'
import { IpmoveError } from '../errors.js'
import type { IpBlock } from '../validate.js'

/** One address configured on an interface, as the kernel reports it. */
export interface AddressEntry {
  iface: string
  /** Canonical text (IPv6 compressed, lower case, no zone). */
  address: string
  prefix: number
  version: 4 | 6
  /** `host` for loopback, `link` for link-local, else `global`. */
  scope: 'global' | 'link' | 'host'
  /** Usable, still in duplicate address detection, or refused by it (IPv6 only). */
  state: 'ready' | 'tentative' | 'dadfailed'
  /** Linux IPv4 label such as `eth0:vip`, when it differs from the interface name. */
  label?: string
  /** The interface's link-layer address, when it has one. */
  mac?: string
}

export interface AddRequest {
  ip: IpBlock
  iface: string
  /** The part after `IF:`; Linux IPv4 only. */
  label?: string
  /** Skip duplicate address detection (Linux IPv6). */
  nodad?: boolean
}

export interface RemoveRequest {
  ip: IpBlock
  iface: string
}

/**
 * The three things ipmove needs from a platform's address tools. `add` and
 * `remove` are idempotent and say whether they changed anything; an address
 * counts as present on the interface whatever its prefix. `add` returns only
 * once the address is usable (IPv6 duplicate address detection is over).
 */
export interface AddressDriver {
  list(iface?: string): Promise<AddressEntry[]>
  add(entry: AddRequest): Promise<boolean>
  remove(entry: RemoveRequest): Promise<boolean>
}

export interface RunResult {
  /** The exit code; -1 when `stopAfterMs` stopped the command by a signal. */
  code: number
  stdout: string
  stderr: string
  /** `stopAfterMs` ran out before the command ended. */
  stopped?: boolean
}

export interface RunOptions {
  timeoutMs?: number
  /**
   * Stop the command after this long and resolve with what it printed so far,
   * instead of failing: for listeners such as a duplicate-address probe, whose
   * silence is the answer.
   */
  stopAfterMs?: number
}

/** Runs one external command; resolves whatever its exit code, rejects only when it could not run. */
export type Runner = (argv: readonly string[], options?: RunOptions) => Promise<RunResult>

export const DEFAULT_RUN_TIMEOUT_MS = 10_000

/** Which package brings each tool, for the error a missing one gets. */
const PACKAGE_OF: Record<string, string> = {
  ip: 'iproute2',
  arping: 'iputils-arping (or arping)',
  na6: 'ipv6toolkit',
  ndisc6: 'ndisc6',
  ifconfig: 'the base system (ifconfig)',
}

/**
 * Hooks (carp, keepalived, ifstated) often run with a PATH that lacks the sbin
 * directories where ip, arping and ifconfig live.
 */
function toolPath(path: string | undefined): string {
  const dirs = (path ?? '').split(':').filter(Boolean)
  for (const dir of ['/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/local/bin', '/usr/bin', '/bin']) {
    if (!dirs.includes(dir)) dirs.push(dir)
  }
  return dirs.join(':')
}

/**
 * The one way ipmove runs an external command: argv only (never a shell), a
 * timeout, output captured, and messages in English so they can be matched.
 */
export const runCommand: Runner = (argv, options = {}) => {
  const [file, ...args] = argv
  if (!file) throw new Error('runCommand needs a command')
  const timeoutMs = options.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS
  const { stopAfterMs } = options
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      {
        timeout: stopAfterMs ?? timeoutMs,
        maxBuffer: 4 * 1024 * 1024,
        env: { ...process.env, PATH: toolPath(process.env.PATH), LC_ALL: 'C' },
      },
      (error, stdout, stderr) => {
        if (!error) return resolve({ code: 0, stdout, stderr })
        const failure = error as NodeJS.ErrnoException & { killed?: boolean; code?: number | string }
        if (failure.code === 'ENOENT') {
          return reject(
            new IpmoveError('local', `${file} not found: install ${PACKAGE_OF[file] ?? file}`, {
              command: file,
            }),
          )
        }
        if (failure.killed && stopAfterMs !== undefined) {
          const code = typeof failure.code === 'number' ? failure.code : -1
          return resolve({ code, stdout, stderr, stopped: true })
        }
        if (failure.killed) {
          return reject(
            new IpmoveError('local', `${argv.join(' ')} did not finish within ${timeoutMs / 1000} s`, {
              command: file,
            }),
          )
        }
        if (typeof failure.code === 'number') return resolve({ code: failure.code, stdout, stderr })
        reject(new IpmoveError('local', `${file} could not run: ${failure.message.split('\n')[0]}`))
      },
    )
  })
}

/** The first non-empty line of a tool's complaint, for a one-line error. */
export function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .map((line) => line.trim())
      .find(Boolean) ?? ''
  )
}

export function localError(message: string, details?: Record<string, unknown>): IpmoveError {
  return new IpmoveError('local', message, details)
}

/** `host`, `link` or `global`, from the address alone, so every platform agrees. */
export function scopeOf(address: string): AddressEntry['scope'] {
  const range = ipaddr.parse(address).range()
  if (range === 'loopback') return 'host'
  if (range === 'linkLocal') return 'link'
  return 'global'
}

/** Canonical text of an address as a tool printed it (drops a `%zone`). */
export function canonical(address: string): string {
  return ipaddr.parse(address.split('%')[0] ?? address).toString()
}

export function findAddress(entries: AddressEntry[], ip: IpBlock, iface: string): AddressEntry | undefined {
  return entries.find((e) => e.iface === iface && e.address === ip.address)
}

/** How a platform's address tool complains, to turn its words into the one-line message an operator needs. */
export interface ToolComplaints {
  tool: string
  missing: RegExp
  denied: RegExp
  /** What `doing` needs when `denied` matched, such as `root`. */
  needs: string
  /** The address is there already: another process added it between our look and our add. */
  exists: RegExp
}

export function toolFailure(tool: ToolComplaints, result: RunResult, iface: string, doing: string): Error {
  const text = `${result.stderr}\n${result.stdout}`
  if (tool.missing.test(text)) return localError(`interface ${iface} does not exist`, { interface: iface })
  if (tool.denied.test(text)) return localError(`${doing} needs ${tool.needs}`, { interface: iface })
  return localError(`${doing} failed: ${firstLine(text) || `${tool.tool} exited with ${result.code}`}`, {
    interface: iface,
  })
}

/**
 * The idempotent add every driver does around its own command (`addNow`): an
 * address already there is only waited on, one that failed duplicate address
 * detection earlier is taken off and tried afresh.
 */
export async function addOnce(
  driver: AddressDriver,
  { ip, iface }: AddRequest,
  tool: ToolComplaints,
  addNow: () => Promise<RunResult>,
): Promise<boolean> {
  const present = findAddress(await driver.list(iface), ip, iface)
  if (present?.state === 'dadfailed') {
    // Left over from an earlier conflict: try again, DAD decides afresh.
    await driver.remove({ ip, iface })
  } else if (present) {
    await settle(driver, ip, iface)
    return false
  }
  const result = await addNow()
  if (result.code !== 0 && !tool.exists.test(result.stderr)) {
    throw toolFailure(tool, result, iface, `adding ${ip.block} to ${iface}`)
  }
  await settle(driver, ip, iface)
  return result.code === 0
}

export interface SettleOptions {
  timeoutMs: number
  pollMs: number
}

export const DEFAULT_SETTLE: SettleOptions = { timeoutMs: 10_000, pollMs: 50 }

/**
 * Wait until a just-added IPv6 address leaves duplicate address detection.
 * If another host on the link owns it, take it off again and fail: carrying an
 * address the kernel refuses to use would only hide the conflict.
 */
export async function settle(
  driver: AddressDriver,
  ip: IpBlock,
  iface: string,
  options: SettleOptions = DEFAULT_SETTLE,
): Promise<void> {
  if (ip.version !== 6) return
  const deadline = Date.now() + options.timeoutMs
  for (;;) {
    const entry = findAddress(await driver.list(iface), ip, iface)
    if (!entry) throw localError(`${ip.block} vanished from ${iface} during duplicate address detection`)
    if (entry.state === 'ready') return
    if (entry.state === 'dadfailed') {
      await driver.remove({ ip, iface })
      throw localError(
        `${ip.block} failed duplicate address detection on ${iface}: another host on the link uses it (removed it again)`,
        { dadfailed: true },
      )
    }
    if (Date.now() >= deadline) {
      throw localError(`${ip.block} on ${iface} is still tentative after ${options.timeoutMs / 1000} s`)
    }
    await sleep(options.pollMs)
  }
}
