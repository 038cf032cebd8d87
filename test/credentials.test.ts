import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import CredentialsSet from '../commands/credentials/set.js'
import { providerNamed } from '../providers/index.js'
import {
  type CredentialSources,
  checkCredentialSet,
  deleteOvhCredentials,
  parseCredentialLines,
  resolveOvhCredentials,
  setOvhCredentials,
} from '../providers/ovh/credentials.js'
import { parseOvhEndpoint } from '../providers/ovh/endpoints.js'
import { systemKeyring } from '../src/keyring.js'
import { MemoryLogger, redact } from '../src/output.js'
import { readSecretFile, readSettingsFile } from '../src/secure-file.js'
import { failure, failureSync } from './helpers/errors.js'
import { MemoryKeyring } from './helpers/memory-keyring.js'
import { describeRoot } from './rig/netns.js'

// Distinct, greppable secrets: no message may ever contain one of them.
const AS = 'AppSecret0123456789abcdef'
const CK = 'ConsumerKey0123456789abcd'
const CS = 'ClientSecret0123456789abc'
const AS2 = 'OtherAppSecret98765432100'
const SECRETS = [AS, CK, CS, AS2]

let root: string
let cwd: string
let home: string
let etc: string

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'ipmove-cred-'))
  cwd = join(root, 'work')
  home = join(root, 'home')
  etc = join(root, 'etc')
  for (const dir of [cwd, home, etc]) mkdirSync(dir)
})

afterEach(() => {
  rmSync(root, { recursive: true, force: true })
})

function write(path: string, text: string, mode = 0o600): string {
  writeFileSync(path, text)
  chmodSync(path, mode) // explicit: the umask must not decide the test
  return path
}

const appConf = (section: string, ak: string, as: string, ck: string) =>
  `[${section}]\napplication_key=${ak}\napplication_secret=${as}\nconsumer_key=${ck}\n`

const failureWith = (promise: Promise<unknown>) => failure(promise, SECRETS)
const failureSyncWith = (fn: () => unknown) => failureSync(fn, SECRETS)

function sources(extra: Partial<CredentialSources> = {}): CredentialSources {
  return { env: {}, cwd, home, etcDir: etc, keyring: null, ...extra }
}

describe('secure files', () => {
  it('refuses a secret file group or others can read, naming the file, its mode and the fix', () => {
    for (const mode of [0o644, 0o640, 0o604, 0o660]) {
      const path = write(join(home, 'secret.conf'), 'x', mode)
      const error = failureSyncWith(() => readSecretFile(path))
      expect(error.kind).toBe('usage')
      expect(error.message).toContain(path)
      expect(error.message).toContain(`0${mode.toString(8)}`)
      expect(error.message).toContain(`chmod 600 ${path}`)
    }
  })

  it('reads a private file and says undefined for a missing one', () => {
    const path = write(join(home, 'secret.conf'), 'hello', 0o600)
    expect(readSecretFile(path)).toBe('hello')
    write(path, 'owner only', 0o400)
    expect(readSecretFile(path)).toBe('owner only')
    expect(readSecretFile(join(home, 'missing.conf'))).toBeUndefined()
    expect(readSecretFile(join(home, 'missing-dir', 'x.conf'))).toBeUndefined()
  })

  it('refuses a file anyone may write, and anything but a regular file', () => {
    const path = write(join(home, 'settings.conf'), 'x', 0o666)
    const error = failureSyncWith(() => readSettingsFile(path))
    expect(error.message).toContain('writable by anyone (mode 0666)')
    expect(error.message).toContain(`chmod o-w ${path}`)
    expect(failureSyncWith(() => readSettingsFile(home)).message).toContain('not a regular file')
  })

  it.runIf(process.geteuid?.() === 0)('refuses a file owned by another non-root user', () => {
    const path = write(join(home, 'settings.conf'), 'x', 0o600)
    chownSync(path, 4242, 4242)
    const error = failureSyncWith(() => readSettingsFile(path))
    expect(error.kind).toBe('usage')
    expect(error.message).toContain('owned by uid 4242')
    chownSync(path, 0, 0)
    expect(readSettingsFile(path)?.text).toBe('x')
  })
})

