/**
 * The HTTPS emulator's certificate, as clients other than Node see it: it names
 * every --host (a compose service name among them), curl and Python trust it
 * through the CA file alone, and nothing else is trusted. Runs the built CLI
 * (`npm run build` first) and curl; Python where installed.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, type PeerCertificate } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { listenPlan } from '../emulator/server.js'
import { requireBuild } from './helpers/cli.js'
import { type EmulatorProcess, spawnEmulator } from './helpers/emulator-process.js'

const dir = mkdtempSync(join(tmpdir(), 'ipmove-tls-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
beforeAll(() => requireBuild())

interface Ran {
  code: number
  stdout: string
  stderr: string
}

/** Run a client program (argv, no shell) with extra environment. */
function run(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(
      argv[0]!,
      argv.slice(1),
      { env: { PATH: process.env.PATH, ...env }, timeout: 15_000 },
      (error, stdout, stderr) => {
        const code = (error as { code?: unknown } | null)?.code
        resolve({ code: typeof code === 'number' ? code : error ? -1 : 0, stdout, stderr })
      },
    )
  })
}

const hasPython = (module: string) => run(['python3', '-c', `import ${module}`]).then((r) => r.code === 0)

describe('listenPlan', () => {
  it('listens on every address unless a wildcard covers them; names go on the certificate', () => {
    expect(listenPlan(['127.0.0.1'])).toEqual({ listenOn: ['127.0.0.1'], names: ['127.0.0.1'] })
    expect(listenPlan(['127.0.0.1', 'localhost'])).toEqual({
      listenOn: ['127.0.0.1', 'localhost'],
      names: ['127.0.0.1', 'localhost'],
    })
    expect(listenPlan(['0.0.0.0', 'emulator'])).toEqual({ listenOn: ['0.0.0.0'], names: ['emulator'] })
    expect(listenPlan(['emulator', '::'])).toEqual({ listenOn: ['::'], names: ['emulator'] })
    expect(listenPlan(['0.0.0.0'])).toEqual({ listenOn: ['0.0.0.0'], names: [] })
  })
})

