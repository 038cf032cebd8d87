/**
 * End to end: `ipmove ovh credential` (the built CLI) makes a consumer key at the
 * OVH emulator, which enforces its access rules; once a person allows it at the
 * validation URL, the hook moves the IP with that key and nothing else. Run
 * `npm run build` first (`npm test` does).
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { request } from 'node:https'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { OVH_CREDENTIALS, OVH_IDS } from '../emulator/ovh/fixture.js'
import { type RunningOvhEmulator, startOvhEmulator } from '../emulator/ovh/server.js'
import { ipmove, isolatedEnv, json, type Run, requireBuild } from './helpers/cli.js'

const CLOUD_IP = '203.0.113.10'
const CLASSIC_IP = '198.51.100.7'
const { t18s, staging } = OVH_IDS.projects

let emulator: RunningOvhEmulator

beforeAll(async () => {
  requireBuild()
  emulator = await startOvhEmulator({ pendingMs: 200 })
})

afterAll(async () => {
  await emulator?.close()
})

/** A host's environment that reaches the emulator but holds no OVH credentials: they come from ~/.ovh.conf. */
function hostEnv(): NodeJS.ProcessEnv {
  return isolatedEnv({ NODE_EXTRA_CA_CERTS: emulator.caFile })
}

/** What the person running the command has: the application key and secret, no consumer key. */
function withApplication(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return {
    ...env,
    OVH_ENDPOINT: emulator.url,
    OVH_APPLICATION_KEY: OVH_CREDENTIALS.applicationKey,
    OVH_APPLICATION_SECRET: OVH_CREDENTIALS.applicationSecret,
  }
}

/** An HTTPS request trusting the emulator's CA: the person's browser. */
function browse(method: string, url: string, form?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        ca: readFileSync(emulator.caFile),
        headers: form ? { 'Content-Type': 'application/x-www-form-urlencoded' } : {},
      },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          text += chunk
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
      },
    )
    req.on('error', reject)
    req.end(form)
  })
}

/** Open the validation URL and press Allow, as the account's owner would. */
async function allow(validationUrl: string): Promise<void> {
  const page = await browse('GET', validationUrl)
  expect(page.status).toBe(200)
  const token = new URL(validationUrl).searchParams.get('credentialToken')!
  const sent = await browse(
    'POST',
    new URL('/auth/', validationUrl).href,
    new URLSearchParams({ credentialToken: token, action: 'validate' }).toString(),
  )
  expect(sent.status).toBe(200)
}

/** The consumer key the command stored: it must appear in no output. */
function storedKey(file: string): string {
  const key = /^consumer_key=(.+)$/m.exec(readFileSync(file, 'utf8'))?.[1]
  expect(key).toMatch(/^[A-Za-z0-9]{32}$/)
  return key!
}

/** The emulator's answers since request number `from` (this file's runs go one at a time). */
function answersSince(from: number): { status: number; errorCode?: string; method: string; path: string }[] {
  return emulator.requests
    .slice(from)
    .filter((r) => r.path.startsWith('/1.0/') && r.path !== '/1.0/auth/time')
    .map((r) => ({
      method: r.method,
      path: r.path,
      status: r.status,
      errorCode:
        r.status >= 400 ? (JSON.parse(r.responseBody) as { errorCode?: string }).errorCode : undefined,
    }))
}

function expectRefused(run: Run, errorCode: string): void {
  expect(run.code, run.stderr).toBe(3)
  expect(json(run)).toMatchObject({ ok: false, error: { code: 'AUTH', errorCode } })
}