describe('parseOvhEndpoint', () => {
  it('knows the endpoint names of go-ovh and python-ovh', () => {
    expect(parseOvhEndpoint('ovh-eu')).toEqual({
      endpointName: 'ovh-eu',
      baseUrl: 'https://eu.api.ovh.com/1.0',
      tokenUrl: 'https://www.ovh.com/auth/oauth2/token',
    })
    expect(parseOvhEndpoint('ovh-ca').tokenUrl).toBe('https://ca.ovh.com/auth/oauth2/token')
    expect(parseOvhEndpoint('ovh-us')).toMatchObject({
      baseUrl: 'https://api.us.ovhcloud.com/1.0',
      tokenUrl: 'https://us.ovhcloud.com/auth/oauth2/token',
    })
    expect(parseOvhEndpoint('kimsufi-eu')).toEqual({
      endpointName: 'kimsufi-eu',
      baseUrl: 'https://eu.api.kimsufi.com/1.0',
      tokenUrl: undefined,
    })
    expect(parseOvhEndpoint('kimsufi-ca').baseUrl).toBe('https://ca.api.kimsufi.com/1.0')
    expect(parseOvhEndpoint('soyoustart-eu').baseUrl).toBe('https://eu.api.soyoustart.com/1.0')
    expect(parseOvhEndpoint('soyoustart-ca').baseUrl).toBe('https://ca.api.soyoustart.com/1.0')
  })

  it('takes https URLs, and http only on loopback', () => {
    expect(parseOvhEndpoint('https://127.0.0.1:8443/1.0/')).toEqual({
      endpointName: 'https://127.0.0.1:8443/1.0/',
      baseUrl: 'https://127.0.0.1:8443/1.0',
      tokenUrl: 'https://127.0.0.1:8443/auth/oauth2/token',
    })
    // A URL spelling a known endpoint keeps that endpoint's token URL.
    expect(parseOvhEndpoint('https://eu.api.ovh.com/1.0').tokenUrl).toBe(
      'https://www.ovh.com/auth/oauth2/token',
    )
    expect(parseOvhEndpoint('http://localhost:8080/1.0').baseUrl).toBe('http://localhost:8080/1.0')
    expect(parseOvhEndpoint('http://[::1]:8080/1.0').baseUrl).toBe('http://[::1]:8080/1.0')
    expect(failureSyncWith(() => parseOvhEndpoint('http://api.example.com/1.0')).message).toMatch(
      /must be an https:\/\//,
    )
    expect(failureSyncWith(() => parseOvhEndpoint('ftp://127.0.0.1/1.0')).message).toMatch(
      /must be an https:\/\//,
    )
    expect(failureSyncWith(() => parseOvhEndpoint('https://user:pw@example.com/1.0')).message).toMatch(
      /credentials/,
    )
    expect(failureSyncWith(() => parseOvhEndpoint('https://example.com/1.0?x=1')).message).toMatch(/query/)
  })

  it('refuses names of Object.prototype as endpoints, with exit 2', () => {
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      expect(failureSyncWith(() => parseOvhEndpoint(name)).kind, name).toBe('usage')
    }
  })

  it('never repeats the password of an endpoint URL in its errors', () => {
    for (const url of [
      'https://ipmove:hunter2-endpoint-pw@example.com/1.0',
      'https://ipmove:hunter2-endpoint-pw@example.com:99999/1.0',
      'http://ipmove:hunter2-endpoint-pw@api.example.com/1.0',
    ]) {
      const error = failureSyncWith(() => parseOvhEndpoint(url))
      expect(error.kind).toBe('usage')
      expect(error.message).not.toContain('hunter2')
    }
  })

  it('refuses unknown names, listing the known ones', () => {
    const error = failureSyncWith(() => parseOvhEndpoint('ovh-mars'))
    expect(error.kind).toBe('usage')
    expect(error.message).toContain('"ovh-mars"')
    expect(error.message).toContain('ovh-eu, ovh-ca, ovh-us, kimsufi-eu')
  })
})

