/**
 * scripts/emulator-process.mjs, which `npm run demo` and `npm run bench` use:
 * their runs must not share this host's ipmove state. A shared lock directory
 * let any other ipmove call for the demo's IP (a hook, a test running beside
 * it) supersede the demo's move, which then stood down half-way.
 */
import { execFileSync } from 'node:child_process'
import { dirname } from 'node:path'
import { describe, expect, it } from 'vitest'

const SCRIPT = new URL('../scripts/emulator-process.mjs', import.meta.url).href

/** isolatedEnv() as the scripts get it, read in a process of its own (the script is plain JS). */
function isolatedEnvOf(parent: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const code = `import { isolatedEnv } from ${JSON.stringify(SCRIPT)}; console.log(JSON.stringify(isolatedEnv()))`
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', code], {
    env: parent,
    encoding: 'utf8',
  })
  return JSON.parse(out) as NodeJS.ProcessEnv
}

describe('isolatedEnv (scripts/emulator-process.mjs)', () => {
  it('gives config, id cache and locks a private directory, whatever the caller set', () => {
    const env = isolatedEnvOf({ PATH: process.env.PATH, IPMOVE_LOCK_DIR: '/run/ipmove' })
    const dir = dirname(env.IPMOVE_CONFIG!)
    expect(dir).toMatch(/ipmove-run-/)
    expect(env.IPMOVE_CACHE_DIR).toBe(`${dir}/cache`)
    expect(env.IPMOVE_LOCK_DIR).toBe(`${dir}/locks`)
  })
})
