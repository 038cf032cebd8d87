/**
 * contrib/pacemaker/ipmove, the OCF resource agent: its meta-data is valid
 * against resource-agents' ra-api-1.dtd (what crm and pcs read), it passes
 * `ocf-tester` from Debian's resource-agents package against the OVH emulator,
 * and its actions move the IP between nodes A and B of the rig with OCF exit
 * codes. Run `npm run build` first.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'
import { type Daemon, INSTANCE, IP, type Pair, usePair } from './rig/engines.js'
import { describeRoot, exec, type RigNode } from './rig/netns.js'

const AGENT = fileURLToPath(new URL('../contrib/pacemaker/ipmove', import.meta.url))
const HEARTBEAT = fileURLToPath(new URL('../contrib/pacemaker/ipmove-heartbeat', import.meta.url))
const DTD = '/usr/share/resource-agents/ra-api-1.dtd'
const OCF = { SUCCESS: 0, ERR_GENERIC: 1, ERR_CONFIGURED: 6, NOT_RUNNING: 7 }

describeRoot('the Pacemaker OCF agent: meta-data, ocf-tester, actions against the OVH emulator', () => {
  const daemons: Daemon[] = []
  const suite = usePair('ocf', daemons)

  /** The agent's `action` on `node`, with its parameters as Pacemaker passes them. */
  function agent(node: RigNode, action: string, params: Record<string, string> = {}) {
    const { rig, pair } = suite
    const env: Record<string, string> = { OCF_ROOT: '/usr/lib/ocf' }
    const all = { ...reskeys(pair, node), ...params }
    for (const [key, value] of Object.entries(all)) env[`OCF_RESKEY_${key}`] = value
    return rig.run(node, [AGENT, action], { env })
  }

  function reskeys(pair: Pair, node: RigNode): Record<string, string> {
    return {
      ip: IP,
      interface: 'eth0',
      project: 't18s',
      instance: INSTANCE[node.name as 'a' | 'b'],
      binary: pair.ipmove(node),
      check_api: 'true',
    }
  }

  it('prints meta-data that is valid against ra-api-1.dtd', async () => {
    const meta = await exec([AGENT, 'meta-data'], { env: { OCF_ROOT: '/usr/lib/ocf' } })
    expect(meta.code, meta.stderr).toBe(0)
    const file = join(suite.dir, 'meta.xml')
    writeFileSync(file, meta.stdout)
    const lint = await exec(['xmllint', '--noout', '--dtdvalid', DTD, file])
    expect(lint.code, lint.stderr).toBe(0)
    expect(meta.stdout).toContain('<parameter name="ip" unique="1" required="1">')
  })

  it('passes ocf-tester against the emulator', async () => {
    const { rig, pair } = suite
    const node = rig.b
    const options = Object.entries(reskeys(pair, node)).flatMap(([k, v]) => ['-o', `${k}=${v}`])
    const run = await rig.run(node, ['ocf-tester', '-n', 'failover_ip', ...options, AGENT], {
      timeoutMs: 120_000,
    })
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0)
    expect(run.stdout).toContain('passed all tests')
    await rig.run(node, ['ip', 'addr', 'del', `${IP}/32`, 'dev', 'eth0'])
  }, 150_000)

  it('moves the IP with start, drops it with stop, and monitor sees the API disagree', async () => {
    const { rig, pair } = suite
    expect((await agent(rig.a, 'monitor')).code).toBe(OCF.NOT_RUNNING)
    expect((await agent(rig.a, 'start')).code).toBe(OCF.SUCCESS)
    expect(await pair.holder()).toBe(INSTANCE.a)
    expect((await agent(rig.a, 'monitor')).code).toBe(OCF.SUCCESS)
    // The IP moved behind A's back (another node started it): monitor with check_api says so.
    expect((await agent(rig.b, 'start')).code).toBe(OCF.SUCCESS)
    expect(await pair.holder()).toBe(INSTANCE.b)
    const stale = await agent(rig.a, 'monitor')
    expect(stale.code, stale.stderr).toBe(OCF.ERR_GENERIC)
    expect(stale.stderr).toContain('does not route')
    expect((await agent(rig.a, 'monitor', { check_api: 'false' })).code).toBe(OCF.SUCCESS)
    expect((await agent(rig.a, 'stop')).code).toBe(OCF.SUCCESS)
    expect((await agent(rig.a, 'stop')).code).toBe(OCF.SUCCESS)
    expect((await agent(rig.a, 'monitor')).code).toBe(OCF.NOT_RUNNING)
    expect(await pair.holder()).toBe(INSTANCE.b)
    expect((await agent(rig.b, 'stop')).code).toBe(OCF.SUCCESS)
    expect((await agent(rig.b, 'validate-all', { interface: 'eth9' })).code).toBe(OCF.ERR_CONFIGURED)
    expect((await agent(rig.b, 'validate-all', { ip: '' })).code).toBe(OCF.ERR_CONFIGURED)
  }, 60_000)

  it("heartbeat's haresources script: start moves the IP to this host (the metadata service's), status, stop", async () => {
    const { rig, pair } = suite
    const b = rig.b
    const heartbeat = (action: string) =>
      rig.run(b, [HEARTBEAT, IP, 'eth0', 't18s', action], { env: { IPMOVE: pair.ipmove(b) } })
    expect((await heartbeat('status')).stdout).toBe('stopped\n')
    const start = await heartbeat('start')
    expect(start.code, start.stderr).toBe(0)
    expect(await pair.holder()).toBe(INSTANCE.b)
    expect((await heartbeat('status')).stdout).toBe('running\n')
    expect((await heartbeat('stop')).code).toBe(0)
    expect((await heartbeat('status')).stdout).toBe('stopped\n')
    expect((await rig.run(b, [HEARTBEAT, IP, 'eth0', 'bogus'])).code).toBe(2)
  }, 30_000)
}, ['ocf-tester', 'xmllint'])