describeRoot('resolveOvhCredentials: ./ovh.conf planted by another user', () => {
  it('skips ./ovh.conf in a working directory others can write: a planted file neither blocks nor redirects', async () => {
    write(join(home, '.ovh.conf'), appConf('ovh-eu', 'homeAK', AS, CK))
    for (const [mode, owner] of [
      [0o1777, 0],
      [0o775, 0],
      [0o755, 65534],
    ] as const) {
      chownSync(cwd, owner, owner)
      chmodSync(cwd, mode)
      // Another user's plant: their endpoint, in a file root would refuse to trust.
      const planted = write(join(cwd, 'ovh.conf'), '[default]\nendpoint=ovh-us\n', 0o666)
      chownSync(planted, 65534, 65534)
      const log = new MemoryLogger()
      const credentials = await resolveOvhCredentials(sources({ log }))
      expect(credentials).toMatchObject({ endpointName: 'ovh-eu', applicationKey: 'homeAK' })
      expect(credentials.source).toBe(join(home, '.ovh.conf'))
      const why =
        owner === 0
          ? `${cwd} is writable by others (mode 0${mode.toString(8)})`
          : `${cwd} is owned by uid 65534, neither you nor root`
      expect(log.lines).toEqual([
        `warning: not reading ${planted}: ${why}; run ipmove from a directory only you and root can write`,
      ])
      rmSync(planted)
    }
  })
})