describe('ipmove ovh credential against the OVH emulator', () => {
  it('makes a Public Cloud key that moves the IP once allowed, and can do nothing else', async () => {
    const env = hostEnv()
    const file = join(env.HOME!, '.ovh.conf')
    const made = await ipmove(
      ['ovh', 'credential', '--project', t18s, '--ip', CLOUD_IP, '--ovh-conf', file, '--json'],
      withApplication(env),
    )
    expect(made.stderr).toBe('')
    expect(made.code).toBe(0)
    const result = json(made)
    expect(result).toMatchObject({
      ok: true,
      endpoint: emulator.url,
      state: 'pendingValidation',
      storedIn: file,
    })
    expect(result.rules).toContainEqual({
      method: 'POST',
      path: `/cloud/project/${t18s}/ip/failover/*/attach`,
    })
    const key = storedKey(file)
    const from = emulator.requests.length

    const runs: Run[] = [made]
    const run = async (args: string[]) => {
      const done = await ipmove([...args, '--json'], env)
      runs.push(done)
      return done
    }

    // Not allowed yet: the API refuses the key itself.
    expectRefused(await run(['status', '--project', t18s, '--ip', CLOUD_IP]), 'INVALID_CREDENTIAL')

    await allow(result.validationUrl as string)
    const moved = await run(['move', '--project', t18s, '--ip', CLOUD_IP, '--instance', 'bi-edge-sbg-2'])
    expect(moved.stderr).toBe('')
    expect(json(moved)).toMatchObject({ ok: true, outcome: 'moved', to: { name: 'bi-edge-sbg-2' } })
    expect(emulator.state.projects[0]!.failoverIps[0]!.routedTo).toBe(OVH_IDS.instances.sbg2)
    expect(json(await run(['status', '--project', t18s, '--ip', CLOUD_IP]))).toMatchObject({ ok: true })

    // Anything else is refused by the API, whatever ipmove is asked.
    expectRefused(await run(['status', '--project', 't18s', '--ip', CLOUD_IP]), 'NOT_GRANTED_CALL')
    expectRefused(await run(['status', '--project', staging, '--ip', CLOUD_IP]), 'NOT_GRANTED_CALL')
    expectRefused(
      await run(['move', '--ip', CLASSIC_IP, '--instance', OVH_IDS.dedicatedServers.ns2]),
      'NOT_GRANTED_CALL',
    )
    expect(emulator.state.classicIps[0]!.tasks).toEqual([])

    const answers = answersSince(from)
    const granted = answers.filter((a) => a.status === 200)
    for (const a of granted) expect(a.path).toMatch(new RegExp(`^/1\\.0/cloud/project/${t18s}/`))
    expect(granted.filter((a) => a.method === 'POST')).toHaveLength(1)
    for (const a of answers.filter((a) => a.status !== 200)) {
      expect(a.status).toBe(403)
      expect(['INVALID_CREDENTIAL', 'NOT_GRANTED_CALL']).toContain(a.errorCode)
    }
    for (const done of runs) expect(done.stdout + done.stderr).not.toContain(key)
  })

  it('makes a classic failover IP key, stored for the hook, that moves that IP only', async () => {
    const env = hostEnv()
    const file = join(env.HOME!, '.ovh.conf')
    const made = await ipmove(
      ['ovh', 'credential', '--ip', CLASSIC_IP, '--ovh-conf', file],
      withApplication(env),
    )
    expect(made.code, made.stderr).toBe(0)
    const url = /^ {2}(https:\/\/\S+credentialToken=\S+)$/m.exec(made.stdout)?.[1]
    expect(url).toBeDefined()
    expect(made.stdout).toContain(`POST /ip/${CLASSIC_IP}/32/move`)
    expect(made.stdout).toContain(`then check it (reads only): ipmove status --ip ${CLASSIC_IP}\n`)
    expect(made.stderr).toBe('') // ~/.ovh.conf is where ipmove looks: no warning
    const key = storedKey(file)
    expect(made.stdout).not.toContain(key)
    const from = emulator.requests.length

    await allow(url!)
    const moved = await ipmove(
      ['move', '--ip', CLASSIC_IP, '--instance', OVH_IDS.dedicatedServers.ns2, '--json'],
      env,
    )
    expect(moved.stderr).toBe('')
    expect(json(moved)).toMatchObject({ ok: true, kind: 'classic', outcome: 'moved' })
    expect(emulator.state.classicIps[0]!.routedTo).toBe(OVH_IDS.dedicatedServers.ns2)

    const cloud = await ipmove(['status', '--project', t18s, '--ip', CLOUD_IP, '--json'], env)
    expectRefused(cloud, 'NOT_GRANTED_CALL')
    expect(
      answersSince(from).filter((a) => a.status === 200 && !a.path.startsWith('/1.0/ip/198.51.100.7%2F32')),
    ).toEqual([])
  })

  it('--wait: polls the key while it is pending, exits 0 once it is allowed on the validation page', async () => {
    const env = hostEnv()
    const file = join(env.HOME!, '.ovh.conf')
    const from = emulator.requests.length
    const running = ipmove(
      ['ovh', 'credential', '--ip', CLASSIC_IP, '--ovh-conf', file, '--wait', '--json'],
      withApplication(env),
    )
    // The person's side: the URL OVH answered, then Allow once the command has found the key pending.
    const polls = () =>
      emulator.requests.slice(from).filter((r) => r.path === '/1.0/auth/currentCredential' && r.status > 0)
    await vi.waitFor(() => expect(polls().length).toBeGreaterThan(0), { timeout: 10_000, interval: 50 })
    expect(polls().every((r) => r.status === 403)).toBe(true)
    const made = emulator.requests.slice(from).find((r) => r.path === '/1.0/auth/credential')!
    await allow((JSON.parse(made.responseBody) as { validationUrl: string }).validationUrl)

    const done = await running
    expect(done.code, done.stderr).toBe(0)
    expect(done.stderr).toBe('')
    expect(json(done)).toMatchObject({ ok: true, state: 'validated', validated: true, storedIn: file })
    expect(polls().at(-1)!.status).toBe(200)
    expect(done.stdout).not.toContain(storedKey(file))
    const moved = await ipmove(
      ['move', '--ip', CLASSIC_IP, '--instance', OVH_IDS.dedicatedServers.ns1, '--json'],
      env,
    )
    expect(json(moved)).toMatchObject({ ok: true, kind: 'classic' })
  })

  it('--wait: exits 5 naming the URL again when the key is not allowed in time', async () => {
    const env = hostEnv()
    const started = Date.now()
    const done = await ipmove(
      [
        'ovh',
        'credential',
        '--ip',
        CLASSIC_IP,
        '--ovh-conf',
        join(env.HOME!, '.ovh.conf'),
        '--wait',
        '--timeout',
        '1',
      ],
      withApplication(env),
    )
    expect(done.code, done.stderr).toBe(5)
    const url = /^ {2}(https:\/\/\S+credentialToken=\S+)$/m.exec(done.stdout)?.[1]
    expect(url).toBeDefined()
    expect(done.stdout).toContain('waiting up to 1 s for it to be allowed')
    expect(done.stderr).toBe(
      `ipmove: error: the consumer key was not allowed in time; it is stored and works once allowed at ${url}\n`,
    )
    expect(Date.now() - started).toBeLessThan(8_000)
  })

  it('narrows a Public Cloud key to the failover IPs given by id', async () => {
    const env = hostEnv()
    const file = join(env.HOME!, '.ovh.conf')
    const { v4, v6 } = OVH_IDS.failoverIps
    const made = await ipmove(
      ['ovh', 'credential', '--project', t18s, '--ip-id', v4, '--ovh-conf', file, '--json'],
      withApplication(env),
    )
    expect(made.code, made.stderr).toBe(0)
    await allow(json(made).validationUrl as string)

    const target = emulator.state.projects[0]!.failoverIps[0]!.routedTo === OVH_IDS.instances.sbg1 ? 2 : 1
    const moved = await ipmove(
      ['move', '--project', t18s, '--ip-id', v4, '--instance', `bi-edge-sbg-${target}`, '--json'],
      env,
    )
    expect(moved.stderr).toBe('')
    expect(json(moved)).toMatchObject({ ok: true, outcome: 'moved' })
    // The project's other failover IP, by id or by address (which needs the list), is out of reach.
    expectRefused(
      await ipmove(['status', '--project', t18s, '--ip-id', v6, '--json'], env),
      'NOT_GRANTED_CALL',
    )
    expectRefused(
      await ipmove(['status', '--project', t18s, '--ip', '2001:db8:1::10', '--json'], env),
      'NOT_GRANTED_CALL',
    )
  })

  it('takes the named IPs of ipmove.conf, with their project, and refuses IPs of two projects in one key', async () => {
    const env = withApplication(hostEnv())
    writeFileSync(
      env.IPMOVE_CONFIG!,
      `[ip.web]\nip = ${CLOUD_IP}\nproject = ${t18s}\n[ip.db]\nip = 203.0.113.99\nproject = ${staging}\n[ip.old]\nip = ${CLASSIC_IP}\n[ip.eip]\nip = 192.0.2.44\nprovider = aws\n`,
    )
    const made = await ipmove(
      ['ovh', 'credential', '--ip', 'web', '--ovh-conf', join(env.HOME!, '.ovh.conf'), '--json'],
      env,
    )
    expect(made.code, made.stderr).toBe(0)
    expect(json(made).rules).toContainEqual({ method: 'GET', path: `/cloud/project/${t18s}/ip/failover` })

    const before = emulator.requests.length
    for (const second of ['db', 'old']) {
      const mixed = await ipmove(['ovh', 'credential', '--ip', 'web', '--ip', second, '--keyring'], env)
      expect(mixed.code).toBe(2)
      expect(mixed.stderr).toMatch(
        /^ipmove: error: the IPs are in different projects .*; make one key per project\n$/,
      )
    }
    const aws = await ipmove(['ovh', 'credential', '--ip', 'eip', '--keyring'], env)
    expect(aws.code).toBe(2)
    expect(aws.stderr).toContain('--ip eip is an IP of provider aws')
    expect(emulator.requests.length).toBe(before)
  })

  it('refuses to run without a place to store the key, or with a project name, before asking OVH', async () => {
    const env = withApplication(hostEnv())
    const before = emulator.requests.length
    const nowhere = await ipmove(['ovh', 'credential', '--ip', CLASSIC_IP], env)
    expect(nowhere.code).toBe(2)
    expect(nowhere.stderr).toMatch(
      /^ipmove: error: say where to keep the new consumer key.*--ovh-conf FILE or --keyring\n$/,
    )
    const byName = await ipmove(
      ['ovh', 'credential', '--project', 't18s', '--ip', CLOUD_IP, '--ovh-conf', join(env.HOME!, 'x')],
      env,
    )
    expect(byName.code).toBe(2)
    expect(byName.stderr).toContain('give its id (32 hex digits')
    expect(emulator.requests.length).toBe(before)
  })
})
