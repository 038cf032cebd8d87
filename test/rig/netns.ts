/**
 * A LAN made of network namespaces, for tests that need the real kernel: nodes
 * A and B (the two members of a failover pair) and an observer, each with an
 * `eth0` plugged into one bridge that lives in its own namespace. Only
 * documentation ranges are used (192.0.2.0/24, 2001:db8::/64) and nothing
 * outside the namespaces made here is touched.
 */
import { execFile, spawn, spawnSync } from 'node:child_process'
import {
  accessSync,
  chmodSync,
  constants,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { describe, it } from 'vitest'
import { etcdClient } from '../../scripts/etcd-proto.mjs'

const HERE = dirname(fileURLToPath(import.meta.url))
const ROOT = join(HERE, '..', '..')

export interface Exec {
  code: number
  stdout: string
  stderr: string
}

export interface ExecOptions {
  env?: NodeJS.ProcessEnv
  timeoutMs?: number
}

/** The tests' own runner: independent of the code under test, so its checks are independent too. */
export function exec(argv: readonly string[], options: ExecOptions = {}): Promise<Exec> {
  const [file, ...args] = argv
  return new Promise((resolve, reject) => {
    execFile(
      file!,
      args,
      { timeout: options.timeoutMs ?? 20_000, env: { ...process.env, LC_ALL: 'C', ...options.env } },
      (error, stdout, stderr) => {
        const code = (error as { code?: unknown } | null)?.code
        if (error && typeof code !== 'number') return reject(error)
        resolve({ code: typeof code === 'number' ? code : 0, stdout, stderr })
      },
    )
  })
}

async function must(argv: readonly string[]): Promise<string> {
  const result = await exec(argv)
  if (result.code !== 0) throw new Error(`${argv.join(' ')} failed (${result.code}): ${result.stderr.trim()}`)
  return result.stdout
}

/** Run what follows as nobody (uid and gid 65534, no groups): prefix an argv with it. */
export const AS_NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] as const

/** Programs the kernel tests drive besides ipmove itself. */
export const RIG_TOOLS = ['ip', 'arping', 'na6', 'ping', 'tcpdump', 'setpriv']

function onPath(tool: string): boolean {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/bin', '/bin']
  return dirs.some((dir) => {
    try {
      accessSync(join(dir, tool), constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}

async function probe(): Promise<string | undefined> {
  const need = 'needs root and ip netns: run as root or in CI'
  if (process.platform !== 'linux') return `${need} (this is ${process.platform})`
  if (process.getuid?.() !== 0) return need
  const missing = RIG_TOOLS.filter((tool) => !onPath(tool))
  if (missing.length > 0) return `${need} (missing: ${missing.join(', ')})`
  const name = `ipm-${process.pid}-probe`
  const added = await exec(['ip', 'netns', 'add', name])
  if (added.code !== 0) return `${need} (ip netns add: ${added.stderr.trim()})`
  await exec(['ip', 'netns', 'del', name])
  return undefined
}

/** Why the kernel tests cannot run here, or undefined when they can. */
export const rootProblem = await probe()

/**
 * `describe` for kernel tests: skipped with the reason on a laptop, but a
 * failure when IPMOVE_REQUIRE_ROOT_TESTS=1 (CI), so a broken rig cannot pass
 * silently as "skipped". `tools`: programs the suite needs beyond the rig's.
 */
export function describeRoot(title: string, body: () => void, tools: readonly string[] = []): void {
  const missing = tools.filter((tool) => !onPath(tool))
  const problem =
    rootProblem ?? (missing.length > 0 ? `needs ${missing.join(', ')} (see .ci/run's apt line)` : undefined)
  if (!problem) {
    describe(title, body)
  } else if (process.env.IPMOVE_REQUIRE_ROOT_TESTS === '1') {
    describe(title, () => {
      it('can run the kernel tests', () => {
        throw new Error(`${problem}; IPMOVE_REQUIRE_ROOT_TESTS=1 forbids skipping`)
      })
    })
  } else {
    describe.skip(`${title} (skipped: ${problem})`, body)
  }
}

export interface RigNode {
  /** a and b (the failover pair), obs (the observer), or one of the extra nodes a suite asked for. */
  name: string
  ns: string
  iface: string
  mac: string
  ipv4: string
  ipv6: string
}

export interface NeighEntry {
  dst: string
  lladdr?: string
  state?: string[]
}

/** What `ip -j addr show` says about one address (the fields the tests read). */
export interface AddrInfo {
  family: string
  local: string
  prefixlen: number
  label?: string
  tentative?: boolean
  dadfailed?: boolean
  nodad?: boolean
}

export interface Capture {
  /** Stop capturing and return the lines tcpdump printed. */
  stop(): Promise<string[]>
}

/**
 * Bundle an agent (test/rig/agent.ts by default) into a directory any user can
 * read (for the privilege tests), with the package.json oclif loads commands
 * from: the checkout itself may be private (/root, mktemp -d).
 */
export async function buildAgent(entry = join(HERE, 'agent.ts')): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'ipm-agent-'))
  chmodSync(dir, 0o755)
  const { name, version, type, oclif } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
  // Without `commands`: the agent hands oclif the command class itself.
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name, version, type, oclif: { ...oclif, commands: undefined } }),
  )
  const outfile = join(dir, 'agent.mjs')
  await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile,
    logLevel: 'warning',
    // As in scripts/build.mjs: the native keyring loads only for `credentials`, oclif's TypeScript tooling never.
    external: ['@napi-rs/keyring', 'typescript', 'ts-node', 'tsx'],
    plugins: [etcdClient],
    // Bundled CommonJS dependencies (oclif) still call require().
    banner: {
      js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    },
  })
  return outfile
}