describe('resolveOvhCredentials: files', () => {
  it('reads /etc/ovh.conf, ~/.ovh.conf and ./ovh.conf, a later file winning key by key', async () => {
    write(join(etc, 'ovh.conf'), `[default]\nendpoint=ovh-ca\n\n${appConf('ovh-ca', 'etcAK', AS, 'etcCK')}`)
    write(join(home, '.ovh.conf'), `[ovh-ca]\nconsumer_key=${CK}\n`)
    write(join(cwd, 'ovh.conf'), '; local override\n[ovh-ca]\napplication_key=cwdAK\n', 0o644)
    const credentials = await resolveOvhCredentials(sources())
    expect(credentials).toEqual({
      kind: 'application',
      endpointName: 'ovh-ca',
      baseUrl: 'https://ca.api.ovh.com/1.0',
      applicationKey: 'cwdAK',
      applicationSecret: AS,
      consumerKey: CK,
      source: `${join(cwd, 'ovh.conf')}, ${join(home, '.ovh.conf')}, ${join(etc, 'ovh.conf')}`,
    })
  })

  it('says which ./ovh.conf it skipped when no credentials are found', async () => {
    chmodSync(cwd, 0o1777)
    const error = await failureWith(resolveOvhCredentials(sources({ log: new MemoryLogger() })))
    expect(error.kind).toBe('auth')
    expect(error.message).toContain(
      `(skipped ${join(cwd, 'ovh.conf')}: ${cwd} is writable by others (mode 01777))`,
    )
  })

  it('reads only the section of the endpoint in use, ovh-eu by default', async () => {
    write(join(home, '.ovh.conf'), appConf('ovh-eu', 'euAK', AS, CK) + appConf('ovh-us', 'usAK', AS2, CK))
    expect(await resolveOvhCredentials(sources())).toMatchObject({
      endpointName: 'ovh-eu',
      applicationKey: 'euAK',
    })
    const us = await resolveOvhCredentials(sources({ env: { OVH_ENDPOINT: 'ovh-us' } }))
    expect(us).toMatchObject({ endpointName: 'ovh-us', applicationKey: 'usAK', applicationSecret: AS2 })
  })

  it('takes an endpoint URL, with its section named after the URL as go-ovh does', async () => {
    const url = 'https://127.0.0.1:8443/1.0'
    write(join(home, '.ovh.conf'), `[default]\nendpoint=${url}\n${appConf(url, 'emuAK', AS, CK)}`)
    const credentials = await resolveOvhCredentials(sources())
    expect(credentials).toMatchObject({ endpointName: url, baseUrl: url, applicationKey: 'emuAK' })
  })

  it('refuses a world-readable ovh.conf holding secrets, but not one holding only the endpoint', async () => {
    const path = write(join(home, '.ovh.conf'), appConf('ovh-eu', 'AK', AS, CK), 0o644)
    const error = await failureWith(resolveOvhCredentials(sources()))
    expect(error.kind).toBe('usage')
    expect(error.message).toContain(`chmod 600 ${path}`)

    write(path, '[default]\nendpoint=ovh-ca\n', 0o644)
    const credentials = await resolveOvhCredentials(sources({ env: envApp('AK') }))
    expect(credentials.endpointName).toBe('ovh-ca')
  })

  it('only warns about a readable ovh.conf whose secrets are not used: the environment supplies every key', async () => {
    const path = write(join(cwd, 'ovh.conf'), appConf('ovh-eu', 'strayAK', AS2, 'strayCK'), 0o644)
    const log = new MemoryLogger()
    const credentials = await resolveOvhCredentials(sources({ env: envApp('AK'), log }))
    expect(credentials).toMatchObject({ applicationKey: 'AK', consumerKey: CK, source: 'env' })
    expect(log.lines).toEqual([
      `warning: ${path} holds secrets but group or others can access it (mode 0644); run: chmod 600 ${path} (its secrets are not used this time)`,
    ])
    // The moment one of its secrets would be used (the environment lacks the consumer key), it is refused.
    const { OVH_CONSUMER_KEY: _, ...partial } = envApp('AK')
    const error = await failureWith(resolveOvhCredentials(sources({ env: partial })))
    expect(error.kind).toBe('usage')
    expect(error.message).toContain(`chmod 600 ${path}`)
  })

  it('registers every secret it loads, so output redacts them', async () => {
    write(
      join(home, '.ovh.conf'),
      `${appConf('ovh-eu', 'AK', AS, CK)}[ovh-ca]\nclient_id=x\nclient_secret=${CS}\n`,
    )
    await resolveOvhCredentials(sources())
    expect(redact(`a ${AS} b ${CK} c ${CS}`)).toBe('a *** b *** c ***')
  })
})

const envApp = (ak: string) => ({ OVH_APPLICATION_KEY: ak, OVH_APPLICATION_SECRET: AS, OVH_CONSUMER_KEY: CK })

