import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { configPath, type IpmoveConfig, loadConfig, resolveTarget } from '../src/config.js'
import { IpmoveError } from '../src/errors.js'
import { redact } from '../src/output.js'
import { usage } from './helpers/errors.js'

let dir: string

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ipmove-config-'))
})

afterEach(() => {
  rmSync(dir, { recursive: true, force: true })
})

function write(text: string, mode = 0o644, name = 'ipmove.conf'): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  chmodSync(path, mode)
  return path
}

const load = (path: string) => loadConfig({ path, env: {}, home: dir, uid: 1000 })

describe('configPath', () => {
  it('prefers --config, then IPMOVE_CONFIG, then /etc for root, then XDG', () => {
    const env = { IPMOVE_CONFIG: '/env/ipmove.conf', XDG_CONFIG_HOME: '/xdg' }
    expect(configPath({ path: '/flag.conf', env, uid: 0, home: '/home/u' })).toEqual({
      path: '/flag.conf',
      explicit: true,
    })
    expect(configPath({ env, uid: 0, home: '/home/u' })).toEqual({ path: '/env/ipmove.conf', explicit: true })
    expect(configPath({ env: {}, uid: 0, home: '/root' })).toEqual({
      path: '/etc/ipmove/ipmove.conf',
      explicit: false,
    })
    expect(configPath({ env: { XDG_CONFIG_HOME: '/xdg' }, uid: 1000, home: '/home/u' }).path).toBe(
      '/xdg/ipmove/ipmove.conf',
    )
    expect(configPath({ env: {}, uid: 1000, home: '/home/u' }).path).toBe(
      '/home/u/.config/ipmove/ipmove.conf',
    )
  })
})

