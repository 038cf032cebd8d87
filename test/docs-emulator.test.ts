/**
 * The emulator's documentation, run: every fixture example of docs/emulator.md
 * serves a move, docs/emulator-ci.md's GitHub Actions and compose command lines
 * run the smoke script to a pass (compose's service name resolved as in compose,
 * in a network namespace of its own), and the README's AWS --dry-run example
 * prints what the README prints. The built CLI throughout (`npm run build` first).
 */
import { spawn } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BIN, ipmove, ipmoveArgv, isolatedEnv, json, requireBuild } from './helpers/cli.js'
import { spawnEmulator } from './helpers/emulator-process.js'
import { describeRoot, exec } from './rig/netns.js'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8')
const dir = mkdtempSync(join(tmpdir(), 'ipmove-docs-'))
chmodSync(dir, 0o755)
afterAll(() => rmSync(dir, { recursive: true, force: true }))
beforeAll(() => requireBuild())

describe('docs/emulator.md: fixture examples', () => {
  const page = read('docs/emulator.md')
  const examples = new Map(
    [...page.matchAll(/<!-- fixture: ([\w-]+) -->\n```json\n([\s\S]*?)```/g)].map((m) => [m[1]!, m[2]!]),
  )
  /** Each example's IP, and the flags that move it to its second machine. */
  const moves: Record<string, { ip: string; flags: string[] }> = {
    ovh: { ip: '203.0.113.50', flags: ['--project', 'ci'] },
    aws: { ip: '203.0.113.51', flags: ['--provider', 'aws'] },
    hetzner: { ip: '203.0.113.52', flags: ['--provider', 'hetzner'] },
    'hetzner-robot': { ip: '203.0.113.53', flags: ['--provider', 'hetzner-robot'] },
    digitalocean: { ip: '203.0.113.54', flags: ['--provider', 'digitalocean'] },
    scaleway: { ip: '203.0.113.55', flags: ['--provider', 'scaleway'] },
  }

  it('has one example per emulator', () => {
    expect([...examples.keys()].sort()).toEqual(Object.keys(moves).sort())
  })

  it.each(Object.entries(moves))(
    'the %s example starts, and ipmove moves its IP from node-a to node-b',
    async (name, move) => {
      const file = join(dir, `${name}.json`)
      writeFileSync(file, examples.get(name)!)
      const emu = await spawnEmulator([name, '--port', '0', '--pending-ms', '100', '--fixture', file])
      try {
        const env = isolatedEnv(emu.env)
        // The credentials env.sh gives are the example's.
        for (const value of Object.values(emu.env)) expect(value).not.toBe('')
        const run = await ipmove([...move.flags, '--ip', move.ip, '--instance', 'node-b', '--json'], env)
        expect(run.stderr).toBe('')
        expect(json(run)).toMatchObject({ ok: true, outcome: 'moved', to: { name: 'node-b' } })
        const again = await ipmove([...move.flags, '--ip', move.ip, '--instance', 'node-b', '--json'], env)
        expect(json(again)).toMatchObject({ ok: true, outcome: 'in-place' })
      } finally {
        await emu.stop()
      }
    },
  )
})

describe('docs/emulator-ci.md', () => {
  const page = read('docs/emulator-ci.md')
  const files = ['failover-smoke.sh', 'github-actions.yml', 'compose.yaml']

  it('shows the example files as they are in docs/examples/', () => {
    for (const file of files) expect(page).toContain(`\n${read(`docs/examples/${file}`)}\`\`\``)
  })
})

