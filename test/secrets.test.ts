/**
 * Known secrets in every source ipmove reads (env, ./ovh.conf, ~/.ovh.conf,
 * ipmove.conf, the keyring, an OAuth2 client and the token it gets), every
 * command run in-process through oclif, against API answers that echo the
 * request's headers back; every output channel (stdout, stderr, --json, the
 * argv handed to logger(1)) is searched for every form of every secret.
 */
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import nock from 'nock'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import AliasShow from '../commands/alias/show.js'
import AwsPolicy from '../commands/aws/policy.js'
import CredentialsDelete from '../commands/credentials/delete.js'
import CredentialsSet from '../commands/credentials/set.js'
import Move from '../commands/move.js'
import OvhCredential from '../commands/ovh/credential.js'
import Release from '../commands/release.js'
import Status from '../commands/status.js'
import { isolatedEnv } from './helpers/cli.js'

const { syslogCalls, keyringStore } = vi.hoisted(() => ({
  syslogCalls: [] as string[][],
  keyringStore: new Map<string, string>(),
}))

// logger(1) is recorded, not run: its argv is one of the channels searched.
vi.mock('node:child_process', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:child_process')>()
  const { EventEmitter } = await import('node:events')
  return {
    ...actual,
    spawn: (command: string, args: string[], options: object) => {
      if (command !== 'logger') return actual.spawn(command, args, options)
      syslogCalls.push(args)
      return Object.assign(new EventEmitter(), { unref() {} })
    },
  }
})

