/**
 * End to end: the built CLI as a hook runs it, against the Hetzner Cloud
 * emulator over HTTP on loopback (its metadata service for "this host"); and
 * every new `ipmove emulate …` command started as a process.
 * Run `npm run build` first (`npm test` does).
 */
import { spawn } from 'node:child_process'
import { chmodSync, writeFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HETZNER_ADDRESSES, HETZNER_IDS, HETZNER_TOKENS } from '../emulator/hetzner/fixture.js'
import { type RunningHetznerEmulator, startHetznerEmulator } from '../emulator/hetzner/server.js'
import { BIN, ipmove, isolatedEnv, json, requireBuild } from './helpers/cli.js'

const { servers, floatingIps } = HETZNER_IDS
const IP = HETZNER_ADDRESSES.v4
let emulator: RunningHetznerEmulator

const env = (extra: Record<string, string> = {}) => isolatedEnv({ ...emulator.env, ...extra })
const hetzner = (...args: string[]) => ['--provider', 'hetzner', '--ip', IP, ...args]
const assigns = () =>
  emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/actions/assign'))

beforeAll(async () => {
  requireBuild()
  emulator = await startHetznerEmulator({ pendingMs: 200, thisHost: 'web-2' })
})

afterAll(async () => {
  await emulator?.close()
})

describe('ipmove --provider hetzner against the Hetzner Cloud emulator', () => {
  it('moves to this host (metadata), then is in place on the warm run: 2 requests, 1 round trip', async () => {
    const e = env()
    const first = await ipmove(hetzner('--json'), e)
    expect(first.stderr).toBe('')
    expect(json(first)).toMatchObject({
      ok: true,
      provider: 'hetzner',
      outcome: 'moved',
      from: { id: String(servers.web1) },
      to: { id: String(servers.web2), name: 'web-2' },
    })
    expect(emulator.state.floatingIps.find((f) => f.id === floatingIps.v4)?.server).toBe(servers.web2)
    const before = assigns().length
    const second = await ipmove(hetzner('--json'), e)
    expect(json(second)).toMatchObject({ outcome: 'in-place', changed: false, requests: 2, roundTrips: 1 })
    expect(assigns().length).toBe(before)
  })

  it('moves to a server by name, waiting out a locked IP; --dry-run writes nothing', async () => {
    const before = assigns().length
    const dry = await ipmove(hetzner('--instance', 'web-1', '--dry-run', '--json'), env())
    expect(json(dry)).toMatchObject({ ok: true, outcome: 'would-move' })
    expect(assigns().length).toBe(before)

    emulator.addFault('path=/floating_ips/*/actions/assign,method=POST,status=423')
    const run = await ipmove(hetzner('--instance', 'web-1'), env())
    expect(run.code).toBe(0)
    // A cold run names the target it looked up; the holder it found is known by id only.
    expect(run.stdout).toMatch(/moved from 1002 to web-1 \(1001\) in \d+\.\d s/)
    expect(run.stdout).toMatch(/the API says the IP is busy .*\(locked\)\); waiting/)
    expect(
      assigns()
        .slice(before)
        .map((r) => r.status),
    ).toEqual([423, 201])
  })

  it('exits with the documented codes: 3 for a Read token writing, 4 for an unknown IP or server', async () => {
    const readOnly = await ipmove(
      hetzner('--instance', 'web-nbg'),
      env({ HCLOUD_TOKEN: HETZNER_TOKENS.readOnly }),
    )
    expect(readOnly.code).toBe(3)
    expect(readOnly.stderr).toMatch(/token_readonly/)
    expect(readOnly.stderr).not.toContain(HETZNER_TOKENS.readOnly)
    const unknownIp = await ipmove(
      ['--provider', 'hetzner', '--ip', '198.51.100.99', '--instance', 'web-1'],
      env(),
    )
    expect(unknownIp.code).toBe(4)
    const unknownServer = await ipmove(hetzner('--instance', 'nope'), env())
    expect(unknownServer.code).toBe(4)
    expect(unknownServer.stderr).toMatch(/no server "nope"/)
  })

  it('takes the token from the [hetzner] section of a private config file', async () => {
    const e = env({ HCLOUD_TOKEN: '' })
    writeFileSync(e.IPMOVE_CONFIG!, `[hetzner]\ntoken = ${HETZNER_TOKENS.readWrite}\n`, { mode: 0o600 })
    const run = await ipmove(['status', '--provider', 'hetzner', '--ip', IP, '--json'], e)
    expect(json(run)).toMatchObject({ ok: true, holder: { id: expect.any(String) } })
    chmodSync(e.IPMOVE_CONFIG!, 0o644)
    const open = await ipmove(['status', '--provider', 'hetzner', '--ip', IP], e)
    expect(open.code).toBe(2)
  })

  it('status reads one IPv6 address inside a floating /64', async () => {
    const run = await ipmove(['status', '--provider', 'hetzner', '--ip', '2001:db8:20::1', '--json'], env())
    expect(json(run)).toMatchObject({
      ok: true,
      kind: 'ipv6',
      holder: { id: String(servers.web2) },
      pending: false,
    })
  })
})

describe('ipmove emulate for the new clouds, as processes', () => {
  const cases: Array<[string, string, string]> = [
    ['hetzner', 'HCLOUD_ENDPOINT', 'Hetzner Cloud'],
    ['digitalocean', 'DIGITALOCEAN_API_URL', 'DigitalOcean'],
    ['scaleway', 'SCW_API_URL', 'Scaleway'],
    ['hetzner-robot', 'HROBOT_URL', 'Hetzner Robot'],
  ]
  it.each(cases)(
    'emulate %s prints sourceable env lines, serves, and stops on SIGTERM',
    async (name, first, api) => {
      const child = spawn(process.execPath, [BIN, 'emulate', name, '--port', '0'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      const output = await new Promise<string>((resolve, reject) => {
        let text = ''
        child.stdout.on('data', (chunk) => {
          text += chunk
          if (/listening/.test(text)) resolve(text)
        })
        child.on('exit', (code) => reject(new Error(`emulate ${name} exited ${code}`)))
      })
      const lines = output.trim().split('\n')
      expect(lines[0]).toMatch(new RegExp(`^export ${first}=http://127\\.0\\.0\\.1:\\d+`))
      expect(lines.at(-1)).toMatch(
        new RegExp(`^# ipmove ${api} emulator listening on http://127\\.0\\.0\\.1:\\d+`),
      )
      const url = /=(\S+)/.exec(lines[0]!)![1]!
      // Unauthenticated: every API answers 401 in its own format.
      const answer = await fetch(
        `${url.replace(/\/$/, '')}/${name === 'digitalocean' ? 'v2/droplets' : name === 'scaleway' ? 'instance/v1/zones/fr-par-1/ips' : name === 'hetzner' ? 'servers' : 'failover'}`,
      )
      expect(answer.status).toBe(401)
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
      child.kill('SIGTERM')
      expect(await exited).toBe(0)
    },
  )
})