describeRoot('docs/emulator-ci.md, run: the workflow and compose command lines', () => {
  const ns = `ipm-docs-${process.pid}`
  const netnsEtc = `/etc/netns/${ns}`
  const smoke = join(ROOT, 'docs/examples/failover-smoke.sh')
  const hook = join(ROOT, 'contrib/keepalived/ipmove-keepalived')
  const bin = join(dir, 'bin')

  beforeAll(async () => {
    // The network namespace stands for a container: its own ports (8443 is free), and
    // `ip netns exec` mounts this hosts file on /etc/hosts, where `emulator` resolves as compose's DNS does.
    mkdirSync(netnsEtc, { recursive: true })
    writeFileSync(join(netnsEtc, 'hosts'), '127.0.0.1 localhost emulator\n::1 localhost\n')
    for (const argv of [
      ['ip', 'netns', 'add', ns],
      ['ip', '-n', ns, 'link', 'set', 'lo', 'up'],
    ]) {
      expect((await exec(argv)).code).toBe(0)
    }
    // `ipmove` on PATH, as the install steps put it there.
    mkdirSync(bin)
    symlinkSync(BIN, join(bin, 'ipmove'))
  })
  afterAll(async () => {
    await exec(['ip', 'netns', 'del', ns])
    rmSync(netnsEtc, { recursive: true, force: true })
  })

  /** Run the smoke script in the namespace as the CI step does; its exit code and output. */
  const runSmoke = (script: string, env: Record<string, string>) =>
    new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn('ip', ['netns', 'exec', ns, 'sh', script], {
        env: { ...isolatedEnv(env), PATH: `${bin}:${process.env.PATH}` },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let output = ''
      child.stdout.on('data', (chunk) => {
        output += chunk
      })
      child.stderr.on('data', (chunk) => {
        output += chunk
      })
      child.on('close', (code) => resolve({ code, output }))
    })

  it('GitHub Actions: the emulator step and the smoke test step pass', async () => {
    const workflow = read('docs/examples/github-actions.yml')
    const line = /^\s*ipmove emulate ovh (.*) &$/m.exec(workflow)?.[1]
    expect(line).toBeDefined()
    const emulatorDir = join(dir, 'gha-emulator')
    const args = line!.split(/\s+/).map((arg) => (arg === '"$RUNNER_TEMP/emulator"' ? emulatorDir : arg))
    expect(/run: sh ci\/failover-smoke\.sh/.test(workflow)).toBe(true)
    const emu = await spawnEmulator(['ovh', ...args], ['ip', 'netns', 'exec', ns])
    try {
      expect(emu.env.OVH_ENDPOINT).toBe('https://127.0.0.1:8443/1.0')
      const run = await runSmoke(smoke, { EMULATOR_DIR: emulatorDir, IPMOVE_HOOK: hook })
      expect(run.output).toContain('failover smoke test passed')
      expect(run.code).toBe(0)
    } finally {
      await emu.stop()
    }
  })

  it('compose: the emulator service, reached as https://emulator:8443, and the hook service pass', async () => {
    const compose = read('docs/examples/compose.yaml')
    // Each service's `command:` block list, its items unquoted.
    const commands = [...compose.matchAll(/^ {4}command:\n((?: {6}- .*\n)+)/gm)].map((m) =>
      m[1]!
        .trimEnd()
        .split('\n')
        .map((item) => item.replace(/^ {6}- /, '').replace(/^"(.*)"$/, '$1')),
    )
    expect(commands).toHaveLength(2)
    const [emulatorCommand, hookCommand] = commands as [string[], string[]]
    // The compose volumes, mapped to this machine's paths.
    const emulatorDir = join(dir, 'compose-emulator')
    const volume = (path: string) =>
      ({ '/emulator': emulatorDir, '/failover-smoke.sh': smoke, '/usr/local/bin/ipmove-keepalived': hook })[
        path
      ] ?? path
    expect(emulatorCommand.slice(0, 3)).toEqual(['ipmove', 'emulate', 'ovh'])
    const emu = await spawnEmulator(emulatorCommand.slice(2).map(volume), ['ip', 'netns', 'exec', ns])
    try {
      expect(emu.env.OVH_ENDPOINT).toBe('https://emulator:8443/1.0')
      expect(readFileSync(join(emulatorDir, 'env.sh'), 'utf8')).toContain(
        'export IPMOVE_EMULATOR_URL=https://emulator:8443\n',
      )
      const environment = Object.fromEntries(
        [...compose.matchAll(/^\s+(EMULATOR_DIR|IPMOVE_HOOK): (\S+)$/gm)].map((m) => [m[1]!, volume(m[2]!)]),
      )
      expect(Object.keys(environment).sort()).toEqual(['EMULATOR_DIR', 'IPMOVE_HOOK'])
      expect(hookCommand[0]).toBe('sh')
      const run = await runSmoke(volume(hookCommand[1]!), environment)
      expect(run.output).toContain('failover smoke test passed')
      expect(run.code).toBe(0)
    } finally {
      await emu.stop()
    }
  })
})

