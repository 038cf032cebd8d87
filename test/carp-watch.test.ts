/**
 * `ipmove watch` following carp (source = carp) end to end, as far as Linux
 * allows: carp runs only on the BSDs, so a stand-in `ifconfig` first on the
 * daemon's PATH prints the recorded OpenBSD outputs of test/fixtures/carp/
 * (master, backup, INIT), the one the test chose last. Everything else is
 * real: the built CLI's daemon in node B's namespace, the OVH emulator in the
 * observer's, B's eth0 (Linux's `ip`, not ifconfig, carries the address).
 * Run `npm run build` first.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'
import { carries, type Daemon, INSTANCE, IP, startDaemon, usePair } from './rig/engines.js'
import { describeRoot, waitFor } from './rig/netns.js'

const FIXTURES = fileURLToPath(new URL('./fixtures/carp/', import.meta.url))

describeRoot('ipmove watch follows carp (a stand-in ifconfig printing recorded OpenBSD outputs)', () => {
  const daemons: Daemon[] = []
  const suite = usePair('crw', daemons)

  it('master claims (API and address), backup and INIT drop the address without writing, a stale move is repaired', async () => {
    const { rig, pair, dir } = suite
    const b = rig.b
    const state = join(dir, 'carp0.txt')
    /** What carp0 says from now on: one of the recorded outputs. */
    const carp = (fixture: string) => copyFileSync(join(FIXTURES, `${fixture}.txt`), state)
    const bin = join(dir, 'fake-bin')
    mkdirSync(bin)
    writeFileSync(
      join(bin, 'ifconfig'),
      `#!/bin/sh\n[ "$#" = 1 ] && [ "$1" = carp0 ] || { echo "ifconfig: $*: no such interface" >&2; exit 1; }\nexec cat '${state}'\n`,
      { mode: 0o755 },
    )
    const config = join(dir, 'b', 'watch.conf')
    writeFileSync(
      config,
      `[ip.web]
ip = ${IP}
provider = ovh
project = t18s
instance = ${INSTANCE.b}
interface = eth0

[watch.web]
source = carp
carp-interface = carp0
carp-interval = 0.2
api-interval = 1
dwell = 1
max-moves = 10
`,
      { mode: 0o600 },
    )
    carp('openbsd-carp0-backup')
    const daemon = startDaemon(b, [
      'env',
      `PATH=${bin}:${process.env.PATH}`,
      pair.ipmove(b),
      'watch',
      '--config',
      config,
    ])
    daemons.push(daemon)
    const logged = (pattern: RegExp) =>
      waitFor(
        `the daemon to log ${pattern}`,
        async () => (pattern.test(daemon.output()) ? true : undefined),
        15_000,
        50,
      )
    const attaches = () => pair.emulator.requests().filter((l) => /POST \S+\/attach -> 200/.test(l)).length
    const until = (what: string, check: () => Promise<boolean>) =>
      waitFor(what, async () => ((await check()) ? true : undefined), 15_000, 100).catch((error: Error) => {
        throw new Error(`${error.message}\n${daemon.output()}`)
      })

    await logged(/\[web\] source: release: carp on carp0: BACKUP vhid 1/)
    await new Promise((r) => setTimeout(r, 1000))
    expect(await pair.holder()).toBe(INSTANCE.a)
    expect(await carries(rig, b, IP)).toBe(false)

    const promoted = Date.now()
    carp('openbsd-carp0-master')
    await until(
      'B to hold the IP',
      async () => (await pair.holder()) === INSTANCE.b && (await carries(rig, b, IP)),
    )
    const claimMs = Date.now() - promoted
    expect(attaches()).toBe(1)

    carp('openbsd-carp0-backup')
    await until('B to drop the address', async () => !(await carries(rig, b, IP)))
    expect(await pair.holder()).toBe(INSTANCE.b)
    expect(attaches()).toBe(1)

    // Master again, the API still here: the address comes back, no write.
    carp('openbsd-carp0-master')
    await until('the address back on B', () => carries(rig, b, IP))
    expect(attaches()).toBe(1)

    // The other node's stale hook moves the IP: carp still says master here, the daemon moves it back.
    const moved = await pair.move(rig.a, INSTANCE.a)
    expect(moved.code, moved.stderr).toBe(0)
    const staleAt = Date.now()
    await until('B to take the IP back', async () => (await pair.holder()) === INSTANCE.b)
    const repairMs = Date.now() - staleAt

    carp('openbsd-carp0-init-reproduced')
    await logged(/\[web\] source: release: carp on carp0: INIT vhid 1/)
    await until('B to drop the address on INIT', async () => !(await carries(rig, b, IP)))
    console.log(`carp source: claimed ${claimMs} ms after MASTER; stale move repaired in ${repairMs} ms`)
  }, 90_000)
})
