/**
 * Hostile input, generated: every flag, environment variable and config field
 * gets NUM_RUNS values from fast-check, run through the services the commands
 * call (in-process, so it takes seconds). Each must end in a one-line
 * IpmoveError with a documented exit code (exit 2 for values the field's own
 * validator refuses), never a stack trace, an HTTP request (nock refuses the
 * network and records any attempt) or a child process (child_process is
 * replaced by recorders).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setImmediate } from 'node:timers/promises'
import fc from 'fast-check'
import nock from 'nock'
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { parseAwsSettings } from '../providers/aws/settings.js'
import { providerNamed } from '../providers/index.js'
import { checkCredentialSet } from '../providers/ovh/credentials.js'
import { parseOvhEndpoint } from '../providers/ovh/endpoints.js'
import { checkLabel, LocalAddress, removeAlias } from '../src/alias/service.js'
import { normalizeArgv, VALUE_FLAGS } from '../src/argv.js'
import { loadConfig, resolveTarget } from '../src/config.js'
import { IpmoveError } from '../src/errors.js'
import { ExitCode, exitOf } from '../src/exit-codes.js'
import { forgetSecrets, MemoryLogger, printable } from '../src/output.js'
import { moveIp } from '../src/services/move.js'
import { prepare, type TargetOptions } from '../src/services/target.js'
import { parseIp, parseSeconds, validateInterface, validateName } from '../src/validate.js'

const { spawned } = vi.hoisted(() => ({ spawned: [] as string[] }))

// Any child process is recorded and refused: no input in this file may start one.
vi.mock('node:child_process', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:child_process')>()
  const refuse =
    (name: string) =>
    (command: string, ...rest: unknown[]) => {
      spawned.push(`${name} ${command} ${JSON.stringify(rest[0])}`)
      throw new Error(`${name}(${command}) in a property test`)
    }
  return {
    ...actual,
    spawn: refuse('spawn'),
    execFile: refuse('execFile'),
    exec: refuse('exec'),
    fork: refuse('fork'),
    spawnSync: refuse('spawnSync'),
    execFileSync: refuse('execFileSync'),
    execSync: refuse('execSync'),
  }
})

const NUM_RUNS = Number(process.env.IPMOVE_PROPERTY_RUNS ?? 10_000)
const requests: string[] = []
const counts: string[] = []

const cwd = process.cwd()
beforeAll(() => {
  // Relative paths from generated values (IPMOVE_CACHE_DIR=x) land in the scratch directory.
  process.chdir(dir)
  nock.disableNetConnect()
  nock.emitter.on('no match', (request: { href?: string; path?: string }) => {
    requests.push(String(request.href ?? request.path))
  })
})
beforeEach(() => {
  spawned.length = 0
  requests.length = 0
})
afterAll(() => {
  process.chdir(cwd)
  rmSync(dir, { recursive: true, force: true })
  nock.enableNetConnect()
  console.log(`properties:\n${counts.join('\n')}`)
})

// ---- generators -----------------------------------------------------------------------------

const SPECIALS = '-_.:/@%\\"\'`$;|&<>()[]{}#=+*?! \t\n\r\v\f\x00\x1b\x7f\x85\x9b\u00a0\u2028\u2029\ufeffaZ09'
const NAMED = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  '--help',
  '-h',
  '--version',
  '--json',
  '-project',
  '0x10',
  '+5',
  '5.',
  '.5',
  '1e-9',
  '1e3',
  '-1',
  '0',
  'Infinity',
  'NaN',
  '0.0.0.0/0',
  '::/0',
  '255.255.255.255',
  '224.0.0.1',
  '192.0.2.1/33',
  '192.0.2.1/24',
  '2001:db8::1%eth0',
  'https://user:pass@127.0.0.1/1.0',
  'http://example.com/1.0',
  'ftp://127.0.0.1/',
  '$(reboot)',
  '`id`',
  '; rm -rf /',
  '../../etc/shadow',
  '/dev/zero',
  '/proc/self/status',
  '',
  ' ',
  'a'.repeat(300),
]
/** Valid values of the fields, to be mutated: hostile input often starts as a good one. */
const SEEDS = [
  '203.0.113.10',
  '2001:db8::5',
  't18s',
  'web-2',
  'eth0',
  'ovh',
  'aws',
  '30',
  'eu-west-3',
  'ovh-eu',
]

const hostile: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 4, arbitrary: fc.string({ unit: fc.constantFrom(...SPECIALS), maxLength: 30 }) },
  { weight: 2, arbitrary: fc.constantFrom(...NAMED) },
  {
    weight: 3,
    arbitrary: fc
      .tuple(
        fc.constantFrom(...SEEDS),
        fc.string({ unit: fc.constantFrom(...SPECIALS), maxLength: 4 }),
        fc.boolean(),
      )
      .map(([seed, noise, before]) => (before ? noise + seed : seed + noise)),
  },
  // Long values: a short hostile piece repeated (generating 3000 random graphemes costs more than the test).
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }), fc.integer({ min: 30, max: 300 }))
      .map(([piece, times]) => piece.repeat(times)),
  },
)

