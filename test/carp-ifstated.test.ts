/**
 * contrib/carp-ifstated: carp and ifstated run on OpenBSD only, so this takes
 * the `run` commands out of the recipe's ifstated.conf, checks each is a plain
 * argv (ifstated hands it to sh), and runs them with the built CLI on node A
 * against the OVH emulator, vio0 standing for the rig's eth0. The OpenBSD
 * ifconfig side is test/alias-bsd.test.ts's. The daemon variant's config
 * (ipmove-watch.conf, source = carp) must pass `ipmove watch --check`; the
 * daemon following carp is test/carp-watch.test.ts. Run `npm run build` first.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { ipmove, isolatedEnv, requireBuild } from './helpers/cli.js'
import { carries, type Daemon, INSTANCE, IP, usePair } from './rig/engines.js'
import { describeRoot } from './rig/netns.js'

const WATCH_CONF = fileURLToPath(new URL('../contrib/carp-ifstated/ipmove-watch.conf', import.meta.url))
const CONF = readFileSync(
  fileURLToPath(new URL('../contrib/carp-ifstated/ifstated.conf', import.meta.url)),
  'utf8',
)

/** The `run "…"` commands of each `state NAME { … }` block. */
function runsByState(conf: string): Record<string, string[]> {
  const states: Record<string, string[]> = {}
  let state: string | undefined
  for (const line of conf.split('\n')) {
    const opened = /^state (\w+) \{/.exec(line)
    if (opened) state = opened[1]!
    const run = /^\s*run "([^"]*)"\s*$/.exec(line)
    if (run && state) states[state] = [...(states[state] ?? []), run[1]!]
  }
  return states
}

describeRoot(
  'the carp + ifstated recipe: its commands, run as ifstated would, against the OVH emulator',
  () => {
    const daemons: Daemon[] = []
    const suite = usePair('cif', daemons)

    it('has one plain ipmove argv per state: move on master, release on backup', () => {
      const runs = runsByState(CONF)
      expect(Object.keys(runs).sort()).toEqual(['backup', 'master'])
      expect(CONF).toMatch(/^init-state backup$/m)
      expect(CONF).toMatch(/^carp_up = "carp0\.link\.up"$/m)
      for (const command of Object.values(runs).flat()) {
        expect(command).not.toMatch(/[|&;<>$`\\'"*?()[\]{}~]/)
        expect(command.split(' ')[0]).toBe('/usr/local/bin/ipmove')
      }
      expect(runs.master![0]).toMatch(/ move --ip 203\.0\.113\.10 --interface vio0 /)
      expect(runs.backup![0]).toMatch(/ release --ip 203\.0\.113\.10 --interface vio0 /)
    })

    it('master moves the IP here and adds the address; backup drops it and leaves the API alone', async () => {
      const { rig, pair } = suite
      const a = rig.a
      const runs = runsByState(CONF)
      const argv = (command: string) =>
        command
          .split(' ')
          .map((word) =>
            word === 'vio0' ? a.iface : word === '/usr/local/bin/ipmove' ? pair.ipmove(a) : word,
          )
      expect(await pair.holder()).toBe(INSTANCE.a)
      // Start from elsewhere, so the master's move is a real one.
      const away = await pair.move(a, INSTANCE.b)
      expect(away.code, away.stderr).toBe(0)

      const master = await rig.run(a, argv(runs.master![0]!))
      expect(master.code, master.stderr).toBe(0)
      expect(await pair.holder()).toBe(INSTANCE.a)
      expect(await carries(rig, a, IP)).toBe(true)

      const backup = await rig.run(a, argv(runs.backup![0]!))
      expect(backup.code, backup.stderr).toBe(0)
      expect(await carries(rig, a, IP)).toBe(false)
      expect(await pair.holder()).toBe(INSTANCE.a)
    }, 60_000)
  },
)

describe('the daemon variant: ipmove watch follows carp0 itself', () => {
  it('is a valid watch config, following carp0 as ifstated.conf does, carrying the IP on vio0', async () => {
    requireBuild()
    const run = await ipmove(['watch', '--check', '--config', WATCH_CONF], isolatedEnv())
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toBe('web: 203.0.113.10/32 with ovh, following carp, 0 actions: valid\n')
    const text = readFileSync(WATCH_CONF, 'utf8')
    expect(text).toMatch(/^source = carp$/m)
    expect(text).toMatch(/^carp-interface = carp0$/m)
    expect(text).toMatch(/^interface = vio0$/m)
  })
})