// The OS keyring, replaced by an in-memory one (this file tests what reaches the output, not D-Bus).
vi.mock('../src/keyring.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../src/keyring.js')>()
  const fake = {
    description: 'the test keyring',
    get: async (account: string) => keyringStore.get(account),
    set: async (account: string, value: string) => {
      keyringStore.set(account, value)
    },
    delete: async (account: string) => keyringStore.delete(account),
  }
  return { ...actual, systemKeyring: () => fake }
})

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** Each secret carries a marker that survives JSON and percent encoding, and a `"` and a `\`. */
const SECRETS = {
  appSecret: 'Mk1AppSecret"q\\b-as',
  consumerKey: 'Mk2ConsumerKey"q\\b-ck',
  clientSecret: 'Mk3ClientSecret"q\\b-cs',
  token: 'Mk4BearerToken-from-oauth2',
  awsSecret: 'Mk5AwsSecretAccessKey/q+b=aws0123456789',
  awsSession: 'Mk6AwsSessionToken/q+b=',
  urlPassword: 'Mk7UrlPassword',
  newConsumerKey: 'Mk8NewConsumerKey"q\\b-nk',
} as const
const MARKERS = Object.values(SECRETS).map((s) => s.slice(0, 4))
const APP_KEY = 'ipmove-app-key-1'
const CLIENT_ID = 'EU.ipmove-client'
const BASIC = Buffer.from(
  `${encodeURIComponent(CLIENT_ID)}:${encodeURIComponent(SECRETS.clientSecret)}`,
).toString('base64')

/** The forms searched for: the markers find raw, JSON-escaped and percent-encoded text; then base64. */
function leaks(text: string): string[] {
  const found = MARKERS.filter((marker) => text.includes(marker))
  for (const secret of Object.values(SECRETS)) {
    for (const form of [Buffer.from(secret).toString('base64'), JSON.stringify(secret).slice(1, -1)]) {
      if (text.includes(form)) found.push(form)
    }
  }
  if (text.includes(BASIC)) found.push('the Basic header')
  return found
}

/** Everything the request carried, in three spellings an API might echo it in. */
function echo(headers: Record<string, unknown>, body: unknown): string {
  const text = JSON.stringify({ headers, body })
  return `refused ${text} ${encodeURIComponent(text)} ${Object.values(headers).join(' ')}\n\x1b[31mipmove: error: forged`
}

function echoingOvh(): void {
  const api = nock('https://eu.api.ovh.com').persist()
  api.get('/1.0/auth/time').reply(200, () => String(Math.round(Date.now() / 1000)))
  for (const method of ['get', 'post', 'put', 'delete'] as const) {
    api[method](/^\/1\.0\/(?!auth\/time)/).reply(function (_uri, body) {
      return [403, { message: echo(this.req.headers, body), errorCode: 'INVALID_CREDENTIAL' }]
    })
  }
  nock('https://www.ovh.com')
    .persist()
    .post('/auth/oauth2/token')
    .reply(200, { access_token: SECRETS.token, token_type: 'Bearer', expires_in: 3600 })
}

function echoingEc2(): void {
  nock('https://ec2.eu-west-3.amazonaws.com')
    .persist()
    .post('/')
    .reply(function (_uri, body) {
      const message = echo(this.req.headers, body).replace(/[<&>]/g, ' ')
      return [
        401,
        `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>AuthFailure</Code><Message>${message}</Message></Error></Errors><RequestID>r-1</RequestID></Response>`,
        { 'Content-Type': 'text/xml' },
      ]
    })
}

const OVH_CONF = [
  '[default]',
  'endpoint = ovh-eu',
  '[ovh-eu]',
  `application_key = ${APP_KEY}`,
  `application_secret = ${SECRETS.appSecret}`,
  `consumer_key = ${SECRETS.consumerKey}`,
  '',
].join('\n')

const IPMOVE_CONF = [
  '[ovh]',
  `application_key = ${APP_KEY}`,
  `application_secret = ${SECRETS.appSecret}`,
  `consumer_key = ${SECRETS.consumerKey}`,
  '',
].join('\n')

interface Source {
  name: string
  /** Sets the environment and files up in `dir`; returns the environment. */
  setup(dir: string): NodeJS.ProcessEnv
}

function privateFile(path: string, text: string): void {
  writeFileSync(path, text)
  chmodSync(path, 0o600)
}

const OVH_SOURCES: Source[] = [
  {
    name: 'env',
    setup: () =>
      isolatedEnv({
        OVH_ENDPOINT: 'ovh-eu',
        OVH_APPLICATION_KEY: APP_KEY,
        OVH_APPLICATION_SECRET: SECRETS.appSecret,
        OVH_CONSUMER_KEY: SECRETS.consumerKey,
      }),
  },
  {
    name: '~/.ovh.conf',
    setup: () => {
      const env = isolatedEnv()
      privateFile(join(env.HOME!, '.ovh.conf'), OVH_CONF)
      return env
    },
  },
  {
    name: './ovh.conf',
    setup: (dir) => {
      privateFile(join(dir, 'ovh.conf'), OVH_CONF)
      return isolatedEnv()
    },
  },
  {
    name: 'ipmove.conf [ovh]',
    setup: () => {
      const env = isolatedEnv()
      privateFile(env.IPMOVE_CONFIG!, IPMOVE_CONF)
      return env
    },
  },
  {
    name: 'the keyring',
    setup: () => {
      keyringStore.set(
        'ovh',
        JSON.stringify({
          endpoint: 'ovh-eu',
          application_key: APP_KEY,
          application_secret: SECRETS.appSecret,
          consumer_key: SECRETS.consumerKey,
        }),
      )
      return isolatedEnv()
    },
  },
  {
    name: 'OAuth2 (env)',
    setup: () =>
      isolatedEnv({
        OVH_ENDPOINT: 'ovh-eu',
        OVH_CLIENT_ID: CLIENT_ID,
        OVH_CLIENT_SECRET: SECRETS.clientSecret,
      }),
  },
  {
    name: 'OAuth2 (ipmove.conf)',
    setup: () => {
      const env = isolatedEnv()
      privateFile(
        env.IPMOVE_CONFIG!,
        `[ovh]\nclient_id = ${CLIENT_ID}\nclient_secret = ${SECRETS.clientSecret}\n`,
      )
      return env
    },
  },
  {
    name: 'an endpoint URL with a password',
    setup: () =>
      isolatedEnv({
        OVH_ENDPOINT: `https://ipmove:${SECRETS.urlPassword}@eu.api.ovh.com/1.0`,
        OVH_APPLICATION_KEY: APP_KEY,
        OVH_APPLICATION_SECRET: SECRETS.appSecret,
        OVH_CONSUMER_KEY: SECRETS.consumerKey,
      }),
  },
]

