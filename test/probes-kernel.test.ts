/**
 * The probes against the real kernel: each runs inside a node of the rig's
 * LAN (test/rig/probe-agent.ts) while the test breaks links, drops packets
 * with nftables and serves TCP and HTTP from another node.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { HEALTH_DEFAULTS, PROBE_DEFAULTS } from '../src/health.js'
import type { ProbeSpec } from '../src/probes/index.js'
import { buildAgent, createRig, describeRoot, exec, type Rig, type RigNode, waitFor } from './rig/netns.js'
import { dropIn } from './rig/observe.js'

const HERE = dirname(fileURLToPath(import.meta.url))

interface Line {
  t: 'started' | 'spawn' | 'result' | 'event' | 'stopped'
  probe?: string
  ok?: boolean
  at?: number
  ms?: number
  detail?: string
  pid?: number
  spawns?: number
  check?: string
  state?: string
}

/** A probe agent running in a node; `lines` fills as it prints. */
class Agent {
  readonly lines: Line[] = []
  private readonly exited: Promise<void>

  constructor(
    readonly child: ChildProcess,
    private readonly stderr: () => string,
  ) {
    createInterface({ input: child.stdout! }).on('line', (line) => this.lines.push(JSON.parse(line) as Line))
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()))
  }

  results(probe?: string): Line[] {
    return this.lines.filter((l) => l.t === 'result' && (probe === undefined || l.probe === probe))
  }

  /** The first line from `from` on that satisfies `match`. */
  next(what: string, match: (line: Line) => boolean, timeoutMs: number, from = 0): Promise<Line> {
    return waitFor(
      `${what} (agent said: ${this.stderr().trim() || 'nothing on stderr'})`,
      async () => this.lines.slice(from).find(match),
      timeoutMs,
    )
  }

  /** SIGTERM: the agent stops its probes and must then exit by itself (nothing left running). */
  async stop(): Promise<Line> {
    this.child.kill('SIGTERM')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000)
    await this.exited
    clearTimeout(timer)
    const stopped = this.lines.find((l) => l.t === 'stopped')
    expect(stopped, `the agent did not stop cleanly: ${this.stderr()}`).toBeDefined()
    expect(this.child.signalCode, 'the agent had to be killed: something kept it alive').toBeNull()
    return stopped!
  }
}

let agentPath = ''

async function startAgent(node: RigNode, request: { probes: ProbeSpec[]; check?: unknown }): Promise<Agent> {
  const child = spawn(
    'ip',
    ['netns', 'exec', node.ns, process.execPath, agentPath, JSON.stringify(request)],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let err = ''
  child.stderr!.on('data', (chunk) => {
    err += chunk
  })
  const agent = new Agent(child, () => err)
  await agent.next('the agent to start', (l) => l.t === 'started', 10_000)
  return agent
}

/** Processes left in a node's namespace (none, once every probe there has stopped). */
async function pidsIn(node: RigNode): Promise<string[]> {
  return (await exec(['ip', 'netns', 'pids', node.ns])).stdout.split('\n').filter(Boolean)
}

/** The process exists and is not a zombie. */
function running(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z'
  } catch {
    return false
  }
}

/** A node's eth0 goes down or up; resolves with when the command returned. */
async function setLink(node: RigNode, state: 'up' | 'down'): Promise<number> {
  const r = await exec(['ip', '-n', node.ns, 'link', 'set', node.iface, state])
  expect(r.code, r.stderr).toBe(0)
  return Date.now()
}

/** A small TCP and HTTP server in a node: `/` a full page, `/partial` a cut one, `/down` 503. */
function serve(node: RigNode): { stop(): Promise<void>; ready: Promise<void> } {
  const program = `
    const http = require('node:http')
    const pages = { '/': [200, '<html><body>ok</body></html>'], '/partial': [200, '<html><body>cut'], '/down': [503, 'busy'] }
    http.createServer((req, res) => {
      const [status, body] = pages[req.url.split('?')[0]] ?? [404, 'no']
      res.writeHead(status, { 'content-type': 'text/html' }).end(body)
    }).listen(8080, '${node.ipv4}', () => console.log('listening'))`
  const child = spawn('ip', ['netns', 'exec', node.ns, process.execPath, '-e', program], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve())
    child.once('exit', (code) => reject(new Error(`test server exited ${code}`)))
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  return {
    ready,
    stop: async () => {
      child.kill('SIGTERM')
      await exited
    },
  }
}

