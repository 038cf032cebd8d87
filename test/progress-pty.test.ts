/**
 * The progress line on a real pseudo-terminal of 80 columns (script(1)), during a
 * move whose polls hang: it goes to stderr, never wraps, and its time keeps going.
 */
import { spawn, spawnSync } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { OVH_ADDRESSES } from '../emulator/ovh/fixture.js'
import { type RunningOvhEmulator, startOvhEmulator } from '../emulator/ovh/server.js'
import { ipmoveArgv, isolatedEnv, requireBuild } from './helpers/cli.js'

const hasScript = spawnSync('script', ['--version']).status === 0
let emulator: RunningOvhEmulator

beforeAll(async () => {
  requireBuild()
  // Each poll of the failover IP hangs 1.2 s; the move takes 1.5 s.
  emulator = await startOvhEmulator({
    pendingMs: 1_500,
    faults: ['path=/cloud/project/*/ip/failover/*,method=GET,slow=1200,times=0'],
  })
})

afterAll(async () => {
  await emulator?.close()
})

const quote = (arg: string) => `'${arg.replaceAll("'", `'\\''`)}'`

describe('progress on an 80-column terminal', () => {
  it.skipIf(!hasScript)(
    'is redrawn in place, cut to the width, ticking while a poll hangs (skipped without script)',
    async () => {
      const argv = ipmoveArgv([
        '--project',
        't18s',
        '--ip',
        OVH_ADDRESSES.cloudV4,
        '--instance',
        'bi-edge-sbg-2',
      ])
      const command = `stty cols 80 rows 24; exec ${argv.map(quote).join(' ')} 2>/dev/tty 1>/dev/null`
      // Not spawnSync: the emulator answers from this process's event loop.
      const run = await new Promise<{ status: number | null; stdout: string }>((resolve) => {
        const child = spawn('script', ['-qfec', command, '/dev/null'], {
          env: isolatedEnv(emulator.env),
          // With a pipe for stdin, script(1) waits for its end.
          stdio: ['ignore', 'pipe', 'inherit'],
        })
        let stdout = ''
        child.stdout.on('data', (chunk) => {
          stdout += chunk
        })
        child.on('close', (status) => resolve({ status, stdout }))
      })
      expect(run.status, run.stdout).toBe(0)
      const draws = run.stdout
        .split('\r\x1b[2K')
        .map((d) => d.replace(/\r?\n$/, ''))
        .filter(Boolean)
      const progress = draws.filter((d) => d.startsWith('waiting for ovh'))
      const seconds = new Set(progress.map((d) => /\((\d+\.\d) s\)$/.exec(d)?.[1]))
      // Several distinct times: the line moved on while a poll hung (1.2 s each).
      expect(seconds.size).toBeGreaterThanOrEqual(4)
      for (const draw of progress) expect([...draw].length).toBeLessThanOrEqual(79)
    },
  )
})
