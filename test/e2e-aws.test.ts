/**
 * End to end: the built CLI (bin/run.js → dist/) as a hook runs it, against the
 * EC2 emulator over HTTP on loopback, with the emulator's IMDSv2 for "this host".
 * Run `npm run build` first (`npm test` does).
 */
import { spawn } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EIP_WEB, ENI_WEB3, RTB_MAIN, RTB_PRIVATE, WEB1, WEB2 } from '../emulator/aws/fixture.js'
import { type RunningEc2Emulator, startEc2Emulator } from '../emulator/aws/server.js'
import { ipmove, ipmoveArgv, isolatedEnv, json, requireBuild } from './helpers/cli.js'

const DIST = fileURLToPath(new URL('../dist/', import.meta.url))
const EIP = '203.0.113.5'
const READONLY = {
  AWS_ACCESS_KEY_ID: 'AKIAIPMOVEREADONLY01',
  AWS_SECRET_ACCESS_KEY: 'ipmove-emulator-readonly-secret-key-00001',
}

let emulator: RunningEc2Emulator

/** A hook's environment: the emulator's variables, an empty config, a fresh cache and HOME. */
const env = (from: RunningEc2Emulator = emulator, extra: Record<string, string> = {}) =>
  isolatedEnv({ ...from.env, ...extra })

const writes = (e: RunningEc2Emulator, action: string) => e.requests.filter((r) => r.action === action)
const aws = (...args: string[]) => ['--provider', 'aws', ...args]

beforeAll(async () => {
  requireBuild()
  emulator = await startEc2Emulator({ pendingMs: 200, thisHost: 'web-2' })
})

afterAll(async () => {
  await emulator?.close()
})