describe('resolveOvhCredentials: precedence', () => {
  it('follows the one documented order, as the README and `credentials set --help` state it', async () => {
    const { order } = providerNamed('ovh').credentials!
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
    expect(readme.replace(/\s+/g, ' ')).toContain(order)
    expect(CredentialsSet.description).toContain(order)

    // Every place holds a complete set; taking away the first one found shows the next, in that order.
    const keyring = new MemoryKeyring()
    keyring.entries.set(
      'ovh',
      JSON.stringify({ application_key: 'keyringAK', application_secret: AS, consumer_key: CK }),
    )
    const files = [join(cwd, 'ovh.conf'), join(home, '.ovh.conf'), join(etc, 'ovh.conf')]
    for (const [n, path] of files.entries()) write(path, appConf('ovh-eu', `file${n}AK`, AS, CK))
    let env: NodeJS.ProcessEnv = envApp('envAK')
    let config: CredentialSources['config'] = {
      path: 'ipmove.conf',
      values: { application_key: 'configAK', application_secret: AS, consumer_key: CK },
    }
    const seen: string[] = []
    const next = async () => {
      const credentials = await resolveOvhCredentials(sources({ env, config, keyring }))
      seen.push(credentials.kind === 'application' ? credentials.applicationKey : credentials.clientId)
    }
    await next()
    env = {}
    await next()
    config = undefined
    for (const path of files) {
      await next()
      rmSync(path)
    }
    await next()
    expect(seen).toEqual(['envAK', 'configAK', 'file0AK', 'file1AK', 'file2AK', 'keyringAK'])
    expect(order.indexOf('OVH_*')).toBeLessThan(order.indexOf('[ovh] section'))
    expect(order.indexOf('[ovh] section')).toBeLessThan(
      order.indexOf('./ovh.conf, ~/.ovh.conf and /etc/ovh.conf'),
    )
    expect(order.indexOf('/etc/ovh.conf')).toBeLessThan(order.indexOf('keyring'))
  })

  it('puts the environment over the files, and the overrides over both', async () => {
    write(
      join(home, '.ovh.conf'),
      `[default]\nendpoint=ovh-ca\n${appConf('ovh-ca', 'fileAK', AS2, 'fileCK')}`,
    )
    const fromEnv = await resolveOvhCredentials(sources({ env: { OVH_CONSUMER_KEY: CK } }))
    expect(fromEnv).toMatchObject({ applicationKey: 'fileAK', applicationSecret: AS2, consumerKey: CK })
    expect(fromEnv.source).toBe(`env, ${join(home, '.ovh.conf')}`)

    const overridden = await resolveOvhCredentials(
      sources({
        env: { OVH_CONSUMER_KEY: CK, OVH_ENDPOINT: 'ovh-us' },
        overrides: { endpoint: 'ovh-ca', applicationSecret: AS },
      }),
    )
    expect(overridden).toMatchObject({ endpointName: 'ovh-ca', applicationSecret: AS, consumerKey: CK })
    expect(overridden.source).toBe(`flags, env, ${join(home, '.ovh.conf')}`)
  })

  it('ranks ipmove.conf [ovh] below the environment and above ovh.conf', async () => {
    write(join(cwd, 'ovh.conf'), appConf('ovh-eu', 'cwdAK', AS2, 'cwdCK'))
    const config = { path: '/etc/ipmove/ipmove.conf', values: { application_key: 'cfgAK', consumer_key: CK } }
    const credentials = await resolveOvhCredentials(sources({ config, env: { OVH_CONSUMER_KEY: 'envCK' } }))
    expect(credentials).toMatchObject({
      applicationKey: 'cfgAK',
      applicationSecret: AS2,
      consumerKey: 'envCK',
    })
    expect(credentials.source).toBe(`env, /etc/ipmove/ipmove.conf, ${join(cwd, 'ovh.conf')}`)
    const endpoint = await resolveOvhCredentials(
      sources({ config: { values: { ...config.values, endpoint: 'ovh-us' } }, env: envApp('AK') }),
    )
    expect(endpoint.endpointName).toBe('ovh-us')
  })

  it('uses OAuth2 client credentials, with the token URL of the endpoint', async () => {
    const credentials = await resolveOvhCredentials(
      sources({ env: { OVH_ENDPOINT: 'ovh-us', OVH_CLIENT_ID: 'EU.clientid', OVH_CLIENT_SECRET: CS } }),
    )
    expect(credentials).toEqual({
      kind: 'oauth2',
      endpointName: 'ovh-us',
      baseUrl: 'https://api.us.ovhcloud.com/1.0',
      tokenUrl: 'https://us.ovhcloud.com/auth/oauth2/token',
      clientId: 'EU.clientid',
      clientSecret: CS,
      source: 'env',
    })
    const emulator = await resolveOvhCredentials(
      sources({ overrides: { endpoint: 'https://127.0.0.1:9443/1.0', clientId: 'id', clientSecret: CS } }),
    )
    expect(emulator).toMatchObject({ kind: 'oauth2', tokenUrl: 'https://127.0.0.1:9443/auth/oauth2/token' })
  })

  it('lets the higher source choose the method when both are configured', async () => {
    write(join(home, '.ovh.conf'), appConf('ovh-eu', 'AK', AS, CK))
    const oauth = await resolveOvhCredentials(
      sources({ env: { OVH_CLIENT_ID: 'id', OVH_CLIENT_SECRET: CS } }),
    )
    expect(oauth.kind).toBe('oauth2')
    // A half-given higher method is an error, not a silent fall back to the other one.
    const error = await failureWith(resolveOvhCredentials(sources({ env: { OVH_CLIENT_ID: 'id' } })))
    expect(error.kind).toBe('auth')
    expect(error.message).toContain('client_secret missing')
    expect(error.message).toContain('OVH_CLIENT_SECRET')
  })

  it('refuses both methods in one source, as the OVH SDKs do', async () => {
    const path = write(
      join(home, '.ovh.conf'),
      `${appConf('ovh-eu', 'AK', AS, CK)}client_id=id\nclient_secret=${CS}\n`,
    )
    const error = await failureWith(resolveOvhCredentials(sources()))
    expect(error.kind).toBe('usage')
    expect(error.message).toContain(path)
    expect(error.message).toContain('keep one method')
  })

  it('refuses OAuth2 on an endpoint that has none', async () => {
    const error = await failureWith(
      resolveOvhCredentials(
        sources({ env: { OVH_ENDPOINT: 'kimsufi-eu', OVH_CLIENT_ID: 'id', OVH_CLIENT_SECRET: CS } }),
      ),
    )
    expect(error.kind).toBe('usage')
    expect(error.message).toContain('kimsufi-eu offers no OAuth2')
  })

  it('names the missing values and where it looked, never a secret', async () => {
    write(
      join(etc, 'ovh.conf'),
      `[ovh-eu]\napplication_secret=${AS}\n[ovh-ca]\nclient_id=id\nclient_secret=${CS}\n`,
    )
    const error = await failureWith(resolveOvhCredentials(sources({ env: { OVH_APPLICATION_KEY: 'AK' } })))
    expect(error.kind).toBe('auth')
    expect(error.message).toContain('consumer_key missing')
    expect(error.message).toContain(`application_secret from ${join(etc, 'ovh.conf')}`)
    expect(error.message).toContain('OVH_CONSUMER_KEY')
    expect(error.details).toEqual({ missing: ['consumer_key'] })

    rmSync(join(etc, 'ovh.conf'))
    const none = await failureWith(resolveOvhCredentials(sources()))
    expect(none.kind).toBe('auth')
    for (const where of [
      join(cwd, 'ovh.conf'),
      join(home, '.ovh.conf'),
      join(etc, 'ovh.conf'),
      'OVH_APPLICATION_KEY',
    ]) {
      expect(none.message).toContain(where)
    }
    expect(none.message).toContain('no keyring')
    expect(none.message).toContain('ipmove credentials set ovh')
  })

  it('refuses values with spaces or control characters without showing them', async () => {
    const bad = `${AS}\r\nX-Injected: 1`
    const error = await failureWith(
      resolveOvhCredentials(sources({ env: { ...envApp('AK'), OVH_APPLICATION_SECRET: bad } })),
    )
    expect(error.kind).toBe('usage')
    expect(error.message).toContain('application_secret from env')
    expect(error.message).not.toContain('Injected')
  })

  it('refuses an invalid endpoint, naming where it came from', async () => {
    write(join(home, '.ovh.conf'), '[default]\nendpoint=http://api.example.com/1.0\n')
    const error = await failureWith(resolveOvhCredentials(sources({ env: envApp('AK') })))
    expect(error.kind).toBe('usage')
    expect(error.message).toContain(`${join(home, '.ovh.conf')} [default] endpoint`)
  })
})