describe('ipmove emulate ovh --host 0.0.0.0 --host emulator.test (a compose service name)', () => {
  let emu: EmulatorProcess
  let origin: string
  let port: number
  /** curl as a client in another container would run it: the name resolves to the emulator. */
  const curl = (name: string, extra: string[], env: NodeJS.ProcessEnv = {}, path = 'state') =>
    run(
      [
        'curl',
        '--silent',
        '--show-error',
        '--fail',
        '--max-time',
        '10',
        '--resolve',
        `${name}:${port}:127.0.0.1`,
        ...extra,
        `https://${name}:${port}/_emulator/${path}`,
      ],
      env,
    )

  beforeAll(async () => {
    emu = await spawnEmulator([
      'ovh',
      '--port',
      '0',
      '--host',
      '0.0.0.0',
      '--host',
      'emulator.test',
      '--dir',
      join(dir, 'ovh'),
    ])
    origin = emu.env.IPMOVE_EMULATOR_URL!
    port = emu.port
  })
  afterAll(async () => {
    await emu?.stop()
  })

  it('points clients at the name, and its certificate names it', async () => {
    expect(origin).toBe(`https://emulator.test:${port}`)
    expect(emu.env.OVH_ENDPOINT).toBe(`${origin}/1.0`)
    expect(emu.caFile).toBe(join(dir, 'ovh', 'ca.pem'))
    // The certificate as a TLS client asking for that name receives it.
    const cert = await new Promise<PeerCertificate>((resolve, reject) => {
      const socket = connect({
        host: '127.0.0.1',
        port,
        servername: 'emulator.test',
        ca: readFileSync(emu.caFile!),
      })
      socket.once('secureConnect', () => {
        resolve(socket.getPeerCertificate())
        socket.end()
      })
      socket.once('error', reject)
    })
    expect(cert.subjectaltname).toBe(
      'IP Address:127.0.0.1, DNS:localhost, IP Address:0:0:0:0:0:0:0:1, DNS:emulator.test',
    )
  })

  it('curl trusts it with --cacert (or CURL_CA_BUNDLE), and refuses it otherwise', async () => {
    const trusted = await curl('emulator.test', ['--cacert', emu.caFile!])
    expect(trusted.stderr).toBe('')
    expect(trusted.code).toBe(0)
    expect(JSON.parse(trusted.stdout)).toMatchObject({ faults: [], requests: 0 })
    expect((await curl('emulator.test', [], { CURL_CA_BUNDLE: emu.caFile })).code).toBe(0)
    // Not in the system's store: curl's own check refuses it (60: the peer's certificate).
    const unknown = await curl('emulator.test', [])
    expect(unknown.code).toBe(60)
    // A name no --host gave is not covered, CA or not.
    const other = await curl('other.test', ['--cacert', emu.caFile!])
    expect(other.code).toBe(60)
    expect(other.stderr).toMatch(/subject(Alt)?Name|no alternative certificate subject name/i)
  })

  it('curl drives the control API as a CI step would', async () => {
    const added = await curl(
      'emulator.test',
      ['--cacert', emu.caFile!, '--json', '{"fault": "path=/ip/*/move,method=POST,status=503,times=2"}'],
      {},
      'faults',
    )
    expect(added.code).toBe(0)
    const state = await curl('emulator.test', ['--cacert', emu.caFile!])
    expect(JSON.parse(state.stdout).faults).toEqual([
      { spec: 'path=/ip/*/move,method=POST,status=503,times=2', left: 2 },
    ])
  })

  it('Python trusts it through SSL_CERT_FILE (ssl, urllib) and REQUESTS_CA_BUNDLE (requests)', async (context) => {
    if (!(await hasPython('ssl'))) context.skip()
    // 127.0.0.1 is on every certificate: Python resolves names itself, so no compose name here.
    const url = `https://127.0.0.1:${port}/_emulator/state`
    const urllib = `import json, urllib.request; print(json.load(urllib.request.urlopen("${url}"))["requests"])`
    const ok = await run(['python3', '-c', urllib], { SSL_CERT_FILE: emu.caFile })
    expect(ok.stderr).toBe('')
    expect(ok.stdout.trim()).toMatch(/^\d+$/)
    const refused = await run(['python3', '-c', urllib], { SSL_CERT_FILE: '/nonexistent' })
    expect(refused.stderr).toMatch(/CERTIFICATE_VERIFY_FAILED/)
    if (!(await hasPython('requests'))) return
    const viaRequests = `import requests; print(requests.get("${url}", timeout=10).json()["faults"])`
    const requests = await run(['python3', '-c', viaRequests], { REQUESTS_CA_BUNDLE: emu.caFile })
    expect(requests.stderr).toBe('')
    expect(requests.stdout).toContain('path=/ip/*/move')
  })
})

describe('ipmove emulate ovh --host localhost --host ::1: one listener per name, one certificate', () => {
  let emu: EmulatorProcess
  beforeAll(async () => {
    emu = await spawnEmulator(['ovh', '--port', '0', '--host', 'localhost', '--host', '::1'])
  })
  afterAll(async () => {
    await emu?.stop()
  })

  it('answers on both with a certificate curl checks against the name', async () => {
    expect(emu.env.IPMOVE_EMULATOR_URL).toBe(`https://localhost:${emu.port}`)
    for (const url of [`https://localhost:${emu.port}`, `https://[::1]:${emu.port}`]) {
      const state = await run([
        'curl',
        '-sS',
        '--fail',
        '-g',
        '--cacert',
        emu.caFile!,
        `${url}/_emulator/state`,
      ])
      expect(state.stderr).toBe('')
      expect(JSON.parse(state.stdout)).toHaveProperty('projects')
    }
  })

  it('refuses a --host it cannot listen on, in one line (exit 2)', async () => {
    // Its temporary directory (ca.pem) goes too.
    const temp = mkdtempSync(join(dir, 'tmp-'))
    const refused = await spawnEmulator(['ovh', '--port', '0', '--host', '192.0.2.200'], [], {
      ...process.env,
      TMPDIR: temp,
    }).catch((e: Error) => e)
    expect(refused).toBeInstanceOf(Error)
    expect((refused as Error).message).toMatch(/cannot listen on 192\.0\.2\.200:0: EADDRNOTAVAIL/)
    expect(readdirSync(temp)).toEqual([])
  })
})
