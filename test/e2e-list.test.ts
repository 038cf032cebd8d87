/**
 * End to end: `ipmove list` from the built CLI against the OVH emulator, which
 * enforces each consumer key's access rules as the real API does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defaultOvhFixture, OVH_ADDRESSES, OVH_IDS } from '../emulator/ovh/fixture.js'
import { type RunningOvhEmulator, startOvhEmulator } from '../emulator/ovh/server.js'
import { ipmove, isolatedEnv, json, requireBuild } from './helpers/cli.js'

let emulator: RunningOvhEmulator

beforeAll(async () => {
  requireBuild()
  const fixture = defaultOvhFixture()
  // The default key is ipmove's minimal one (what a move needs); a second one may also list /ip.
  const minimal = fixture.consumers[0]!
  fixture.consumers.push({
    ...minimal,
    key: 'lister-ck',
    rules: [...minimal.rules, { method: 'GET', path: '/ip' }],
  })
  // Long enough that the list run after a --no-wait move still sees it pending on a loaded machine.
  emulator = await startOvhEmulator({ pendingMs: 5000, fixture })
})

afterAll(async () => {
  await emulator?.close()
})

const env = (extra: Record<string, string> = {}) => isolatedEnv({ ...emulator.env, ...extra })

describe('ipmove list against the OVH emulator', () => {
  it('lists every project’s failover IPs and the classic ones, with holders, ids and kinds', async () => {
    const run = await ipmove(['list', '--json'], env({ OVH_CONSUMER_KEY: 'lister-ck' }))
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    const result = json(run)
    expect(result).toMatchObject({ ok: true, provider: 'ovh' })
    const ips = result.ips as Array<Record<string, unknown>>
    expect(ips).toEqual([
      {
        ip: `${OVH_ADDRESSES.cloudV4}/32`,
        kind: 'cloud',
        id: OVH_IDS.failoverIps.v4,
        scope: { id: OVH_IDS.projects.t18s, name: 't18s' },
        holder: { id: OVH_IDS.instances.sbg1, name: 'bi-edge-sbg-1' },
        pending: false,
      },
      {
        ip: `${OVH_ADDRESSES.cloudV6}/128`,
        kind: 'cloud',
        id: OVH_IDS.failoverIps.v6,
        scope: { id: OVH_IDS.projects.t18s, name: 't18s' },
        holder: { id: OVH_IDS.instances.sbg2, name: 'bi-edge-sbg-2' },
        pending: false,
      },
      {
        ip: `${OVH_ADDRESSES.classic}/32`,
        kind: 'classic',
        holder: { id: 'ns3000001.ip-198-51-100.eu' },
        pending: false,
      },
    ])
  })

  it('shows a move in progress as pending, in plain lines', async () => {
    const move = await ipmove(
      ['--project', 't18s', '--ip', OVH_ADDRESSES.cloudV4, '--instance', 'bi-edge-sbg-2', '--no-wait'],
      env(),
    )
    expect(move.code).toBe(0)
    const run = await ipmove(['list', '--project', 't18s'], env())
    expect(run.code).toBe(0)
    expect(run.stdout).toContain(
      `${OVH_ADDRESSES.cloudV4}/32 (cloud, project t18s (${OVH_IDS.projects.t18s}), id ${OVH_IDS.failoverIps.v4}) is on bi-edge-sbg-1 (${OVH_IDS.instances.sbg1}); pending: status operationPending`,
    )
    // --project lists that project only: no classic IPs, no /ip request.
    expect(run.stdout).not.toContain(OVH_ADDRESSES.classic)
  })

  it('with a key that may not list /ip, lists the Public Cloud IPs and warns', async () => {
    const run = await ipmove(['list', '--json'], env())
    expect(run.code).toBe(0)
    expect(run.stderr).toMatch(
      /^ipmove: warning: classic failover IPs not listed: .*not been granted.*needs GET \/ip/,
    )
    const ips = json(run).ips as Array<{ kind: string }>
    expect(ips.map((ip) => ip.kind)).toEqual(['cloud', 'cloud'])
  })

  it('refuses the local provider, which has no API to ask (exit 2)', async () => {
    const run = await ipmove(['list', '--provider', 'local'], env())
    expect(run.code).toBe(2)
    expect(run.stderr).toBe('ipmove: error: provider local cannot list IPs (it has no cloud API to ask)\n')
  })
})
