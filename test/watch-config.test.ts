import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { loadConfig } from '../src/config.js'
import { FAST_PROFILE, HEALTH_DEFAULTS } from '../src/health.js'
import { parseWatchConfig } from '../src/watch/config.js'
import { usage } from './helpers/errors.js'

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ipmove-watchconf-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

function parse(text: string) {
  const path = join(dir, 'ipmove.conf')
  writeFileSync(path, text, { mode: 0o600 })
  return { path, run: () => parseWatchConfig(loadConfig({ path, env: {}, home: dir, uid: 1000 })) }
}

const BASE = `provider = local
interface = eth0

[ip.web]
ip = 192.0.2.100

[watch.web]
priority = 150
preempt = yes

[watch.web.probe.peer]
check = peer
kind = icmp
target = 192.0.2.11
`

describe('watch config', () => {
  it('reads an IP with its probes, actions and defaults', () => {
    const { run } = parse(`${BASE}
[watch.web.probe.gw]
check = self
kind = icmp
target = 192.0.2.1
interval = 0.1

[watch.web.probe.site]
check = witness
kind = http
url = http://192.0.2.100/
interval = 0.2
status = 200,204
body = </html>

[watch.web.action.nginx]
on = master
argv = ["systemctl", "start", "nginx"]
timeout = 5
`)
    const [web] = run().ips
    expect(web).toMatchObject({
      name: 'web',
      ip: { block: '192.0.2.100/32' },
      provider: 'local',
      interface: 'eth0',
      policy: { priority: 150, peerPriority: 100, preempt: true, apiUnreachable: 'hold', dwellMs: 10_000 },
      apiIntervalMs: 10_000,
      releaseOnStop: false,
      timings: HEALTH_DEFAULTS,
      actions: [{ name: 'nginx', on: 'master', argv: ['systemctl', 'start', 'nginx'], timeoutMs: 5000 }],
    })
    expect(web!.probes.map((p) => [p.name, p.check, p.spec.kind])).toEqual([
      ['peer', 'peer', 'icmp'],
      ['gw', 'self', 'icmp'],
      ['site', 'witness', 'http'],
    ])
    expect(web!.probes[1]!.spec).toMatchObject({ intervalMs: 100, timeoutMs: 250 })
    expect(web!.probes[2]!.spec).toMatchObject({ status: [200, 204], body: '</html>' })
  })

  it('defaults this node’s health to its interface’s link; the fast profile shortens peer timings', () => {
    const { run } = parse(BASE.replace('preempt = yes', 'profile = fast\npeer-deadtime = 0.2'))
    const [web] = run().ips
    expect(web!.probes.at(-1)).toMatchObject({
      name: 'link',
      check: 'self',
      spec: { kind: 'link', interface: 'eth0' },
    })
    expect(web!.probes[0]!.spec).toMatchObject(FAST_PROFILE.icmp)
    expect(web!.timings.peer).toEqual({ ...FAST_PROFILE.health, deadtimeMs: 200 })
    expect(web!.timings.self).toEqual(HEALTH_DEFAULTS.self)
  })

  const errors: Array<[string, (text: string) => string, string]> = [
    [
      'a bad number',
      (t) => t.replace('priority = 150', 'priority = 300'),
      ':8: [watch.web] priority: expected a whole number from 1 to 255, got "300"',
    ],
    [
      'a bad flag',
      (t) => t.replace('preempt = yes', 'preempt = sometimes'),
      ':9: [watch.web] preempt: expected yes or no, got "sometimes"',
    ],
    [
      'an unknown key',
      (t) => t.replace('preempt = yes', 'preemt = yes'),
      ':9: [watch.web] preemt: unknown key "preemt"',
    ],
    [
      'an unknown probe kind',
      (t) => t.replace('kind = icmp', 'kind = smtp'),
      ':13: [watch.web.probe.peer] kind: expected icmp or tcp or http or command or link, got "smtp"',
    ],
    [
      'a missing target',
      (t) => t.replace('target = 192.0.2.11', ''),
      ':11: [watch.web.probe.peer]: needs target = an IP address',
    ],
    [
      'a bad target',
      (t) => t.replace('target = 192.0.2.11', 'target = gateway'),
      ':11: [watch.web.probe.peer]: icmp probe target',
    ],
    [
      'no [ip.NAME]',
      (t) => t.replace('[ip.web]', '[ip.www]'),
      ':7: [watch.web]: expected an [ip.web] section',
    ],
    [
      'no peer probe',
      (t) => t.replace('check = peer', 'check = witness'),
      ':7: [watch.web]: needs at least one [watch.web.probe.LABEL] with check = peer',
    ],
    [
      'a probe of no watch',
      (t) => `${t}\n[watch.www.probe.x]\ncheck = peer\n`,
      ':16: [watch.www.probe.x]: there is no [watch.www] section for it',
    ],
    [
      'a bad section',
      (t) => `${t}\n[watch.web.probes.x]\n`,
      ':16: [watch.web.probes.x]: expected a section [watch], [watch.NAME]',
    ],
    [
      'an argv that is no JSON array',
      (t) => `${t}\n[watch.web.action.a]\non = master\nargv = systemctl start nginx\n`,
      ':18: [watch.web.action.a] argv: expected a non-empty JSON array of strings',
    ],
    [
      'a role that is none',
      (t) => `${t}\n[watch.web.action.a]\non = primary\nargv = ["true"]\n`,
      ':17: [watch.web.action.a] on: expected master or backup or fault, got "primary"',
    ],
    [
      'a deadtime under two intervals',
      (t) => t.replace('preempt = yes', 'peer-deadtime = 0.05'),
      ':9: [watch.web] peer-deadtime: peer check: deadtime 50 ms is under twice the interval',
    ],
  ]
  it.each(errors)('names file and line for %s', (_, edit, expected) => {
    const { path, run } = parse(edit(BASE))
    expect(usage(run)).toContain(`${path}${expected}`)
  })

  it('reads the daemon-wide [watch] section: the metrics address', () => {
    expect(parse(`${BASE}\n[watch]\nmetrics = 127.0.0.1:9479\n`).run().metrics).toEqual({
      host: '127.0.0.1',
      port: 9479,
    })
    const bad = parse(`${BASE}\n[watch]\nmetrics = localhost\n`)
    expect(usage(bad.run)).toContain(
      `${bad.path}:17: [watch] metrics: the value: "localhost" is not ADDRESS:PORT`,
    )
  })

  it('reads the README example', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
    const example = /```ini\n(\[ip\.web\][\s\S]*?\[watch\.web\][\s\S]*?)```/.exec(readme)?.[1]
    expect(example).toBeDefined()
    const [web] = parse(example!).run().ips
    expect(web).toMatchObject({
      instance: 'bi-edge-sbg-1',
      policy: { priority: 150, peerPriority: 100, preempt: true },
    })
    expect(web!.probes.map((p) => p.check)).toEqual(['peer', 'self', 'witness'])
    expect(web!.actions).toMatchObject([
      { on: 'master', argv: ['systemctl', 'start', 'nginx'], timeoutMs: 30_000 },
    ])
  })

  it('needs an interface and at least one watch section', () => {
    const noIface = parse(BASE.replace('interface = eth0\n', ''))
    expect(usage(noIface.run)).toContain('needs interface = NAME')
    const none = parse('[ip.web]\nip = 192.0.2.100\n')
    expect(usage(none.run)).toBe(`${none.path}: no [watch.NAME] section: nothing to watch`)
  })

  it('leaves other commands alone: move and status load a file whose watch sections are wrong', () => {
    const { path } = parse(BASE.replace('priority = 150', 'priority = high'))
    expect(loadConfig({ path, env: {}, home: dir, uid: 1000 }).ips.web).toBeDefined()
  })
})
