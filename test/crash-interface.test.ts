/**
 * Crash safety on the real kernel: `move --interface` killed with SIGKILL at
 * each step of a move, then run again, as a failover hook would be. The next
 * run must converge: the API routes the IP to this node, eth0 carries it once,
 * the LAN hears of it, and the dead run's lock is taken over.
 *
 * Each kill comes at a step known for sure, never after a guessed sleep: the
 * emulator's request log says what the API has seen (a hang fault holds the
 * run before its write), and wrappers in front of `ip` and `arping` log and
 * hold `ip addr add` and the announcements while a gate file exists.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { ipmoveArgv } from './helpers/cli.js'
import { heldLocks } from './helpers/matrix.js'
import { type NamespacedEmulator, startNamespacedEmulator } from './rig/emulator.js'
import { createRig, describeRoot, exec, type Rig, waitFor } from './rig/netns.js'
import { aHolds, captureAnnouncements, flipTo, release } from './rig/observe.js'

const IP = '203.0.113.10'
const MOVE = ['move', '--project', 't18s', '--ip', IP, '--instance', 'bi-edge-sbg-2', '--interface', 'eth0']
const SBG2 = /bi-edge-sbg-2/

/** A wrapper that logs its pid to GATE/NAME and, while GATE/hold-NAME says so, waits (30 s at most). */
function wrapper(real: string, name: string, match: string): string {
  return `#!/bin/sh
# Test wrapper: with IPMOVE_TEST_GATE set, log this call and hold it from the Nth on
# (N in $IPMOVE_TEST_GATE/hold-${name}) until that file is removed.
if [ -n "$IPMOVE_TEST_GATE" ] && ${match}; then
  echo $$ >> "$IPMOVE_TEST_GATE/${name}"
  n=$(wc -l < "$IPMOVE_TEST_GATE/${name}")
  from=$(cat "$IPMOVE_TEST_GATE/hold-${name}" 2>/dev/null)
  i=0
  while [ -n "$from" ] && [ "$n" -ge "$from" ] && [ -e "$IPMOVE_TEST_GATE/hold-${name}" ] && [ $i -lt 1500 ]; do
    sleep 0.02
    i=$((i + 1))
  done
fi
exec ${real} "$@"
`
}

interface Step {
  name: string
  /** Extra `ipmove emulate ovh` arguments. */
  emulator: string[]
  /** How long the API takes to move the IP (default 300 ms). */
  pendingMs?: number
  /** Hold `ip addr add` (ip) or the announcements from the Nth (arping) while the run is killed. */
  hold?: { tool: 'ip' | 'arping'; from: number }
  /** Resolves once the run has reached the step. */
  reached(emulator: NamespacedEmulator, gate: string): Promise<void>
  /** Where the API routes the IP once the killed run's write, if any, has settled. */
  cloud: 'bi-edge-sbg-1' | 'bi-edge-sbg-2'
}

const logged = (gate: string, name: string) =>
  existsSync(join(gate, name)) ? readFileSync(join(gate, name), 'utf8').split('\n').filter(Boolean) : []

const seen = (emulator: NamespacedEmulator, pattern: RegExp) =>
  waitFor(
    `the emulator to log ${pattern}`,
    async () => (emulator.requests().some((l) => pattern.test(l)) ? true : undefined),
    15_000,
  )

const ATTACHED = /POST \S+\/attach -> 200/