// ---- the checks -----------------------------------------------------------------------------

/** A failure as a hook sees it: an IpmoveError with a documented code, whose printed line is one line. */
function oneLine(error: unknown, input: string): IpmoveError {
  const where = `for ${JSON.stringify(input.slice(0, 200))}`
  if (!(error instanceof IpmoveError))
    throw new Error(`not an IpmoveError ${where}: ${(error as Error)?.stack}`)
  if (exitOf(error.kind).exitCode === ExitCode.INTERNAL) throw new Error(`exit 1 ${where}: ${error.message}`)
  const line = printable(error.message)
  if (/[\n\r]/.test(line) || line.length > 2100) throw new Error(`not one short line ${where}: ${line}`)
  return error
}

/** The IpmoveError `fn` fails with on `value` (checked), undefined when it accepts it; sync when `fn` is. */
function outcome(
  fn: (value: string) => unknown,
  value: string,
): IpmoveError | undefined | Promise<IpmoveError | undefined> {
  try {
    const result = fn(value)
    if (result instanceof Promise) {
      return result.then(
        () => undefined,
        (error: unknown) => oneLine(error, value),
      )
    }
    return undefined
  } catch (error) {
    return oneLine(error, value)
  }
}

interface Field {
  name: string
  /** The field's own validator; throws on what the field refuses. */
  validate?: (value: string) => unknown
  /** The path a command takes with the value; it must not request or spawn. Run for every value unless `onlyRefused`. */
  run: (value: string) => unknown
  /** Run `run` only for values `validate` refused (a valid one would legitimately reach the kernel). */
  onlyRefused?: boolean
  /** The one exit code `run` may fail with (a config file's errors are all exit 2). */
  code?: number
  /** Values for this field, when plain hostile strings would rarely reach what it tests. */
  values?: fc.Arbitrary<string>
}

/** One generated value through one field: the checks of the file's header. */
async function checkValue(field: Field, value: string): Promise<boolean> {
  spawned.length = 0
  requests.length = 0
  forgetSecrets()
  const shown = JSON.stringify(value.slice(0, 200))
  const invalid = field.validate ? await outcome(field.validate, value) : undefined
  if (invalid && exitOf(invalid.kind).exitCode !== ExitCode.USAGE)
    throw new Error(`${field.name} ${shown}: exit ${exitOf(invalid.kind).exitCode}`)
  if (!field.onlyRefused || invalid) {
    const error = await outcome(field.run, value)
    const expected = invalid ? ExitCode.USAGE : field.code
    if (error && expected !== undefined && exitOf(error.kind).exitCode !== expected) {
      throw new Error(
        `${field.name} ${shown}: exit ${exitOf(error.kind).exitCode}, not ${expected}: ${error.message}`,
      )
    }
    if (invalid && !error)
      throw new Error(`${field.name} ${shown}: refused by its validator, accepted by the command`)
  }
  if (spawned.length > 0) throw new Error(`${field.name} ${shown} started a process: ${spawned.join(', ')}`)
  if (requests.length > 0) throw new Error(`${field.name} ${shown} sent a request: ${requests.join(', ')}`)
  return invalid !== undefined
}

async function checkField(field: Field): Promise<void> {
  let refused = 0
  const started = performance.now()
  await fc.assert(
    fc.asyncProperty(field.values ?? hostile, async (value) => {
      if (await checkValue(field, value)) refused++
      // Most values are refused without I/O, in microtasks only: without a turn of
      // the event loop, 10,000 of them starve this worker's messages to Vitest
      // (a loaded CI machine saw "Timeout calling onTaskUpdate").
      await setImmediate()
    }),
    { numRuns: NUM_RUNS },
  )
  const ms = Math.round(performance.now() - started)
  counts.push(
    `  ${field.name}: ${NUM_RUNS} inputs${field.validate ? ` (${refused} refused by its validator)` : ''}, ${ms} ms`,
  )
  expect(refused + (field.validate ? 0 : 1)).toBeGreaterThan(0)
}

// ---- the environment the services run in ----------------------------------------------------

// Memory-backed when there is one: 10,000 config files per field are written.
const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'ipmove-properties-'))
const CONFIG = join(dir, 'ipmove.conf')
writeFileSync(CONFIG, '', { mode: 0o600 })
const FIELD_CONFIG = join(dir, 'field.conf')

