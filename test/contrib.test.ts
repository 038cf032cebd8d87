/**
 * The service files in contrib/, checked as far as Linux allows: the OpenBSD
 * rc.d script's syntax, and that its pexp finds, reloads and stops the
 * process its rc_start starts (the command line as Node shows it). Real
 * rc.subr, rcctl and su(1) login classes are OpenBSD's and stay unverified
 * here. The systemd unit is checked in test/watch-systemd.test.ts.
 */
import { spawn } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { exec, waitFor } from './rig/netns.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const SCRIPT = join(ROOT, 'contrib/openbsd/ipmove_watch')

/** Just what the script calls: rc_exec records the command, rc_cmd runs rc_start and records pexp. */
const STUB_RC_SUBR = `
rc_exec() { printf '%s\\n' "$*" > "$OUT/start"; }
rc_cmd() { rc_start; rc_configtest; printf '%s\\n' "$pexp" > "$OUT/pexp"; }
`

/** A stand-in for ipmove: a Node script that says what signals it got. */
const STUB_IPMOVE = `#!/usr/bin/env node
process.on('SIGHUP', () => console.log('reloaded'))
process.on('SIGTERM', () => { console.log('stopping'); process.exit(0) })
console.log('started')
setInterval(() => {}, 1000)
`

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ipmove-rcd-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

describe('OpenBSD rc.d script', () => {
  it('parses as sh (and as mksh, OpenBSD ksh’s cousin, where installed)', async () => {
    expect(await exec(['sh', '-n', SCRIPT])).toEqual({ code: 0, stdout: '', stderr: '' })
    const mksh = await exec(['mksh', '-n', SCRIPT]).catch(() => undefined)
    if (mksh) expect(mksh).toEqual({ code: 0, stdout: '', stderr: '' })
  })

  it('finds, reloads and stops by pexp the process rc_start starts', async () => {
    const daemon = join(dir, 'usr/local/bin/ipmove')
    mkdirSync(dirname(daemon), { recursive: true })
    writeFileSync(daemon, STUB_IPMOVE)
    chmodSync(daemon, 0o755)
    writeFileSync(join(dir, 'rc.subr'), STUB_RC_SUBR)
    const script = readFileSync(SCRIPT, 'utf8')
    expect(script).toContain('. /etc/rc.d/rc.subr\n')
    writeFileSync(
      join(dir, 'ipmove_watch'),
      script
        .replace('. /etc/rc.d/rc.subr', `. ${join(dir, 'rc.subr')}`)
        .replace('/usr/local/bin/ipmove', daemon),
    )
    const sourced = await exec(['sh', join(dir, 'ipmove_watch'), 'start'], { env: { OUT: dir } })
    expect(sourced.code).toBe(0)
    const pexp = readFileSync(join(dir, 'pexp'), 'utf8').trim()
    const start = readFileSync(join(dir, 'start'), 'utf8').trim()
    // rc_configtest ran last: the same flags, with --check.
    expect(start).toBe(`${daemon} watch --check --config /etc/ipmove/ipmove.conf`)
    expect(pexp).toBe(`node ${daemon} watch --config /etc/ipmove/ipmove.conf`)

    // rc_exec runs its command through sh -c; do the same with rc_start's.
    const child = spawn('sh', ['-c', start.replace(' --check', '')], {
      env: { PATH: `${dirname(process.execPath)}${delimiter}/usr/bin:/bin` },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let said = ''
    child.stdout.on('data', (chunk) => {
      said += chunk
    })
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
    try {
      await waitFor(
        'the stand-in to start',
        async () => (said.includes('started') ? true : undefined),
        10_000,
      )
      // One process, Node running the script (sh -c may fork it or exec it).
      const found = (await exec(['pgrep', '-xf', pexp])).stdout.trim()
      expect(found).toMatch(/^\d+$/)
      expect(readFileSync(`/proc/${found}/cmdline`, 'utf8').split('\0').slice(0, 3)).toEqual([
        'node',
        daemon,
        'watch',
      ])
      expect((await exec(['pkill', '-HUP', '-xf', pexp])).code).toBe(0)
      await waitFor('SIGHUP to arrive', async () => (said.includes('reloaded') ? true : undefined), 5000)
      expect((await exec(['pkill', '-xf', pexp])).code).toBe(0)
      expect(await exited).toBe(0)
      expect(said).toBe('started\nreloaded\nstopping\n')
      expect((await exec(['pgrep', '-xf', pexp])).code).toBe(1)
    } finally {
      child.kill('SIGKILL')
    }
  })
})