describe('ipmove --provider aws against the EC2 emulator', () => {
  it('eip: moves by Name tag, then is a no-op the second time (one read, no write)', async () => {
    const e = env()
    const first = await ipmove(aws('--ip', EIP, '--instance', 'web-3'), e)
    expect(first.stderr).toBe('')
    expect(first.code).toBe(0)
    expect(first.stdout).toMatch(/moved from i-0a+1 to web-3 \(i-0c+3\) in \d+\.\d s/)
    const before = writes(emulator, 'AssociateAddress').length
    const second = await ipmove(aws('--mode', 'eip', '--ip', EIP, '--instance', 'web-3', '--json'), e)
    expect(json(second)).toMatchObject({
      ok: true,
      outcome: 'in-place',
      changed: false,
      requests: 2,
      roundTrips: 1,
    })
    expect(writes(emulator, 'AssociateAddress').length).toBe(before)
  })

  it('eip: moves to this host (IMDSv2) when --instance is omitted', async () => {
    const run = await ipmove(aws('--ip', EIP, '--json'), env())
    expect(run.stderr).toBe('')
    expect(json(run)).toMatchObject({ ok: true, outcome: 'moved', to: { id: WEB2, name: 'web-2' } })
    expect(emulator.requests.map((r) => r.path)).toContain('/latest/api/token')
  })

  it('private: moves the secondary IP to this host, and back to web-1', async () => {
    const there = await ipmove(aws('--mode', 'private', '--ip', '198.51.100.50', '--json'), env())
    expect(json(there)).toMatchObject({
      ok: true,
      kind: 'private',
      outcome: 'moved',
      from: { id: WEB1 },
      to: { id: WEB2 },
    })
    const back = await ipmove(
      aws('--mode', 'private', '--ip', '198.51.100.50', '--instance', WEB1, '--json'),
      env(),
    )
    expect(json(back)).toMatchObject({
      ok: true,
      outcome: 'moved',
      from: { id: WEB2 },
      to: { id: WEB1, name: 'web-1' },
    })
    expect(writes(emulator, 'AssignPrivateIpAddresses')).toHaveLength(2)
  })

  it('route: points every table routing the VIP at the target, then status agrees', async () => {
    const run = await ipmove(
      aws('--mode', 'route', '--ip', '192.0.2.10', '--instance', 'web-2', '--json'),
      env(),
    )
    expect(json(run)).toMatchObject({ ok: true, kind: 'route', outcome: 'moved', to: { id: WEB2 } })
    expect(
      writes(emulator, 'ReplaceRoute')
        .map((r) => r.params.RouteTableId)
        .sort(),
    ).toEqual([RTB_MAIN, RTB_PRIVATE])
    const status = await ipmove(['status', ...aws('--mode', 'route', '--ip', '192.0.2.10', '--json')], env())
    expect(json(status)).toMatchObject({ ok: true, holder: { id: WEB2 }, pending: false })
  })

  it('--dry-run checks the write with EC2 DryRun and writes nothing', async () => {
    const before = JSON.stringify(emulator.state.addresses)
    const run = await ipmove(aws('--ip', EIP, '--instance', 'web-1', '--dry-run'), env())
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(/^dry run: EC2 would allow ec2:AssociateAddress \(DryRunOperation\)$/m)
    expect(run.stdout).toMatch(
      /dry run: would move 203\.0\.113\.5\/32 from i-0b+2 to web-1 \(i-0a+1\); nothing written/,
    )
    expect(writes(emulator, 'AssociateAddress').at(-1)?.params.DryRun).toBe('true')
    expect(JSON.stringify(emulator.state.addresses)).toBe(before)
  })

  it('exits 3 naming the IAM action a read-only key lacks, in a dry run and for real', async () => {
    const dry = await ipmove(aws('--ip', EIP, '--instance', 'web-1', '--dry-run'), env(emulator, READONLY))
    expect(dry.code).toBe(3)
    expect(dry.stderr).toMatch(
      /^ipmove: error: dry run: IAM does not allow ec2:AssociateAddress \(UnauthorizedOperation\)/,
    )
    const real = await ipmove(aws('--ip', EIP, '--instance', 'web-1', '--json'), env(emulator, READONLY))
    expect(real.code).toBe(3)
    expect(json(real)).toMatchObject({ ok: false, error: { code: 'AUTH', action: 'ec2:AssociateAddress' } })
    expect(real.stderr.trim().split('\n')).toHaveLength(1)
  })

  it('exits 3 on a wrong secret, and never prints a secret, even with --debug', async () => {
    const secret = 'not-the-real-secret-key-42'
    const run = await ipmove(
      aws('--ip', EIP, '--instance', 'web-1', '--debug', '--json'),
      env(emulator, { AWS_SECRET_ACCESS_KEY: secret }),
    )
    expect(run.code).toBe(3)
    expect(run.stderr).toMatch(/AuthFailure/)
    expect(run.stdout + run.stderr).not.toContain(secret)
  })

  it('exits 4 for an unknown instance, an ambiguous name and an unknown EIP', async () => {
    const missing = await ipmove(aws('--ip', EIP, '--instance', 'nope'), env())
    expect(missing.code).toBe(4)
    const twin = await ipmove(aws('--ip', EIP, '--instance', 'twin'), env())
    expect(twin.code).toBe(4)
    expect(twin.stderr).toMatch(/ambiguous in eu-west-3: i-0d+4 \(running\), i-0e+5 \(stopped\)/)
    const eip = await ipmove(aws('--ip', '203.0.113.77', '--instance', 'web-1'), env())
    expect(eip.code).toBe(4)
  })

  it('exits 2 on bad input before any call', async () => {
    const before = emulator.requests.length
    for (const args of [
      aws('--ip', '2001:db8::5'),
      aws('--ip', EIP, '--mode', 'nat'),
      aws('--ip', EIP, '--region', 'mars'),
      aws('--ip', EIP, '--route-table', 'rtb-; reboot', '--mode', 'route'),
      aws('--ip', EIP, '--endpoint', 'http://ec2.example.com'),
      aws('--ip', EIP, '--instance', '$(reboot)'),
    ]) {
      const run = await ipmove(args, env())
      expect(run.code, args.join(' ')).toBe(2)
      expect(run.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1)
    }
    expect(emulator.requests.length).toBe(before)
  })

  it('takes credentials from the SDK chain: an instance role (IMDS), then a --profile', async () => {
    const role = env(emulator)
    delete role.AWS_ACCESS_KEY_ID
    delete role.AWS_SECRET_ACCESS_KEY
    const viaRole = await ipmove(['status', ...aws('--ip', EIP, '--json')], role)
    expect(viaRole.stderr).toBe('')
    expect(json(viaRole)).toMatchObject({ ok: true })
    expect(emulator.requests.at(-1)?.accessKeyId).toBe('ASIAIPMOVEROLE000001')

    const profiled = env(emulator)
    mkdirSync(join(profiled.HOME!, '.aws'))
    writeFileSync(
      join(profiled.HOME!, '.aws', 'credentials'),
      `[ops]\naws_access_key_id = ${READONLY.AWS_ACCESS_KEY_ID}\naws_secret_access_key = ${READONLY.AWS_SECRET_ACCESS_KEY}\n`,
    )
    const viaProfile = await ipmove(['status', ...aws('--ip', EIP, '--profile', 'ops', '--json')], profiled)
    expect(json(viaProfile)).toMatchObject({ ok: true })
    expect(emulator.requests.at(-1)?.accessKeyId).toBe(READONLY.AWS_ACCESS_KEY_ID)
  })

  it('prints the minimal IAM policy for the modes asked', async () => {
    const run = await ipmove(['aws', 'policy', '--mode', 'eip', '--mode', 'private'], env())
    expect(run.code).toBe(0)
    const policy = JSON.parse(run.stdout)
    expect(policy.Statement.flatMap((s: { Action: string[] }) => s.Action)).toEqual([
      'ec2:DescribeAddresses',
      'ec2:DescribeInstances',
      'ec2:DescribeNetworkInterfaces',
      'ec2:AssignPrivateIpAddresses',
      'ec2:AssociateAddress',
    ])
  })
})