describe('loadConfig', () => {
  it('reads every setting: defaults, [ovh] and [ip.NAME] entries', () => {
    const path = write(`# ipmove
provider = ovh
project = t18s
instance = bi-edge-sbg-1
interface = eth0
timeout = 90
label = vip

[ovh]
endpoint = ovh-ca

[ip.web]
ip = 203.0.113.10
provider = ovh
project = Other Project
instance = bi-edge-sbg-2
interface = ens3
timeout = 2.5
label = web ; the alias label

[ip.www.example]
ip = 2001:DB8::/64
`)
    const config = load(path)
    expect(config).toEqual({
      path,
      defaults: {
        provider: 'ovh',
        project: 't18s',
        instance: 'bi-edge-sbg-1',
        interface: 'eth0',
        timeoutMs: 90_000,
        label: 'vip',
      },
      providers: { ovh: { endpoint: 'ovh-ca' } },
      ips: {
        web: {
          ip: { address: '203.0.113.10', prefix: 32, version: 4, block: '203.0.113.10/32' },
          provider: 'ovh',
          project: 'Other Project',
          instance: 'bi-edge-sbg-2',
          interface: 'ens3',
          timeoutMs: 2500,
          label: 'web',
        },
        'www.example': { ip: { address: '2001:db8::', prefix: 64, version: 6, block: '2001:db8::/64' } },
      },
      watch: { sections: new Map(), lines: new Map() },
    })
  })

  it('is empty when the default file does not exist, and an error when a named one does not', () => {
    expect(loadConfig({ env: {}, home: dir, uid: 1000 })).toEqual({
      defaults: {},
      providers: {},
      ips: {},
      watch: { sections: new Map(), lines: new Map() },
    })
    const missing = join(dir, 'nope.conf')
    expect(usage(() => load(missing))).toBe(`config file ${missing} does not exist`)
    expect(usage(() => loadConfig({ env: { IPMOVE_CONFIG: missing }, home: dir, uid: 1000 }))).toContain(
      missing,
    )
  })

  it('takes /dev/null, from IPMOVE_CONFIG or --config, for an empty config, whatever file exists', () => {
    mkdirSync(join(dir, 'xdg', 'ipmove'), { recursive: true })
    writeFileSync(join(dir, 'xdg', 'ipmove', 'ipmove.conf'), 'project = p1\n')
    const watch = { sections: new Map(), lines: new Map() }
    const empty = { defaults: {}, providers: {}, ips: {}, watch }
    const env = { XDG_CONFIG_HOME: join(dir, 'xdg') }
    expect(loadConfig({ env: { ...env, IPMOVE_CONFIG: '/dev/null' }, home: dir, uid: 1000 })).toEqual(empty)
    expect(loadConfig({ env, path: '/dev/null', home: dir, uid: 1000 })).toEqual(empty)
  })

  it('finds the file at the XDG place', () => {
    mkdirSync(join(dir, 'xdg', 'ipmove'), { recursive: true })
    writeFileSync(join(dir, 'xdg', 'ipmove', 'ipmove.conf'), 'project = p1\n')
    const config = loadConfig({ env: { XDG_CONFIG_HOME: join(dir, 'xdg') }, home: dir, uid: 1000 })
    expect(config.defaults).toEqual({ project: 'p1' })
  })

  it('refuses unknown keys and sections, naming file, section and key', () => {
    let path = write('projet = t18s\n')
    expect(usage(() => load(path))).toBe(
      `${path}: unknown key "projet" in the top (before any section) (known: provider, project, instance, interface, timeout, label)`,
    )
    path = write('[ip.web]\nip = 203.0.113.10\nintreface = eth0\n')
    expect(usage(() => load(path))).toMatch(
      new RegExp(`^${path}: unknown key "intreface" in \\[ip\\.web\\] \\(known: ip, `),
    )
    path = write('[ovh]\napplication_sekret = x\n')
    expect(usage(() => load(path))).toContain(`${path}: unknown key "application_sekret" in [ovh]`)
    path = write('[gcp]\nregion = europe-west1\n')
    expect(usage(() => load(path))).toContain(`${path}: unknown section [gcp]`)
    path = write('[ip.web]\nip[] = 203.0.113.10\n')
    expect(usage(() => load(path))).toContain(`${path}: [ip.web] ip[]: lists are not supported`)
  })

  it('never echoes a line that is not KEY = VALUE: it may be a secret pasted on a line of its own', () => {
    const secret = 'Zq8pasted7SecretLine4x'
    let path = write(`[ovh]\napplication_key = ak\n${secret}\n`)
    let message = usage(() => load(path))
    expect(message).toBe(
      `${path}: line 3 is neither [SECTION] nor KEY = VALUE (the line is not shown: it may be a secret)`,
    )
    // A secret pasted as a key is not quoted either.
    path = write(`[ovh]\n${secret} = x\n`)
    message = usage(() => load(path))
    expect(message).toContain('unknown key (not shown: it may be a secret) in [ovh]')
    expect(message).not.toContain(secret)
  })

  it('refuses what ini would skip or guess at: reserved names, a value with no key, U+2028, duplicates', () => {
    const cases: Array<[string, string]> = [
      ['[__proto__]\nprovider = aws\n', 'line 1: [__proto__] is not a section name'],
      ['[ip.web]\nip = 192.0.2.1\n__proto__ = x\n', 'line 3: __proto__ is not a key name'],
      ['= t18s\n', 'line 1 has a value but no key'],
      [
        'project = t18s\u2028instance = web-2\n',
        'line 1 holds a control character or a Unicode line separator',
      ],
      ['project = t18s\x1b[2K\n', 'line 1 holds a control character or a Unicode line separator'],
      ['project = a\nproject = b\n', 'line 2: key "project" appears twice in its section'],
      ['[ovh]\nendpoint = ovh-eu\n[ovh]\nendpoint = ovh-ca\n', 'line 3: section [ovh] appears twice'],
      ['[]\n', 'line 1: [] is not a section name'],
      [' [ovh]\n', 'line 1 is neither [SECTION] nor KEY = VALUE (the line is not shown: it may be a secret)'],
    ]
    for (const [text, message] of cases) {
      const path = write(text)
      expect(
        usage(() => load(path)),
        JSON.stringify(text),
      ).toBe(`${path}: ${message}`)
    }
  })

  it('takes the timeout as the flag does: 1e-9 is refused, not a timeout of 0', () => {
    expect(usage(() => load(write('timeout = 1e-9\n')))).toContain('timeout must be a number of seconds')
    expect(usage(() => load(write('timeout = 0x10\n')))).toContain('timeout must be a number of seconds')
  })

  it('prints nothing of a file that is no config at all (--config /etc/shadow)', () => {
    const shadow = 'root:$6$Vx9salt$Ab7hashhashhash:19700:0:99999:7:::\ndaemon:*:19700:0:99999:7:::\n'
    const message = usage(() => load(write(shadow)))
    expect(message).not.toContain('$6$')
    expect(message).not.toContain('root')
    expect(message).toContain('line 1 is neither [SECTION] nor KEY = VALUE')
  })

  it('validates every value, saying where it is', () => {
    const cases: [string, string][] = [
      ['project = "a;reboot"\n', 'project "a;reboot" has characters'],
      ['project = a$(reboot)\n', 'project "a$(reboot)" has characters'],
      ['instance = \n', 'instance is empty'],
      [
        'interface = averyveryverylongname0\n',
        'interface "averyveryverylongname0" is not a valid interface name',
      ],
      ['label = a:b\n', 'label "a:b" is not a valid interface name'],
      ['timeout = 0\n', 'timeout must be a number of seconds'],
      ['timeout = soon\n', 'timeout must be a number of seconds'],
      ['provider = gcp\n', 'provider: unknown provider "gcp"'],
      ['[aws]\nmode = nat\n', '[aws] mode'],
      [
        '[ovh]\nendpoint = http://api.example.com/1.0\n',
        '[ovh] endpoint "http://api.example.com/1.0" must be an https://',
      ],
      ['[ovh]\nendpoint = ovh-mars\n', '[ovh] endpoint "ovh-mars" is unknown'],
      ['[ip.web]\nip = 203.0.113.300\n', '[ip.web] ip "203.0.113.300" is not an IP address or block'],
      ['[ip.web]\nip = 198.51.100.7/24\n', '[ip.web] ip "198.51.100.7/24" has host bits set'],
      ['[ip.web]\nproject = t18s\n', '[ip.web] needs an ip = ADDRESS line'],
      ['[ip.web]\nip = 203.0.113.10\ntimeout = -1\n', '[ip.web] timeout must be a number'],
      [
        '[ip.203.0.113.10]\nip = 203.0.113.10\n',
        '[ip.203.0.113.10]: an entry name must not be an IP address',
      ],
      ['[ip.we$b]\nip = 203.0.113.10\n', 'entry name "we$b" has characters'],
    ]
    for (const [text, expected] of cases) {
      const path = write(text)
      expect(() => load(path), text).toThrow(IpmoveError)
      const message = usage(() => load(path))
      expect(message).toContain(path)
      expect(message).toContain(expected)
      expect(message).not.toContain('--ip')
    }
  })

  it('keeps secrets in [ovh] only in a private file, and registers them', () => {
    const secret = 'ConfigSecret0123456789ab'
    const text = `[ovh]\nendpoint = ovh-eu\napplication_key = AK\napplication_secret = ${secret}\nconsumer_key = CK12345\n`
    const open = write(text, 0o644)
    const message = usage(() => load(open))
    expect(message).toContain(`chmod 600 ${open}`)
    expect(message).toContain('0644')
    expect(message).not.toContain(secret)

    const config = load(write(text, 0o600))
    expect(config.providers.ovh).toEqual({
      endpoint: 'ovh-eu',
      application_key: 'AK',
      application_secret: secret,
      consumer_key: 'CK12345',
    })
    expect(redact(`x${secret}x`)).toBe('x***x')
  })

  it('refuses a config file anyone can write', () => {
    const path = write('project = t18s\n', 0o646)
    expect(usage(() => load(path))).toContain(`chmod o-w ${path}`)
  })
})