const OVH_ENV: NodeJS.ProcessEnv = {
  HOME: dir,
  IPMOVE_CONFIG: CONFIG,
  IPMOVE_CACHE_DIR: join(dir, 'cache'),
  IPMOVE_LOCK_DIR: join(dir, 'locks'),
  OVH_ENDPOINT: 'ovh-eu',
  OVH_APPLICATION_KEY: 'property-app-key',
  OVH_APPLICATION_SECRET: 'property-app-secret',
  OVH_CONSUMER_KEY: 'property-consumer-key',
}
const AWS_ENV: NodeJS.ProcessEnv = {
  HOME: dir,
  IPMOVE_CONFIG: CONFIG,
  IPMOVE_CACHE_DIR: join(dir, 'cache'),
  AWS_ACCESS_KEY_ID: 'AKIAIPMOVEPROPERTY01',
  AWS_SECRET_ACCESS_KEY: 'property-secret-access-key',
  AWS_REGION: 'eu-west-3',
  AWS_EC2_METADATA_DISABLED: 'true',
}

const BASE: TargetOptions = { ip: '203.0.113.10', project: 't18s', instance: 'web-2', env: OVH_ENV }

/** What `move` and `status` do before their first request: merge, validate, load the provider. */
async function prepared(options: Partial<TargetOptions>): Promise<void> {
  const result = await prepare({ ...BASE, ...options }, new MemoryLogger())
  result.provider.close()
}

const withFlag = (key: keyof TargetOptions) => (value: string) => prepared({ [key]: value })
const awsFlag = (key: string) => (value: string) =>
  prepared({
    provider: 'aws',
    project: undefined,
    instance: undefined,
    env: AWS_ENV,
    providerSettings: { [key]: value },
  })
const withEnv = (key: string, base: NodeJS.ProcessEnv) => (value: string) =>
  prepared({
    env: { ...base, [key]: value },
    ...(base === AWS_ENV ? { provider: 'aws', project: undefined, instance: undefined } : {}),
  })

/** ipmove.conf with one field set to the value. */
function configWith(section: string | undefined, key: string, extra = ''): (value: string) => unknown {
  return (value) => {
    const head = section ? `[${section}]\n${extra}` : ''
    writeFileSync(FIELD_CONFIG, `${head}${key} = ${value}\n`, { mode: 0o600 })
    return loadConfig({ path: FIELD_CONFIG, env: {}, home: dir })
  }
}

// ---- the properties -------------------------------------------------------------------------