const created = new Set<string>()
process.once('exit', () => {
  // Last resort after a crash between setup and teardown.
  for (const ns of created) spawnSync('ip', ['netns', 'del', ns])
})

/** Namespaces left by an earlier run that died (their pid is gone). */
async function removeStale(): Promise<void> {
  const list = await exec(['ip', 'netns', 'list'])
  for (const line of list.stdout.split('\n')) {
    const match = /^(ipm-(\d+)-\S+)/.exec(line)
    if (!match) continue
    const pid = Number(match[2])
    let alive = true
    try {
      process.kill(pid, 0)
    } catch {
      alive = false
    }
    if (!alive) await exec(['ip', 'netns', 'del', match[1]!])
  }
}

export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs: number,
  intervalMs = 10,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(intervalMs)
  }
}

export class Rig {
  readonly a: RigNode
  readonly b: RigNode
  readonly obs: RigNode
  /** The nodes named by the constructor's `extra`, in its order (192.0.2.13 on). */
  readonly extra: RigNode[]
  readonly bridgeNs: string
  private agentPath = ''

  constructor(
    readonly tag: string,
    extra: readonly string[] = [],
  ) {
    const prefix = `ipm-${process.pid}-${tag}`
    const node = (name: string, n: number): RigNode => ({
      name,
      ns: `${prefix}-${name}`,
      iface: 'eth0',
      mac: `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`,
      ipv4: `192.0.2.${n}`,
      ipv6: `2001:db8::${n}`,
    })
    this.a = node('a', 10)
    this.b = node('b', 11)
    this.obs = node('obs', 12)
    this.extra = extra.map((name, i) => node(name, 13 + i))
    this.bridgeNs = `${prefix}-br`
  }

  get nodes(): RigNode[] {
    return [this.a, this.b, this.obs, ...this.extra]
  }

