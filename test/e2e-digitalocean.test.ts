/**
 * End to end: the built CLI against the DigitalOcean emulator over HTTP on
 * loopback, with its droplet metadata for "this host".
 * Run `npm run build` first (`npm test` does).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  DIGITALOCEAN_ADDRESSES,
  DIGITALOCEAN_IDS,
  DIGITALOCEAN_TOKENS,
} from '../emulator/digitalocean/fixture.js'
import {
  type RunningDigitalOceanEmulator,
  startDigitalOceanEmulator,
} from '../emulator/digitalocean/server.js'
import { ipmove, isolatedEnv, json, requireBuild } from './helpers/cli.js'

const { droplets } = DIGITALOCEAN_IDS
const IP = DIGITALOCEAN_ADDRESSES.fra
let emulator: RunningDigitalOceanEmulator

const env = (extra: Record<string, string> = {}) => isolatedEnv({ ...emulator.env, ...extra })
const digitalocean = (...args: string[]) => ['--provider', 'digitalocean', '--ip', IP, ...args]

beforeAll(async () => {
  requireBuild()
  emulator = await startDigitalOceanEmulator({ pendingMs: 200, thisHost: 'web-2' })
})

afterAll(async () => {
  await emulator?.close()
})

describe('ipmove --provider digitalocean against the DigitalOcean emulator', () => {
  it('moves to this droplet, then is in place on the next run: 2 requests, 1 round trip', async () => {
    const e = env()
    const first = await ipmove(digitalocean('--json'), e)
    expect(first.stderr).toBe('')
    expect(json(first)).toMatchObject({
      ok: true,
      kind: 'reserved',
      outcome: 'moved',
      from: { id: String(droplets.web1), name: 'web-1' },
      to: { id: String(droplets.web2), name: 'web-2' },
    })
    expect(emulator.state.reservedIps.find((r) => r.ip === IP)?.dropletId).toBe(droplets.web2)
    const second = await ipmove(digitalocean('--json'), e)
    expect(json(second)).toMatchObject({ outcome: 'in-place', changed: false, requests: 2, roundTrips: 1 })
  })

  it('exits 3 for a token without reserved_ip:update, 4 for an ambiguous droplet name, 2 across regions (nothing written)', async () => {
    const readOnly = await ipmove(
      digitalocean('--instance', 'web-1'),
      env({ DIGITALOCEAN_ACCESS_TOKEN: DIGITALOCEAN_TOKENS.readOnly }),
    )
    expect(readOnly.code).toBe(3)
    expect(readOnly.stderr).toMatch(/\(forbidden\)/)
    const twin = await ipmove(digitalocean('--instance', 'twin'), env())
    expect(twin.code).toBe(4)
    const writes = () => emulator.requests.filter((r) => r.method === 'POST').length
    const before = writes()
    const nyc = await ipmove(digitalocean('--instance', 'web-nyc'), env())
    expect(nyc.code).toBe(2)
    expect(nyc.stderr).toBe(
      `ipmove: error: droplet web-nyc is in nyc3, reserved IP ${IP} in fra1: a reserved IP moves only within its region\n`,
    )
    expect(writes()).toBe(before)
  })
})