describe(`hostile input, ${NUM_RUNS} generated values per field`, () => {
  it('argv: the word after a value flag is always that flag’s value', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...VALUE_FLAGS),
        hostile,
        fc.constantFrom('move', 'status', 'alias'),
        (flag, value, command) => {
          const out = normalizeArgv([command, `--${flag}`, value, '--json'])
          const expected = value.startsWith('-') ? [`--${flag}=${value}`] : [`--${flag}`, value]
          expect(out).toEqual([command, ...expected, '--json'])
        },
      ),
      { numRuns: NUM_RUNS },
    )
    counts.push(`  argv (all ${VALUE_FLAGS.size} value flags): ${NUM_RUNS} inputs`)
  })

  const flags: Field[] = [
    {
      name: '--ip',
      validate: (v) => resolveTarget({ defaults: {}, providers: {}, ips: {} }, { ip: v }),
      run: withFlag('ip'),
    },
    {
      name: '--ip-id',
      validate: (v) => validateName('--ip-id', v),
      run: (v) => prepared({ ip: undefined, ipId: v }),
    },
    { name: '--instance', validate: (v) => validateName('--instance', v), run: withFlag('instance') },
    { name: '--project', validate: (v) => validateName('--project', v), run: withFlag('project') },
    { name: '--provider', validate: providerNamed, run: withFlag('provider') },
    { name: '--interface', validate: (v) => validateInterface(v), run: withFlag('interface') },
    {
      name: '--timeout',
      validate: (v) => parseSeconds('--timeout', v),
      run: (v) => prepared({ timeoutMs: parseSeconds('--timeout', v) }),
    },
    { name: '--config', run: withFlag('configPath') },
    ...['mode', 'region', 'profile', 'endpoint', 'route-table', 'eni', 'private-ip'].map(
      (key): Field => ({
        name: `--${key} (aws)`,
        validate: (v) => parseAwsSettings({ [key]: v }),
        run: awsFlag(key),
      }),
    ),
    {
      name: 'alias add --ip',
      validate: parseIp,
      run: (v) => LocalAddress.prepare({ ip: v, interface: 'eth0', announce: false }),
      onlyRefused: true,
    },
    {
      name: 'alias add --interface',
      validate: (v) => validateInterface(v),
      run: (v) => LocalAddress.prepare({ ip: '192.0.2.1', interface: v, announce: false }),
      onlyRefused: true,
    },
    {
      name: 'alias add --label',
      validate: (v) => checkLabel(v, 'eth0', parseIp('192.0.2.1')),
      run: (v) => LocalAddress.prepare({ ip: '192.0.2.1', interface: 'eth0', label: v, announce: false }),
      onlyRefused: true,
    },
    {
      name: 'alias remove/release --ip, --interface',
      validate: (v) => (v.length % 2 ? parseIp(v) : validateInterface(v)),
      run: (v) =>
        v.length % 2
          ? removeAlias({ ip: v, interface: 'eth0' })
          : removeAlias({ ip: '192.0.2.1', interface: v }),
      onlyRefused: true,
    },
    {
      name: 'move --provider local --ip 192.0.2.0/PREFIX',
      validate: (v) => {
        if (parseIp(`192.0.2.0/${v}`).prefix !== 32) throw new IpmoveError('usage', 'a block')
      },
      run: (v) =>
        moveIp(
          {
            ip: `192.0.2.0/${v}`,
            provider: 'local',
            interface: 'eth0',
            wait: true,
            dryRun: false,
            env: OVH_ENV,
          },
          new MemoryLogger(),
        ),
      onlyRefused: true,
      values: fc.oneof(hostile, fc.integer({ min: 0, max: 40 }).map(String)),
    },
    {
      name: 'credentials set --endpoint',
      validate: (v) => parseOvhEndpoint(v),
      run: (v) => checkCredentialSet({ endpoint: v, client_id: 'id', client_secret: 'secret' }),
    },
  ]
  for (const field of flags) it(`flag ${field.name}`, () => checkField(field))

  const envs: Field[] = [
    ...['OVH_ENDPOINT', 'OVH_APPLICATION_KEY', 'OVH_APPLICATION_SECRET', 'OVH_CONSUMER_KEY'].map(
      (key): Field => ({ name: key, run: withEnv(key, OVH_ENV) }),
    ),
    ...['OVH_CLIENT_ID', 'OVH_CLIENT_SECRET'].map(
      (key): Field => ({
        name: key,
        run: (v) =>
          prepared({
            env: {
              ...OVH_ENV,
              OVH_APPLICATION_KEY: undefined,
              OVH_APPLICATION_SECRET: undefined,
              OVH_CONSUMER_KEY: undefined,
              OVH_CLIENT_ID: 'id',
              OVH_CLIENT_SECRET: 'secret',
              [key]: v,
            },
          }),
      }),
    ),
    ...[
      'IPMOVE_CONFIG',
      'IPMOVE_CACHE_DIR',
      'XDG_CONFIG_HOME',
      'XDG_CACHE_HOME',
      'IPMOVE_OPENSTACK_METADATA_URL',
    ].map((key): Field => ({ name: key, run: withEnv(key, OVH_ENV) })),
    ...['AWS_REGION', 'AWS_PROFILE', 'AWS_ENDPOINT_URL_EC2', 'AWS_SECRET_ACCESS_KEY'].map(
      (key): Field => ({ name: key, run: withEnv(key, AWS_ENV) }),
    ),
  ]
  for (const field of envs) it(`env ${field.name}`, () => checkField(field))

  const top = ['provider', 'project', 'instance', 'interface', 'timeout', 'label']
  const config: Field[] = [
    ...top.map(
      (key): Field => ({ name: `ipmove.conf ${key}`, run: configWith(undefined, key), code: ExitCode.USAGE }),
    ),
    ...['ip', ...top].map(
      (key): Field => ({
        name: `ipmove.conf [ip.web] ${key}`,
        run: configWith('ip.web', key, key === 'ip' ? '' : 'ip = 192.0.2.1\n'),
        code: ExitCode.USAGE,
      }),
    ),
    ...[
      'endpoint',
      'application_key',
      'application_secret',
      'consumer_key',
      'client_id',
      'client_secret',
    ].map(
      (key): Field => ({
        name: `ipmove.conf [ovh] ${key}`,
        run: configWith('ovh', key),
        code: ExitCode.USAGE,
      }),
    ),
    ...['mode', 'region', 'profile', 'endpoint', 'route-table', 'eni', 'private-ip'].map(
      (key): Field => ({
        name: `ipmove.conf [aws] ${key}`,
        run: configWith('aws', key),
        code: ExitCode.USAGE,
      }),
    ),
    {
      name: 'ipmove.conf [local] probe-timeout',
      run: configWith('local', 'probe-timeout'),
      code: ExitCode.USAGE,
    },
    { name: 'ipmove.conf a key', run: (v) => configWith(undefined, v)('t18s'), code: ExitCode.USAGE },
    { name: 'ipmove.conf a section', run: (v) => configWith(v, 'ip', '')('192.0.2.1'), code: ExitCode.USAGE },
  ]
  for (const field of config) it(`config ${field.name}`, () => checkField(field))
})