const AWS_SOURCE: Source = {
  name: 'AWS env keys and session token',
  setup: () =>
    isolatedEnv({
      AWS_ACCESS_KEY_ID: 'AKIAIPMOVESECRETS001',
      AWS_SECRET_ACCESS_KEY: SECRETS.awsSecret,
      AWS_SESSION_TOKEN: SECRETS.awsSession,
      AWS_REGION: 'eu-west-3',
      AWS_EC2_METADATA_DISABLED: 'true',
    }),
}

type CommandClass = { run(argv: string[], root: string): Promise<unknown> }

interface Run {
  code: number
  channels: string
}

const MODES: string[][] = [[], ['--json'], ['--syslog', '--debug']]
/** --syslog is only on the commands hooks run (move, status, release, alias add/remove). */
const noSyslog = (mode: string[]) => mode.filter((flag) => flag !== '--syslog')

function replaceEnv(env: NodeJS.ProcessEnv): void {
  for (const key of Object.keys(process.env)) delete process.env[key]
  Object.assign(process.env, env)
}

/** Run one command in-process with `env` as the whole environment and `dir` as the working directory. */
async function run(
  command: CommandClass,
  argv: string[],
  env: NodeJS.ProcessEnv,
  dir: string,
  stdin = '',
): Promise<Run> {
  const saved = { env: { ...process.env }, cwd: process.cwd(), stdin: process.stdin }
  let printed = ''
  const capture = (chunk: unknown) => {
    printed += String(chunk)
    return true
  }
  const out = vi.spyOn(process.stdout, 'write').mockImplementation(capture)
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(capture)
  syslogCalls.length = 0
  // The same object, emptied and refilled: os.homedir() reads the C environment it mirrors.
  replaceEnv(env)
  process.chdir(dir)
  Object.defineProperty(process, 'stdin', { value: Readable.from([stdin]), configurable: true })
  let code = 0
  try {
    await command.run(argv, ROOT)
  } catch (error) {
    const exit = (error as { oclif?: { exit?: number } }).oclif?.exit
    if (exit === undefined) throw error
    code = exit
  } finally {
    out.mockRestore()
    err.mockRestore()
    replaceEnv(saved.env)
    process.chdir(saved.cwd)
    Object.defineProperty(process, 'stdin', { value: saved.stdin, configurable: true })
    process.exitCode = undefined
  }
  return { code, channels: `${printed}\n${syslogCalls.map((args) => args.join(' ')).join('\n')}` }
}

let runs = 0

async function expectNoLeak(
  command: CommandClass,
  argv: string[],
  source: Source,
  stdin?: string,
): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'ipmove-secrets-'))
  keyringStore.clear()
  const env = source.setup(dir)
  const result = await run(command, argv, env, dir, stdin)
  runs++
  expect(leaks(result.channels), `${source.name}: ipmove ${argv.join(' ')}\n${result.channels}`).toEqual([])
  // An echoed newline never starts a line of its own.
  expect(result.channels).not.toMatch(/\nipmove: error: forged/)
  return result
}

beforeAll(() => {
  nock.disableNetConnect()
})
afterEach(() => {
  nock.cleanAll()
})
afterAll(() => {
  nock.enableNetConnect()
  console.log(`secrets: ${runs} command runs, no secret in any channel`)
})

const IP = '203.0.113.10'

