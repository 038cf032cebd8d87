/**
 * A sample of the generated hostile values of test/properties.test.ts, through
 * the built CLI as a hook runs it: exit 2, one `ipmove: error:` line, no stack
 * trace, no request to the (local) API endpoints and no program started (PATH
 * holds only recording stand-ins for ip, arping, logger…).
 */
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { checkLabel } from '../src/alias/service.js'
import { parseIp, parseSeconds, validateInterface, validateName } from '../src/validate.js'
import { ipmove, isolatedEnv, requireBuild } from './helpers/cli.js'

const SAMPLES = 25
const TOOLS = ['ip', 'arping', 'logger', 'ndisc6', 'na6', 'ifconfig', 'busybox', 'ping', 'sh', 'tcpdump']

const dir = mkdtempSync(join(tmpdir(), 'ipmove-hostile-'))
const record = join(dir, 'started')
let server: Server
let hits = 0
let endpoint = ''

beforeAll(async () => {
  requireBuild()
  for (const tool of TOOLS) {
    const path = join(dir, tool)
    writeFileSync(path, `#!/bin/dash\nprintf '%s\\n' "${tool} $*" >> '${record}'\nexit 1\n`)
    chmodSync(path, 0o755)
  }
  writeFileSync(record, '')
  server = createServer((_request, response) => {
    hits++
    response.writeHead(500).end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(() => {
  server?.close()
})

interface Target {
  flag: string
  /** The valid rest of the command line. */
  argv: (value: string) => string[]
  validate: (value: string) => unknown
}

const TARGETS: Target[] = [
  { flag: '--ip', argv: (v) => ['--ip', v, '--project', 't18s', '--instance', 'web-2'], validate: parseIp },
  {
    flag: '--instance',
    argv: (v) => ['--ip', '203.0.113.10', '--instance', v],
    validate: (v) => validateName('x', v),
  },
  {
    flag: '--project',
    argv: (v) => ['--ip', '203.0.113.10', '--project', v],
    validate: (v) => validateName('x', v),
  },
  {
    flag: '--interface',
    argv: (v) => ['--ip', '203.0.113.10', '--interface', v],
    validate: (v) => validateInterface(v),
  },
  {
    flag: '--timeout',
    argv: (v) => ['--ip', '203.0.113.10', '--timeout', v],
    validate: (v) => parseSeconds('x', v),
  },
  { flag: 'status --ip', argv: (v) => ['status', '--ip', v], validate: parseIp },
  {
    flag: 'alias add --ip',
    argv: (v) => ['alias', 'add', '--ip', v, '--interface', 'lo'],
    validate: parseIp,
  },
  {
    flag: 'alias add --label',
    argv: (v) => ['alias', 'add', '--ip', '192.0.2.1', '--interface', 'lo', '--label', v],
    validate: (v) => checkLabel(v, 'lo', parseIp('192.0.2.1')),
  },
  {
    flag: 'local move of a block',
    argv: (v) => ['--provider', 'local', '--ip', `192.0.2.0/${v}`, '--interface', 'lo'],
    validate: (v) => {
      if (parseIp(`192.0.2.0/${v}`).prefix !== 32) throw new Error('a block')
    },
  },
]

const SPECIALS = '-_.:/@%\\"\'`$;|&<>()[]{}#=+*?! \t\n\r\x1b\x7f\u2028aZ09'
const hostile = fc.oneof(
  fc.string({ unit: fc.constantFrom(...SPECIALS), maxLength: 20 }),
  fc.constantFrom(
    '--help',
    '-h',
    '--version',
    '0x10',
    '1e-9',
    '0.0.0.0/0',
    '__proto__',
    '$(reboot)',
    '24',
    '',
  ),
)

function refused(target: Target, value: string): boolean {
  try {
    target.validate(value)
    return false
  } catch {
    return true
  }
}

describe('hostile values through the built CLI', () => {
  it(`${SAMPLES} generated cases: exit 2, one line, no request, no program started`, async () => {
    const cases = fc
      .sample(
        fc.tuple(fc.constantFrom(...TARGETS), hostile).filter(([t, v]) => !v.includes('\0') && refused(t, v)),
        { numRuns: SAMPLES, seed: 8 },
      )
      .concat([[TARGETS[0]!, '--help']])
    const env = isolatedEnv({
      PATH: dir,
      OVH_ENDPOINT: `${endpoint}/1.0`,
      OVH_APPLICATION_KEY: 'hostile-app-key',
      OVH_APPLICATION_SECRET: 'hostile-app-secret',
      OVH_CONSUMER_KEY: 'hostile-consumer-key',
      IPMOVE_OPENSTACK_METADATA_URL: `${endpoint}/openstack/latest/meta_data.json`,
    })
    for (const [target, value] of cases) {
      for (const mode of [[], ['--json', '--syslog']]) {
        const args = [...target.argv(value), ...mode]
        const run = await ipmove(args, env)
        const label = `${target.flag} ${JSON.stringify(value)} ${mode.join(' ')}`
        expect(run.code, `${label}\n${run.stderr}`).toBe(2)
        const lines = run.stderr.split('\n').filter(Boolean)
        expect(lines, label).toHaveLength(1)
        expect(lines[0], label).toMatch(/^ipmove: error: /)
        expect(run.stderr, label).not.toMatch(/\n\s+at /)
        if (mode.length > 0)
          expect(JSON.parse(run.stdout), label).toMatchObject({ ok: false, error: { exitCode: 2 } })
        else expect(run.stdout, label).toBe('')
      }
    }
    // logger(1) is --syslog's channel; nothing else may have started.
    const started = readFileSync(record, 'utf8').split('\n').filter(Boolean)
    expect(started.filter((line) => !line.startsWith('logger ')).join('\n')).toBe('')
    expect(started.length).toBeGreaterThan(0)
    expect(hits).toBe(0)
  })
})