  async setup(): Promise<void> {
    await removeStale()
    this.agentPath = await buildAgent()
    for (const ns of [this.bridgeNs, ...this.nodes.map((n) => n.ns)]) {
      await must(['ip', 'netns', 'add', ns])
      created.add(ns)
    }
    const br = this.bridgeNs
    // Multicast snooping off: unsolicited NAs go to ff02::1 and must reach every port at once.
    await must(['ip', '-n', br, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0'])
    for (const n of this.nodes) {
      await must([
        'ip',
        '-n',
        br,
        'link',
        'add',
        `p-${n.name}`,
        'type',
        'veth',
        'peer',
        'name',
        n.iface,
        'netns',
        n.ns,
      ])
      await must(['ip', '-n', br, 'link', 'set', `p-${n.name}`, 'master', 'br0', 'up'])
      await must(['ip', '-n', n.ns, 'link', 'set', n.iface, 'address', n.mac])
      await must(['ip', '-n', n.ns, 'addr', 'add', `${n.ipv4}/24`, 'dev', n.iface])
      await must(['ip', '-n', n.ns, 'addr', 'add', `${n.ipv6}/64`, 'dev', n.iface, 'nodad'])
      await must(['ip', '-n', n.ns, 'link', 'set', 'lo', 'up'])
      await must(['ip', '-n', n.ns, 'link', 'set', n.iface, 'up'])
    }
    await must(['ip', '-n', br, 'link', 'set', 'br0', 'up'])
    // Link-local addresses go through DAD after link up; let them settle so later timings are clean.
    for (const n of this.nodes) {
      await waitFor(
        `${n.ns} link-local addresses to leave DAD`,
        async () => ((await this.addresses(n)).some((a) => a.tentative) ? undefined : true),
        5000,
        50,
      )
    }
  }

  async destroy(): Promise<void> {
    for (const ns of [...this.nodes.map((n) => n.ns), this.bridgeNs]) {
      await exec(['ip', 'netns', 'del', ns])
      created.delete(ns)
    }
    if (this.agentPath) rmSync(dirname(this.agentPath), { recursive: true, force: true })
  }

  /** Run a program inside a node's namespace. */
  run(node: RigNode, argv: readonly string[], options: ExecOptions = {}): Promise<Exec> {
    return exec(['ip', 'netns', 'exec', node.ns, ...argv], options)
  }

  /** The addresses of a node's eth0, as the real `ip -j addr` reports them. */
  async addresses(node: RigNode): Promise<AddrInfo[]> {
    const out = await must(['ip', '-n', node.ns, '-j', 'addr', 'show', 'dev', node.iface])
    const links = JSON.parse(out) as Array<{ addr_info?: AddrInfo[] }>
    return links.flatMap((l) => l.addr_info ?? []).filter((a) => a.local)
  }

  async address(node: RigNode, local: string): Promise<AddrInfo | undefined> {
    return (await this.addresses(node)).find((a) => a.local === local)
  }

  async neigh(node: RigNode, address: string): Promise<NeighEntry | undefined> {
    const out = await must(['ip', '-n', node.ns, '-j', 'neigh', 'show', address, 'dev', node.iface])
    return (JSON.parse(out || '[]') as NeighEntry[])[0]
  }

  /**
   * A node's own lock directory, as each host has its own /run/ipmove. Namespaces share the file system:
   * without it every node of every rig, and every suite running beside this one, would share the locks of
   * an IP, and a release on A could end `superseded` by a move in another suite, leaving the address on.
   */
  lockDir(node: RigNode): string {
    const dir = join(dirname(this.agentPath), 'locks', node.name)
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    return dir
  }

  /** Run an ipmove command in a node (as the CLI would), optionally as an unprivileged user. */
  agentCmd(
    node: RigNode,
    argv: readonly string[],
    options: ExecOptions & { user?: 'nobody' } = {},
  ): Promise<Exec> {
    const as = options.user ? AS_NOBODY : []
    const [id, ...flags] = argv[0] === 'alias' ? [`alias ${argv[1]}`, ...argv.slice(2)] : argv
    return this.run(node, [...as, process.execPath, this.agentPath, 'cmd', id!, ...flags], {
      ...options,
      // nobody's home, as on Debian: oclif must not find root's files there. nobody finds its own lock
      // directory (root's is not its to use).
      env: {
        IPMOVE_AGENT_ROOT: dirname(this.agentPath),
        ...(options.user ? { HOME: '/nonexistent' } : { IPMOVE_LOCK_DIR: this.lockDir(node) }),
        ...options.env,
      },
    })
  }

  /** Call a service function in a node; resolves with its JSON report and the exit code. */
  async agentSvc(
    node: RigNode,
    fn: string,
    options: unknown,
    execOptions: ExecOptions = {},
  ): Promise<{ code: number; report: Record<string, unknown>; stderr: string }> {
    const result = await this.run(
      node,
      [process.execPath, this.agentPath, 'svc', JSON.stringify({ fn, options })],
      { ...execOptions, env: { IPMOVE_LOCK_DIR: this.lockDir(node), ...execOptions.env } },
    )
    const line = result.stdout.trim().split('\n').pop() ?? ''
    let report: Record<string, unknown>
    try {
      report = JSON.parse(line) as Record<string, unknown>
    } catch {
      throw new Error(`agent printed no report (exit ${result.code}): ${result.stderr.trim()}`)
    }
    return { code: result.code, report, stderr: result.stderr }
  }

  /** Start tcpdump on a node's eth0 (epoch timestamps, link-level headers); resolves once it listens. */
  async capture(node: RigNode, filter: string[]): Promise<Capture> {
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        node.ns,
        'tcpdump',
        '-i',
        node.iface,
        '-n',
        '-l',
        '-tt',
        '-e',
        '--immediate-mode',
        ...filter,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let out = ''
    let err = ''
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString()
    })
    const exited = new Promise<void>((resolve) => child.once('close', () => resolve()))
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`tcpdump did not start: ${err}`)), 5000)
      child.stderr.on('data', (chunk: Buffer) => {
        err += chunk.toString()
        if (err.includes('listening on')) {
          clearTimeout(timer)
          resolve()
        }
      })
      child.once('close', () => {
        clearTimeout(timer)
        reject(new Error(`tcpdump exited: ${err}`))
      })
    })
    return {
      stop: async () => {
        child.kill('SIGTERM')
        await exited
        return out.split('\n').filter(Boolean)
      },
    }
  }
}

/** Epoch milliseconds of a tcpdump -tt line. */
export function captureTime(line: string): number {
  return Number(line.split(' ')[0]) * 1000
}

export async function createRig(tag: string, extra: readonly string[] = []): Promise<Rig> {
  const rig = new Rig(tag, extra)
  try {
    await rig.setup()
  } catch (error) {
    await rig.destroy()
    throw error
  }
  return rig
}