describe('resolveOvhCredentials: keyring', () => {
  const stored = (entry: object) => {
    const keyring = new MemoryKeyring()
    keyring.entries.set('ovh', JSON.stringify(entry))
    return keyring
  }

  it('is read only when nothing else holds credentials', async () => {
    const keyring = stored({
      endpoint: 'ovh-ca',
      application_key: 'krAK',
      application_secret: AS2,
      consumer_key: 'krCK',
    })
    const fromEnv = await resolveOvhCredentials(sources({ env: envApp('envAK'), keyring }))
    expect(fromEnv.source).toBe('env')
    expect(keyring.gets).toBe(0)

    const fromKeyring = await resolveOvhCredentials(sources({ keyring }))
    expect(keyring.gets).toBe(1)
    expect(fromKeyring).toEqual({
      kind: 'application',
      endpointName: 'ovh-ca',
      baseUrl: 'https://ca.api.ovh.com/1.0',
      applicationKey: 'krAK',
      applicationSecret: AS2,
      consumerKey: 'krCK',
      source: 'keyring',
    })
    expect(redact(AS2)).toBe('***')
  })

  it('does not complete a partial set from the keyring', async () => {
    const keyring = stored({
      endpoint: 'ovh-eu',
      application_key: 'krAK',
      application_secret: AS2,
      consumer_key: 'krCK',
    })
    const error = await failureWith(
      resolveOvhCredentials(sources({ env: { OVH_APPLICATION_KEY: 'AK' }, keyring })),
    )
    expect(error.kind).toBe('auth')
    expect(keyring.gets).toBe(0)
  })

  it('ignores a stored set for another endpoint than the configured one', async () => {
    const keyring = stored({ endpoint: 'ovh-ca', client_id: 'id', client_secret: CS })
    const error = await failureWith(
      resolveOvhCredentials(sources({ env: { OVH_ENDPOINT: 'ovh-eu' }, keyring })),
    )
    expect(error.message).toContain('holds ovh-ca, not ovh-eu')
    const same = await resolveOvhCredentials(sources({ env: { OVH_ENDPOINT: 'ovh-ca' }, keyring }))
    expect(same).toMatchObject({
      kind: 'oauth2',
      clientSecret: CS,
      tokenUrl: 'https://ca.ovh.com/auth/oauth2/token',
    })
  })

  it('treats an unavailable keyring as empty, and says so', async () => {
    const error = await failureWith(resolveOvhCredentials(sources({ keyring: new MemoryKeyring(true) })))
    expect(error.kind).toBe('auth')
    expect(error.message).toContain('the test keyring (unavailable: no D-Bus session)')
  })

  it('reports a corrupt or incomplete entry', async () => {
    const corrupt = new MemoryKeyring()
    corrupt.entries.set('ovh', 'not json')
    expect((await failureWith(resolveOvhCredentials(sources({ keyring: corrupt })))).message).toContain(
      'is not valid',
    )
    const partial = stored({ endpoint: 'ovh-eu', application_key: 'AK', application_secret: AS })
    const error = await failureWith(resolveOvhCredentials(sources({ keyring: partial })))
    expect(error.kind).toBe('auth')
    expect(error.message).toContain('lacks consumer_key')
  })
})