describeRoot('probes against the real kernel (network namespaces)', () => {
  let rig: Rig
  beforeAll(async () => {
    ;[rig, agentPath] = await Promise.all([createRig('prb'), buildAgent(join(HERE, 'rig', 'probe-agent.ts'))])
  })
  afterAll(async () => {
    await rig?.destroy()
    if (agentPath) rmSync(dirname(agentPath), { recursive: true, force: true })
  })

  it('ICMP (IPv6): one ping process serves every probe, and it dies with its probe', async () => {
    const { a, b } = rig
    const agent = await startAgent(a, {
      probes: [{ kind: 'icmp', target: b.ipv6, intervalMs: 20, timeoutMs: 20 }],
    })
    await agent.next('60 answers', () => agent.results().filter((r) => r.ok).length >= 60, 5000)
    const spawned = agent.lines.filter((l) => l.t === 'spawn')
    expect(spawned).toHaveLength(1)
    // The kernel agrees: the namespace holds the agent and that one ping, nothing else.
    const pids = await pidsIn(a)
    expect(pids).toHaveLength(2)
    expect(pids).toContain(String(spawned[0]!.pid))
    expect((await agent.stop()).spawns).toBe(1)
    expect(await pidsIn(a)).toEqual([])
  })

  it('ICMP: answers, then fails within interval + timeout once the peer link dies, then answers again', async () => {
    const { a, b } = rig
    const spec = { kind: 'icmp', target: b.ipv4, intervalMs: 50, timeoutMs: 100 } as const
    const agent = await startAgent(a, { probes: [spec] })
    await agent.next('three answers', () => agent.results().filter((r) => r.ok).length >= 3, 3000)

    const mark = agent.lines.length
    let failed: Line
    let down: number
    try {
      down = await setLink(b, 'down')
      failed = await agent.next('a failure', (l) => l.t === 'result' && !l.ok, 2000, mark)
    } finally {
      await setLink(b, 'up')
    }
    const up = Date.now()
    // The last echo may have left just before the link died: one interval, then the timeout.
    expect(failed.at! - down).toBeLessThanOrEqual(spec.intervalMs + spec.timeoutMs + 50)
    expect(failed.detail).toBe('no reply within 100 ms')

    const back = await agent.next('an answer again', (l) => l.t === 'result' && l.ok === true, 3000, mark)
    expect(back.at! - up).toBeLessThan(1500)
    const stopped = await agent.stop()
    // Replies the down link had queued come back seconds late: they count as lost, never as fresh.
    const late = agent.results().filter((r) => r.detail?.startsWith('reply after'))
    for (const r of late) expect(r.ok).toBe(false)
    expect(stopped.spawns).toBe(1)
    expect(await pidsIn(a)).toEqual([])
  })

  it('ICMP: ping dies by itself when the daemon is killed without stopping it', async () => {
    const { a, b } = rig
    const agent = await startAgent(a, {
      probes: [{ kind: 'icmp', target: b.ipv4, intervalMs: 50, timeoutMs: 50 }],
    })
    const ping = await agent.next('ping', (l) => l.t === 'spawn', 2000)
    await agent.next('an answer', (l) => l.t === 'result', 2000)
    agent.child.kill('SIGKILL')
    // Its new parent may be slow to reap it: a zombie has exited all the same.
    await waitFor(
      `ping ${ping.pid} to exit on its closed pipe`,
      async () => (running(ping.pid!) ? undefined : true),
      1000,
    )
  })

  it('ICMP: a ping that cannot start is retried with a back-off, not forked every interval', async () => {
    const { a } = rig
    // No route to this range in the rig: ping exits at once with "Network is unreachable".
    const agent = await startAgent(a, {
      probes: [{ kind: 'icmp', target: '198.51.100.7', intervalMs: 20, timeoutMs: 20 }],
    })
    await agent.next('a failure', (l) => l.t === 'result', 2000)
    await new Promise((resolve) => setTimeout(resolve, 1500))
    const { spawns } = await agent.stop()
    // (On a loaded machine the watchdog may speak first, before ping has even started.)
    const stops = agent.results().filter((r) => r.detail?.startsWith('ping stopped'))
    expect(stops[0]!.detail).toMatch(/^ping stopped: .*Network is unreachable \(exit 2\)$/)
    // 20 ms, 40, 80, … up to 5 s: a handful of starts in 1.5 s, where one per interval would be 75.
    expect(spawns).toBeGreaterThanOrEqual(4)
    expect(spawns).toBeLessThanOrEqual(8)
    expect(agent.results().every((r) => !r.ok)).toBe(true)
  })

  it('ICMP under 20 % loss (nftables): losses are counted, the peer check with default timings stays up', async () => {
    const { a, b } = rig
    const undo = await dropIn(rig, b, [
      'icmp',
      'type',
      'echo-request',
      'numgen',
      'random',
      'mod',
      '100',
      '<',
      '20',
    ])
    try {
      const agent = await startAgent(a, {
        probes: [{ kind: 'icmp', target: b.ipv4, ...PROBE_DEFAULTS.icmp }],
        check: { kind: 'peer', timings: HEALTH_DEFAULTS.peer },
      })
      await agent.next('150 probes', () => agent.results().length >= 150, 20_000)
      await agent.stop()
      const results = agent.results()
      const lost = results.filter((r) => !r.ok).length
      const verdicts = agent.lines.filter((l) => l.t === 'event' && l.check).map((l) => l.state)
      console.log(
        `20 % drop: ${lost} of ${results.length} ICMP probes lost; verdicts: ${verdicts.join(', ')}`,
      )
      expect(lost / results.length).toBeGreaterThan(0.08)
      expect(lost / results.length).toBeLessThan(0.35)
      expect(verdicts).toEqual(['up'])
    } finally {
      await undo()
    }
  })

  it('TCP: a listening port connects, a closed one is refused, a silent one times out', async () => {
    const { a, b } = rig
    const server = serve(b)
    await server.ready
    const undo = await dropIn(rig, b, ['tcp', 'dport', '8082'])
    try {
      const timing = { intervalMs: 100, timeoutMs: 200 }
      const agent = await startAgent(a, {
        probes: [
          { kind: 'tcp', host: b.ipv4, port: 8080, ...timing },
          { kind: 'tcp', host: b.ipv4, port: 8081, ...timing },
          { kind: 'tcp', host: b.ipv4, port: 8082, ...timing },
        ],
      })
      await agent.next('two results of each', () => agent.results(`tcp ${b.ipv4}:8082`).length >= 2, 3000)
      await agent.stop()
      const first = (port: number) => agent.results(`tcp ${b.ipv4}:${port}`)[0]!
      expect(first(8080)).toMatchObject({ ok: true, detail: 'connected' })
      expect(first(8081)).toMatchObject({ ok: false, detail: expect.stringMatching(/ECONNREFUSED/) })
      expect(first(8082)).toMatchObject({ ok: false, detail: 'no answer within 200 ms' })
      // Node's timers run on the loop's cached clock, so a 200 ms timeout can measure 199.x ms by performance.now().
      expect(first(8082).ms).toBeGreaterThanOrEqual(195)
      expect(first(8082).ms).toBeLessThan(400)
    } finally {
      await undo()
      await server.stop()
    }
  })

  it('HTTP: status and body must both match', async () => {
    const { a, b } = rig
    const server = serve(b)
    await server.ready
    try {
      const base = `http://${b.ipv4}:8080`
      const timing = { intervalMs: 200, timeoutMs: 500 }
      const agent = await startAgent(a, {
        probes: [
          { kind: 'http', url: `${base}/`, body: '</html>', ...timing },
          { kind: 'http', url: `${base}/partial`, body: '</html>', ...timing },
          { kind: 'http', url: `${base}/down`, ...timing },
          { kind: 'http', url: `${base}/down?maintenance`, status: [503], ...timing },
        ],
      })
      await agent.next(
        'a result of each',
        () => new Set(agent.results().map((r) => r.probe)).size === 4,
        3000,
      )
      await agent.stop()
      const first = (path: string) => agent.results(`http ${base}${path}`)[0]!
      expect(first('/')).toMatchObject({ ok: true, detail: 'HTTP 200' })
      expect(first('/partial')).toMatchObject({
        ok: false,
        detail: 'HTTP 200, body does not match "</html>"',
      })
      expect(first('/down')).toMatchObject({ ok: false, detail: 'HTTP 503' })
      // A 503 that is expected (a maintenance page, say) is healthy.
      expect(first('/down?maintenance')).toMatchObject({ ok: true, detail: 'HTTP 503' })
    } finally {
      await server.stop()
    }
  })

  it('link state: fails as soon as the interface goes down, recovers when it is up', async () => {
    const { a } = rig
    const agent = await startAgent(a, {
      probes: [{ kind: 'link', interface: 'eth0', intervalMs: 20, timeoutMs: 500 }],
    })
    await agent.next('link up', (l) => l.ok === true, 2000)
    expect(agent.results()[0]!.detail).toBe('operstate up, carrier 1')
    const mark = agent.lines.length
    let failed: Line
    let down: number
    let upMark: number
    try {
      down = await setLink(a, 'down')
      failed = await agent.next('link down', (l) => l.ok === false, 2000, mark)
    } finally {
      upMark = agent.lines.length
      await setLink(a, 'up')
    }
    expect(failed.detail).toBe('operstate down, carrier none')
    // A few intervals at most, even on a loaded machine; an ICMP deadtime would be 700 ms.
    expect(failed.at! - down).toBeLessThan(250)
    await agent.next('link up again', (l) => l.ok === true, 3000, upMark)
    await agent.stop()
    const missing = await startAgent(a, {
      probes: [{ kind: 'link', interface: 'eth9', intervalMs: 20, timeoutMs: 500 }],
    })
    const none = await missing.next('a result', (l) => l.t === 'result', 2000)
    await missing.stop()
    expect(none).toMatchObject({ ok: false, detail: 'no interface eth9' })
  })
})