describe("README's AWS --dry-run example, as printed", () => {
  const readme = read('README.md')
  const blocks = [...readme.matchAll(/```sh\n(\$ ipmove[\s\S]*?)```/g)].map((m) => m[1]!)
  const start = blocks.find((b) => b.startsWith('$ ipmove emulate aws '))!
  const dryRuns = blocks.find((b) => b.startsWith('$ ipmove --provider aws ') && b.includes('--dry-run'))!
  let emulator: ReturnType<typeof spawn> | undefined
  afterAll(() => {
    emulator?.kill('SIGTERM')
  })

  /** A printed line, with `…` standing for any text. */
  const printed = (line: string) =>
    new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/…/g, '.*')}$`)

  it('starts the emulator with the printed command, which prints the printed lines', async () => {
    expect(start).toBeDefined()
    const [command, ...output] = start.trimEnd().split('\n')
    const [file, ...argv] = ipmoveArgv(command!.replace(/^\$ ipmove /, '').split(' '))
    emulator = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no start: ${stdout}`)), 10_000)
      emulator!.stdout!.on('data', (chunk) => {
        stdout += chunk
        if (stdout.includes('listening on')) {
          clearTimeout(timer)
          resolve()
        }
      })
    })
    expect(stdout.trimEnd().split('\n')).toEqual(output)
  })

  it('runs each printed command in a shell that pasted those lines: the printed output and exit code', async () => {
    expect(dryRuns).toBeDefined()
    const pasted = Object.fromEntries(
      start
        .split('\n')
        .filter((line) => line.startsWith('export '))
        .map((line) => line.slice(7).split('=') as [string, string]),
    )
    const lines = dryRuns.trimEnd().split('\n')
    const commands = lines.flatMap((line, i) => (line.startsWith('$ ') ? [i] : []))
    expect(commands).toHaveLength(2)
    for (const [n, at] of commands.entries()) {
      const expected = lines.slice(at + 1, commands[n + 1] ?? lines.length)
      // `; echo "exit $?"` prints the exit code as the block's last line.
      const echoesExit = lines[at]!.endsWith('; echo "exit $?"')
      const exitLine = echoesExit ? expected.pop() : undefined
      const words = lines[at]!.slice(2).replace('; echo "exit $?"', '').split(' ')
      const assignments = words.slice(
        0,
        words.findIndex((w) => !/^[A-Z_]+=/.test(w)),
      )
      const args = words.slice(assignments.length)
      expect(args[0]).toBe('ipmove')
      const env = isolatedEnv({
        ...pasted,
        ...Object.fromEntries(assignments.map((a) => a.split('=') as [string, string])),
      })
      const run = await ipmove(args.slice(1), env)
      const got = [...run.stdout.trimEnd().split('\n'), ...run.stderr.trimEnd().split('\n')].filter(
        (l) => l !== '',
      )
      expect(got).toHaveLength(expected.length)
      for (const [i, line] of expected.entries()) expect(got[i]).toMatch(printed(line))
      expect(run.code).toBe(exitLine === undefined ? 0 : Number(exitLine.replace('exit ', '')))
    }
  })
})