describe('no secret reaches any output channel', () => {
  for (const source of OVH_SOURCES) {
    it(`OVH, credentials from ${source.name}: move and status, as text, --json and --syslog --debug`, async () => {
      const codes: number[] = []
      for (const mode of MODES) {
        echoingOvh()
        codes.push(
          (
            await expectNoLeak(
              Move,
              ['--ip', IP, '--project', 't18s', '--instance', 'web-2', ...mode],
              source,
            )
          ).code,
        )
        echoingOvh()
        codes.push((await expectNoLeak(Status, ['--ip', IP, '--project', 't18s', ...mode], source)).code)
      }
      // The API refused (exit 3), or the endpoint was (exit 2): every run reached its error path.
      expect(new Set(codes)).toEqual(new Set([source.name.includes('password') ? 2 : 3]))
    })
  }

  it('AWS, keys and a session token from env: move and status against an EC2 that echoes headers', async () => {
    for (const mode of MODES) {
      for (const [command, argv] of [
        [Move, ['--provider', 'aws', '--ip', IP, '--instance', 'i-0123456789abcdef0']],
        [Status, ['--provider', 'aws', '--ip', IP]],
      ] as const) {
        echoingEc2()
        const result = await expectNoLeak(command, [...argv, ...mode], AWS_SOURCE)
        expect(result.code).toBe(3)
      }
    }
  })

  it('credentials set and delete: stored, refused input (a secret on a wrong line), both methods at once', async () => {
    const none: Source = { name: 'stdin', setup: () => isolatedEnv() }
    const good = `application_key=${APP_KEY}\napplication_secret=${SECRETS.appSecret}\nconsumer_key=${SECRETS.consumerKey}\n`
    for (const mode of MODES.map(noSyslog)) {
      expect((await expectNoLeak(CredentialsSet, ['ovh', ...mode], none, good)).code).toBe(0)
      expect(
        (await expectNoLeak(CredentialsSet, ['ovh', ...mode], none, `${good}${SECRETS.clientSecret}\n`)).code,
      ).toBe(2)
      const both = `${good}client_id=${CLIENT_ID}\nclient_secret=${SECRETS.clientSecret}\n`
      expect((await expectNoLeak(CredentialsSet, ['ovh', ...mode], none, both)).code).toBe(2)
      const badUrl = `endpoint=https://u:${SECRETS.urlPassword}@x.example/1.0\n${good}`
      expect((await expectNoLeak(CredentialsSet, ['ovh', ...mode], none, badUrl)).code).toBe(2)
      expect((await expectNoLeak(CredentialsDelete, ['ovh', ...mode], OVH_SOURCES[4]!)).code).toBe(0)
    }
  })

  it('ovh credential: the new consumer key and the application secret reach no channel, stored or refused', async () => {
    const env = OVH_SOURCES[0]!
    for (const mode of MODES.map(noSyslog)) {
      for (const store of [['--keyring'], ['--ovh-conf', 'new-ovh.conf']]) {
        nock.cleanAll() // the echoing API of the round before
        nock('https://eu.api.ovh.com').post('/1.0/auth/credential').reply(200, {
          validationUrl: 'https://eu.api.ovh.com/auth/?credentialToken=Token0123',
          consumerKey: SECRETS.newConsumerKey,
          state: 'pendingValidation',
        })
        const made = await expectNoLeak(OvhCredential, ['--ip', '198.51.100.7', ...store, ...mode], env)
        expect(made.code, made.channels).toBe(0)
        expect(made.channels).toContain('credentialToken=Token0123')
        if (store[0] === '--keyring') expect(keyringStore.get('ovh')).toContain('Mk8NewConsumerKey')
      }
      echoingOvh()
      const refused = await expectNoLeak(OvhCredential, ['--ip', '198.51.100.7', '--keyring', ...mode], env)
      expect(refused.code).toBe(3)
    }
  })

  it('commands that need no API, with secrets in the config and a secret pasted on a line of its own', async () => {
    const pasted: Source = {
      name: 'ipmove.conf with a pasted secret',
      setup: () => {
        const env = isolatedEnv()
        privateFile(env.IPMOVE_CONFIG!, `${IPMOVE_CONF}${SECRETS.clientSecret}\n`)
        return env
      },
    }
    const shadow: Source = {
      name: '--config pointing at a secret file',
      setup: (dir) => {
        mkdirSync(join(dir, 'etc'))
        privateFile(join(dir, 'etc', 'shadow'), `root:${SECRETS.urlPassword}:19700:0:99999:7:::\n`)
        return isolatedEnv({ IPMOVE_CONFIG: join(dir, 'etc', 'shadow') })
      },
    }
    for (const mode of MODES) {
      for (const source of [OVH_SOURCES[3]!, pasted, shadow]) {
        await expectNoLeak(Release, ['--ip', '192.0.2.1', '--interface', 'ipmv-none0', ...mode], source)
        await expectNoLeak(AliasShow, ['--interface', 'ipmv-none0', ...noSyslog(mode)], source)
        await expectNoLeak(AwsPolicy, noSyslog(mode), source)
        echoingOvh()
        const move = await expectNoLeak(Move, ['--ip', IP, '--instance', 'web-2', ...mode], source)
        expect(move.code).toBe(source === OVH_SOURCES[3] ? 3 : 2)
      }
    }
  })
})