describe('resolveTarget', () => {
  let config: IpmoveConfig
  beforeEach(() => {
    config = load(
      write(`project = t18s
interface = eth0
timeout = 60

[ip.web]
ip = 203.0.113.10
instance = bi-edge-sbg-2
timeout = 30
label = web

[ip.db]
ip = 198.51.100.0/28
project = data

[ip.twin1]
ip = 192.0.2.1
[ip.twin2]
ip = 192.0.2.1/32
`),
    )
  })

  it('merges a named entry over the defaults', () => {
    expect(resolveTarget(config, { ip: 'web' })).toEqual({
      ip: { address: '203.0.113.10', prefix: 32, version: 4, block: '203.0.113.10/32' },
      name: 'web',
      project: 't18s',
      instance: 'bi-edge-sbg-2',
      interface: 'eth0',
      timeoutMs: 30_000,
      label: 'web',
    })
  })

  it('puts flags over the entry', () => {
    const target = resolveTarget(config, {
      ip: 'db',
      project: 'override',
      timeoutMs: 5000,
      interface: 'ens4',
    })
    expect(target).toMatchObject({ name: 'db', project: 'override', timeoutMs: 5000, interface: 'ens4' })
    expect(target.ip?.block).toBe('198.51.100.0/28')
  })

  it('finds the entry of an address given as such', () => {
    expect(resolveTarget(config, { ip: '203.0.113.10/32' })).toMatchObject({
      name: 'web',
      instance: 'bi-edge-sbg-2',
    })
    expect(resolveTarget(config, { ip: '203.0.113.99' })).toEqual({
      ip: { address: '203.0.113.99', prefix: 32, version: 4, block: '203.0.113.99/32' },
      project: 't18s',
      interface: 'eth0',
      timeoutMs: 60_000,
    })
    expect(usage(() => resolveTarget(config, { ip: '192.0.2.1' }))).toContain('several entries')
    expect(resolveTarget(config, { ip: 'twin2' }).name).toBe('twin2')
  })

  it('says when a name is no entry, and validates flags', () => {
    expect(usage(() => resolveTarget(config, { ip: 'mail' }))).toBe(
      `--ip "mail" is not an IP address or block, and there is no [ip.mail] entry in ${config.path}`,
    )
    expect(
      usage(() =>
        resolveTarget(
          { defaults: {}, providers: {}, ips: {}, watch: { sections: new Map(), lines: new Map() } },
          { ip: 'mail' },
        ),
      ),
    ).toContain('there is no config file')
    expect(usage(() => resolveTarget(config, { ip: '203.0.113.300' }))).toContain('--ip "203.0.113.300"')
    expect(usage(() => resolveTarget(config, { ip: 'web', project: 'x;y' }))).toContain('--project "x;y"')
    expect(usage(() => resolveTarget(config, { ip: 'web', instance: '' }))).toContain('--instance is empty')
    expect(usage(() => resolveTarget(config, { ip: 'web', interface: 'eth 0' }))).toContain(
      '--interface "eth 0"',
    )
    expect(usage(() => resolveTarget(config, { ip: 'web', provider: 'gcp' }))).toContain(
      'unknown provider "gcp"',
    )
    expect(usage(() => resolveTarget(config, { ip: 'web', timeoutMs: 0 }))).toContain('--timeout')
  })

  it('refuses an interface label longer than the kernel allows', () => {
    expect(usage(() => resolveTarget(config, { ip: 'web', interface: 'enp0s31f6abc' }))).toContain(
      'enp0s31f6abc:web is longer than the 15 characters',
    )
    expect(resolveTarget(config, { ip: 'web', interface: 'enp0s31f6abc', label: 'v' }).label).toBe('v')
  })
})
