/**
 * `source = etcd`'s keys, read from a real config file: defaults, and one
 * clear error per mistake (file, line, section, key), before anything starts.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { loadConfig } from '../src/config.js'
import { parseWatchConfig } from '../src/watch/config.js'
import { renewEveryMs } from '../src/watch/sources/etcd-settings.js'
import { webWatchConfig } from './helpers/watch-daemon.js'

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ipmove-etcd-settings-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

const parse = (body: string) => webWatchConfig(dir, `source = etcd\n${body}`)
const ENDPOINTS = 'etcd-endpoints = https://192.0.2.14:2379, https://192.0.2.15:2379'

describe('source = etcd settings', () => {
  it('takes the endpoints and defaults the rest: election per IP, host name, 10 s lease fenced 2 s early, hold', () => {
    const [web] = parse(ENDPOINTS)
    expect(web!.source).toEqual({
      kind: 'etcd',
      settings: {
        endpoints: ['https://192.0.2.14:2379', 'https://192.0.2.15:2379'],
        ca: '',
        cert: '',
        key: '',
        election: 'ipmove/web',
        identity: hostname(),
        ttlS: 10,
        renewMarginMs: 2000,
        unreachable: 'hold',
        health: [],
        priority: 100,
        preempt: false,
        preemptDelayMs: 5000,
      },
    })
    // Three renewals fit between two fences: (10 s − 2 s) / 3.
    expect(renewEveryMs({ ttlS: 10, renewMarginMs: 2000 })).toBeCloseTo(2666.7, 1)
  })

  it('reads every key', () => {
    for (const name of ['ca.pem', 'client.pem', 'client.key']) writeFileSync(join(dir, name), 'PEM')
    const [web] = parse(`${ENDPOINTS}
etcd-ca = ${dir}/ca.pem
etcd-cert = ${dir}/client.pem
etcd-key = ${dir}/client.key
etcd-election = pg/main/vip
etcd-name = node-1
etcd-ttl = 4
etcd-renew-margin = 1.5
etcd-unreachable = release
etcd-health = ["pg_isready", "-q"]
priority = 150
preempt = yes
preempt-delay = 1`)
    expect(web!.source.settings).toMatchObject({
      ca: join(dir, 'ca.pem'),
      cert: join(dir, 'client.pem'),
      key: join(dir, 'client.key'),
      election: 'pg/main/vip',
      identity: 'node-1',
      ttlS: 4,
      renewMarginMs: 1500,
      unreachable: 'release',
      health: ['pg_isready', '-q'],
      priority: 150,
      preempt: true,
      preemptDelayMs: 1000,
    })
    // No probes with a source: the etcd source checks its own health (the link, etcd-health).
    expect(web!.probes).toEqual([])
  })

  it("reads the README's example", () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
    const example = /```ini\n(\[ip\.web\][^`]*?source = etcd[^`]*?)```/.exec(readme)?.[1]
    expect(example).toBeDefined()
    // Its certificate files, here.
    for (const name of ['etcd-ca.pem', 'etcd-node-a.pem', 'etcd-node-a.key'])
      writeFileSync(join(dir, name), 'PEM')
    const path = join(dir, 'readme.conf')
    writeFileSync(path, example!.replaceAll('/etc/ipmove/', `${dir}/`), { mode: 0o600 })
    const [web] = parseWatchConfig(loadConfig({ path, env: {}, home: dir, uid: 1000 })).ips
    expect(web!.source.settings).toMatchObject({
      endpoints: ['https://10.0.0.1:2379', 'https://10.0.0.2:2379', 'https://10.0.0.3:2379'],
      identity: 'node-a',
      cert: join(dir, 'etcd-node-a.pem'),
    })
  })

  it.each([
    ['', /needs etcd-endpoints = https:\/\/HOST:2379/],
    ['etcd-endpoints = 192.0.2.14:2379', /expected etcd endpoints as https:\/\/HOST:PORT/],
    [
      'etcd-endpoints = https://192.0.2.14:2379,http://192.0.2.15:2379',
      /must all be https:\/\/ or all http:\/\//,
    ],
    [`${ENDPOINTS}\netcd-ttl = 0`, /etcd-ttl: expected a whole number from 1 to 3600, got "0"/],
    [`${ENDPOINTS}\netcd-ttl = 2.5`, /etcd-ttl: expected a whole number from 1 to 3600/],
    [
      `${ENDPOINTS}\netcd-ttl = 4\netcd-renew-margin = 3`,
      /renew margin must be at most half the lease TTL \(2000 ms\)/,
    ],
    [
      `${ENDPOINTS}\netcd-ca = /nonexistent/ca.pem`,
      /etcd-ca: cannot read "\/nonexistent\/ca.pem" \(ENOENT\)/,
    ],
    [`${ENDPOINTS}\netcd-cert = /dev/null`, /etcd-cert: etcd-cert and etcd-key go together/],
    [`${ENDPOINTS}\netcd-unreachable = keep`, /etcd-unreachable: expected hold or release, got "keep"/],
    [`${ENDPOINTS}\netcd-election = a b`, /etcd-election: expected letters, digits and \. _ \/ -/],
    [`${ENDPOINTS}\netcd-health = pg_isready`, /etcd-health: expected a non-empty JSON array of strings/],
    [`${ENDPOINTS}\netcd-lease = 3`, /unknown key "etcd-lease"/],
  ])('refuses %j with a clear error naming the place', (body, message) => {
    expect(() => parse(body)).toThrow(message)
    expect(() => parse(body)).toThrow(/ipmove\.conf:\d+: \[watch\.web\]/)
  })
})