describe('failures that need their own emulator', () => {
  it('exits 5 when EC2 never shows the move within --timeout', async () => {
    const slow = await startEc2Emulator({ pendingMs: 60_000 })
    try {
      const run = await ipmove(aws('--ip', EIP, '--instance', 'web-2', '--timeout', '1.2'), env(slow))
      expect(run.code).toBe(5)
      expect(run.stderr).toMatch(/timed out before the IP reached web-2/)
      expect(writes(slow, 'AssociateAddress')).toHaveLength(1)
    } finally {
      await slow.close()
    }
  })

  it('exits 6 when another node associates the EIP elsewhere right after our write', async () => {
    const raced = await startEc2Emulator({ pendingMs: 5_000 })
    try {
      // Another client's associate lands at once, ours stays pending: EC2 shows web-3.
      const poll = setInterval(() => {
        if (writes(raced, 'AssociateAddress').length > 0) {
          clearInterval(poll)
          const address = raced.state.addresses.find((a) => a.allocationId === EIP_WEB)!
          address.networkInterfaceId = ENI_WEB3
          address.privateIp = '198.51.100.140'
        }
      }, 5)
      const run = await ipmove(aws('--ip', EIP, '--instance', 'web-2'), env(raced))
      clearInterval(poll)
      expect(run.code).toBe(6)
      expect(run.stderr).toMatch(/another operation moved the IP to i-0c+3/)
    } finally {
      await raced.close()
    }
  })

  it('exits 8 after 5 attempts when EC2 keeps failing, and rides out a single throttle', async () => {
    const failing = await startEc2Emulator({ faults: ['path=/DescribeAddresses,status=500,times=0'] })
    try {
      const run = await ipmove(['status', ...aws('--ip', EIP)], env(failing))
      expect(run.code).toBe(8)
      expect(run.stderr).toMatch(/EC2 DescribeAddresses failed after 5 attempts: HTTP 500 InternalError/)
      expect(writes(failing, 'DescribeAddresses')).toHaveLength(5)
    } finally {
      await failing.close()
    }
    const throttled = await startEc2Emulator({ faults: ['path=/DescribeAddresses,status=503'] })
    try {
      const run = await ipmove(['status', ...aws('--ip', EIP, '--json')], env(throttled))
      expect(json(run)).toMatchObject({ ok: true, requests: 2 })
      expect(writes(throttled, 'DescribeAddresses').map((r) => r.code)).toEqual([
        'RequestLimitExceeded',
        undefined,
      ])
    } finally {
      await throttled.close()
    }
  })
})