describe('credentials set / delete', () => {
  it('parses KEY=VALUE lines, skipping comments, and never quotes a bad line', () => {
    expect(
      parseCredentialLines(`# ovh\n\nendpoint = ovh-ca\r\napplication_key=AK\napplication_secret=${AS}\n`),
    ).toEqual({ endpoint: 'ovh-ca', application_key: 'AK', application_secret: AS })
    const error = failureSyncWith(() => parseCredentialLines(`application_key=AK\n${CK}\n`))
    expect(error.message).toContain('input line 2')
    expect(failureSyncWith(() => parseCredentialLines(`secret=${AS}`)).message).toContain('input line 1')
  })

  it('checks a set is complete and of one method', () => {
    expect(
      JSON.parse(checkCredentialSet({ application_key: 'AK', application_secret: AS, consumer_key: CK })),
    ).toEqual({ endpoint: 'ovh-eu', application_key: 'AK', application_secret: AS, consumer_key: CK })
    expect(
      failureSyncWith(() => checkCredentialSet({ application_key: 'AK', application_secret: AS })).message,
    ).toBe('consumer_key is missing')
    const both = failureSyncWith(() =>
      checkCredentialSet({
        application_key: 'AK',
        application_secret: AS,
        consumer_key: CK,
        client_secret: CS,
      }),
    )
    expect(both.message).toContain('not both')
    expect(failureSyncWith(() => checkCredentialSet({ endpoint: 'ovh-eu' })).message).toContain(
      'no credentials',
    )
    const kimsufi = failureSyncWith(() =>
      checkCredentialSet({ endpoint: 'kimsufi-ca', client_id: 'i', client_secret: CS }),
    )
    expect(kimsufi.message).toContain('offers no OAuth2')
  })

  it('stores what stdin gives in the form resolution reads back', async () => {
    const keyring = new MemoryKeyring()
    const input = new PassThrough()
    input.end(`client_id=EU.id\nclient_secret=${CS}\n`)
    const result = await setOvhCredentials({
      input,
      prompts: new PassThrough(),
      endpoint: 'ovh-ca',
      oauth2: false,
      keyring,
    })
    expect(result).toEqual({ endpointName: 'ovh-ca' })
    const credentials = await resolveOvhCredentials(sources({ keyring }))
    expect(credentials).toMatchObject({
      kind: 'oauth2',
      endpointName: 'ovh-ca',
      clientId: 'EU.id',
      clientSecret: CS,
    })
    expect(await deleteOvhCredentials(keyring)).toBe(true)
    expect(await deleteOvhCredentials(keyring)).toBe(false)
  })

  it('fails with exit 2 and a way out when no keyring works', async () => {
    const input = new PassThrough()
    input.end(`application_key=AK\napplication_secret=${AS}\nconsumer_key=${CK}\n`)
    const keyring = new MemoryKeyring(true)
    const error = await failureWith(
      setOvhCredentials({ input, prompts: new PassThrough(), oauth2: false, keyring }),
    )
    expect(error.kind).toBe('usage')
    expect(error.message).toContain('unavailable (no D-Bus session)')
    expect(error.message).toContain('/etc/ovh.conf')
    expect((await failureWith(deleteOvhCredentials(keyring))).kind).toBe('usage')
  })

  it('refuses empty input', async () => {
    const input = new PassThrough()
    input.end('# nothing\n')
    const error = await failureWith(
      setOvhCredentials({ input, prompts: new PassThrough(), oauth2: false, keyring: new MemoryKeyring() }),
    )
    expect(error.message).toBe('no credentials on standard input')
  })
})

describe('the real OS keyring (@napi-rs/keyring)', () => {
  it('stores, reads back and deletes an entry when a keyring backend works here', async (context) => {
    const keyring = systemKeyring()
    const account = `test-${process.pid}`
    try {
      await keyring.get(account)
    } catch (error) {
      // CI provides a Secret Service (.ci/with-keyring) and requires this test to run.
      if (process.env.IPMOVE_REQUIRE_KEYRING === '1') throw error
      context.skip(`no usable OS keyring here: ${(error as Error).message}`)
      return
    }
    try {
      await keyring.set(account, '{"probe":true}')
      expect(await keyring.get(account)).toBe('{"probe":true}')
      expect(await keyring.delete(account)).toBe(true)
      expect(await keyring.get(account)).toBeUndefined()
    } finally {
      await keyring.delete(account).catch(() => false)
    }
  })
})