describeRoot('kill -9 at each step of move --interface: the next run converges', () => {
  let rig: Rig
  let dir: string
  let path: string

  beforeAll(async () => {
    if (!existsSync(new URL('../dist/src/main.js', import.meta.url))) {
      throw new Error('dist/ is missing: run `npm run build` first')
    }
    rig = await createRig('crash')
    dir = mkdtempSync(join(tmpdir(), 'ipmove-crash-'))
    chmodSync(dir, 0o755)
    writeFileSync(join(dir, 'ipmove.conf'), '', { mode: 0o600 })
    const bin = join(dir, 'bin')
    mkdirSync(bin)
    const real = async (tool: string) => (await exec(['which', tool])).stdout.trim()
    writeFileSync(join(bin, 'ip'), wrapper(await real('ip'), 'ip', '[ "$1" = addr ] && [ "$2" = add ]'), {
      mode: 0o755,
    })
    writeFileSync(
      join(bin, 'arping'),
      wrapper(await real('arping'), 'arping', 'case " $* " in *" -U "*) true;; *) false;; esac'),
      { mode: 0o755 },
    )
    path = `${bin}:${process.env.PATH}`
    const route = await rig.run(rig.obs, ['ip', 'route', 'add', `${IP}/32`, 'dev', 'eth0'])
    expect(route.code, route.stderr).toBe(0)
  })
  afterAll(async () => {
    await rig?.destroy()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  /** The CLI in B's namespace, as a hook runs it; `gate` turns the wrappers on. */
  function start(env: Record<string, string>, gate?: string): { child: ChildProcess; done: Promise<Run> } {
    const child = spawn('ip', ['netns', 'exec', rig.b.ns, ...ipmoveArgv([...MOVE, '--json', '--debug'])], {
      env: {
        ...env,
        PATH: path,
        HOME: dir,
        IPMOVE_CONFIG: join(dir, 'ipmove.conf'),
        IPMOVE_CACHE_DIR: join(dir, 'cache'),
        IPMOVE_LOCK_DIR: join(dir, 'locks'),
        ...(gate ? { IPMOVE_TEST_GATE: gate } : {}),
      },
    })
    let stdout = ''
    let stderr = ''
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
    })
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    const done = new Promise<Run>((resolve) =>
      child.once('close', (code) => resolve({ code, stdout, stderr })),
    )
    return { child, done }
  }

  async function holder(env: Record<string, string>): Promise<string> {
    const run = await rig.run(rig.b, ipmoveArgv(['status', '--project', 't18s', '--ip', IP, '--json']), {
      env: {
        ...env,
        HOME: dir,
        IPMOVE_CONFIG: join(dir, 'ipmove.conf'),
        IPMOVE_CACHE_DIR: join(dir, 'cache'),
      },
    })
    expect(run.code, run.stderr).toBe(0)
    return (JSON.parse(run.stdout).holder as { name: string }).name
  }

  const steps: Step[] = [
    {
      name: 'before the write (its look-up held)',
      // The failover IP's look-up, by list or, with a warm cache, by id.
      emulator: ['--fault', 'path=/cloud/project/*/ip/failover/**,method=GET,hang'],
      reached: async (emulator) => {
        await seen(emulator, /\/ip\/failover\S* -> no answer/)
      },
      cloud: 'bi-edge-sbg-1',
    },
    {
      name: 'right after the write is accepted',
      emulator: [],
      pendingMs: 2500,
      reached: async (emulator) => {
        await seen(emulator, ATTACHED)
      },
      cloud: 'bi-edge-sbg-2',
    },
    {
      name: 'while polling',
      emulator: [],
      pendingMs: 2500,
      reached: async (emulator) => {
        await waitFor(
          'a poll after the write',
          async () => {
            const lines = emulator.requests()
            const write = lines.findIndex((l) => ATTACHED.test(l))
            return write >= 0 &&
              lines.slice(write + 1).some((l) => /GET \S+\/ip\/failover\/[^/\s]+ -> 200/.test(l))
              ? true
              : undefined
          },
          15_000,
        )
      },
      cloud: 'bi-edge-sbg-2',
    },
    {
      name: 'after the API is done, before the address is added',
      emulator: [],
      hold: { tool: 'ip', from: 1 },
      reached: async (emulator, gate) => {
        await seen(emulator, ATTACHED)
        await waitFor('ip addr add', async () => (logged(gate, 'ip').length > 0 ? true : undefined), 15_000)
        await waitFor(
          'the API to route the IP to B',
          async () => (SBG2.test(await holder(emulator.env)) ? true : undefined),
          15_000,
          100,
        )
      },
      cloud: 'bi-edge-sbg-2',
    },
    {
      name: 'after the address is added, before the announcement',
      emulator: [],
      hold: { tool: 'arping', from: 1 },
      reached: async (_emulator, gate) => {
        await waitFor(
          'the first announcement',
          async () => (logged(gate, 'arping').length > 0 ? true : undefined),
          15_000,
        )
      },
      cloud: 'bi-edge-sbg-2',
    },
    {
      name: 'during the announcement (one of five sent)',
      emulator: [],
      hold: { tool: 'arping', from: 2 },
      reached: async (_emulator, gate) => {
        await waitFor(
          'the second announcement',
          async () => (logged(gate, 'arping').length > 1 ? true : undefined),
          15_000,
        )
      },
      cloud: 'bi-edge-sbg-2',
    },
  ]

  for (const step of steps) {
    it(`killed ${step.name}`, async () => {
      const { a, b, obs } = rig
      const emulator = await startNamespacedEmulator(b, dir, step.emulator, step.pendingMs)
      const gate = mkdtempSync(join(dir, 'gate-'))
      try {
        // The observer forgets the last step's holder, then learns A as the holder.
        await rig.run(obs, ['ip', 'neigh', 'flush', 'to', IP])
        await aHolds(rig, IP)
        await release(rig, a, IP)
        if (step.hold) writeFileSync(join(gate, `hold-${step.hold.tool}`), String(step.hold.from))

        const killed = start(emulator.env, gate)
        await Promise.race([
          step.reached(emulator, gate),
          killed.done.then((r) => {
            throw new Error(`the run ended before the step, exit ${r.code}: ${r.stderr}`)
          }),
        ])
        killed.child.kill('SIGKILL')
        const dead = await killed.done
        expect(dead.code, dead.stderr).toBeNull()
        // What the dead run left: its lock, and a held wrapper that must not finish its work now.
        for (const pid of [...logged(gate, 'ip'), ...logged(gate, 'arping')]) {
          try {
            process.kill(Number(pid), 'SIGKILL')
          } catch {
            // Already done.
          }
        }
        expect(heldLocks(join(dir, 'locks'))).toEqual([expect.stringContaining(`holds "${killed.child.pid}`)])
        if (step.hold?.tool === 'ip') expect(await rig.address(b, IP)).toBeUndefined()
        await waitFor(
          'the killed run’s write to settle',
          async () => ((await holder(emulator.env)) === step.cloud ? true : undefined),
          15_000,
          100,
        )

        // The next hook run: no gate, same lock and cache.
        const capture = await captureAnnouncements(rig, obs, IP)
        const next = start(emulator.env)
        const flipped = flipTo(rig, obs, IP, b.mac, 15_000)
        const run = await next.done
        await flipped
        const frames = await capture.stop()

        expect(run.code, run.stderr).toBe(0)
        expect(run.stderr).toMatch(
          new RegExp(`lock: taking over .* from pid ${killed.child.pid}, which is gone`),
        )
        expect(JSON.parse(run.stdout)).toMatchObject({
          ok: true,
          to: { name: 'bi-edge-sbg-2' },
          alias: { ip: `${IP}/32`, interface: 'eth0', announced: { count: 5 } },
        })
        expect(await holder(emulator.env)).toBe('bi-edge-sbg-2')
        expect((await rig.addresses(b)).filter((x) => x.local === IP)).toHaveLength(1)
        expect(
          frames.filter((f) => f.includes(`${b.mac} > ff:ff:ff:ff:ff:ff`)).length,
        ).toBeGreaterThanOrEqual(5)
        expect(heldLocks(join(dir, 'locks'))).toEqual([])
        // At most one write per run: the killed one's (if it got there), and the next one's if needed.
        expect(emulator.requests().filter((l) => ATTACHED.test(l)).length).toBeLessThanOrEqual(2)
      } finally {
        await emulator.stop()
        await release(rig, b, IP)
        rmSync(gate, { recursive: true, force: true })
      }
    })
  }
})

interface Run {
  code: number | null
  stdout: string
  stderr: string
}