describe('start-up', () => {
  /** The files a bundle entry imports statically, transitively: what Node loads before any import(). */
  function staticClosure(file: string, seen = new Set<string>()): Set<string> {
    if (seen.has(file)) return seen
    seen.add(file)
    const text = readFileSync(file, 'utf8')
    for (const match of text.matchAll(/(?:^|[;\n])\s*import\s*(?:[^'"]*?from\s*)?["'](\.[^"']+)["']/g)) {
      staticClosure(resolve(dirname(file), match[1]!), seen)
    }
    return seen
  }

  it('never loads the AWS SDK on the OVH path: it is only in chunks imported lazily', () => {
    // The source maps tell which chunks hold SDK code, and which one holds the AWS provider.
    const sourcesOf = (file: string) =>
      (JSON.parse(readFileSync(`${file}.map`, 'utf8')) as { sources: string[] }).sources
    const chunks = readdirSync(join(DIST, 'chunks'))
      .filter((name) => name.endsWith('.js'))
      .map((name) => join(DIST, 'chunks', name))
    const sdkFiles = chunks.filter((file) =>
      sourcesOf(file).some((source) => /node_modules\/@(?:aws-sdk|smithy)\//.test(source)),
    )
    // The provider's chunk does load them statically: the closure walk sees imports.
    const provider = chunks.find((file) =>
      sourcesOf(file).some((source) => source.endsWith('providers/aws/provider.ts')),
    )
    expect(provider).toBeDefined()
    expect([...staticClosure(provider!)].filter((file) => sdkFiles.includes(file)).length).toBeGreaterThan(1)
    for (const entry of ['commands/move.js', 'commands/status.js', 'src/main.js']) {
      const loaded = staticClosure(join(DIST, entry))
      for (const file of sdkFiles) expect(loaded.has(file), `${entry} loads ${file}`).toBe(false)
    }
  })

  it('emulate aws prints sourceable env lines once it listens', async () => {
    const [file, ...argv] = ipmoveArgv(['emulate', 'aws', '--port', '0'])
    const child = spawn(file, argv, {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    try {
      const output = await new Promise<string>((resolve, reject) => {
        let text = ''
        child.stdout.on('data', (chunk) => {
          text += chunk
          if (/listening/.test(text)) resolve(text)
        })
        child.on('exit', (code) => reject(new Error(`emulate aws exited ${code}`)))
      })
      const lines = output.trim().split('\n')
      expect(lines.slice(0, 6).map((l) => l.split('=')[0])).toEqual([
        'export AWS_ENDPOINT_URL_EC2',
        'export AWS_ACCESS_KEY_ID',
        'export AWS_SECRET_ACCESS_KEY',
        'export AWS_REGION',
        'export AWS_EC2_METADATA_SERVICE_ENDPOINT',
        'export IPMOVE_EMULATOR_URL',
      ])
      expect(lines[6]).toMatch(/^# ipmove EC2 emulator listening on http:\/\/127\.0\.0\.1:\d+/)
    } finally {
      child.kill('SIGTERM')
    }
  })
})
