import { chmodSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { connect, createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { notFound } from '../src/errors.js'
import { MemoryLogger } from '../src/output.js'
import {
  askDaemon,
  CLIENT_TIMEOUT_MS,
  type ControlServer,
  controlSocketPath,
  MAX_REQUEST_BYTES,
  startControlServer,
} from '../src/watch/control.js'
import { failure } from './helpers/errors.js'
import { sampleSnapshot } from './helpers/snapshot.js'
import { AS_NOBODY, describeRoot, exec } from './rig/netns.js'

let dir: string
let path: string
let server: ControlServer | undefined
let cleared: string[]
let told: string[]
const log = new MemoryLogger()

const handlers = {
  status: () => sampleSnapshot(),
  clearFlap(name: string) {
    if (name !== 'web') throw notFound(`${name} is not watched`)
    cleared.push(name)
  },
  tell(name: string, wish: string) {
    if (name !== 'web') throw notFound(`${name} is not watched`)
    told.push(`${name}=${wish}`)
  },
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ipmove-control-'))
  path = join(dir, 'run', 'watch.sock')
  cleared = []
  told = []
})
afterEach(async () => {
  await server?.close()
  server = undefined
  rmSync(dir, { recursive: true, force: true })
})

/** Send raw bytes (then half-close, if asked) and collect everything the server says until it closes. */
function rawExchange(bytes: string, halfClose = false): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(path)
    let said = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      said += chunk
    })
    socket.on('error', reject)
    socket.on('close', () => resolve(said))
    if (halfClose) socket.end(bytes)
    else socket.write(bytes)
  })
}

describe('control socket', () => {
  it('lives in the lock directory by default', () => {
    expect(controlSocketPath({ IPMOVE_LOCK_DIR: '/run/x' })).toBe('/run/x/watch.sock')
  })

  it('answers status with the daemon snapshot, whole, over a real unix socket', async () => {
    server = await startControlServer({ path, handlers, log })
    const reply = await askDaemon(path, { command: 'status' })
    expect(reply).toEqual({ ok: true, snapshot: sampleSnapshot() })
  })

  it('is a socket of mode 0600 in a directory of mode 0700 it created, and restores the umask', async () => {
    const umask = process.umask()
    server = await startControlServer({ path, handlers, log })
    expect(lstatSync(path).isSocket()).toBe(true)
    expect(lstatSync(path).mode & 0o777).toBe(0o600)
    expect(lstatSync(join(dir, 'run')).mode & 0o777).toBe(0o700)
    expect(process.umask()).toBe(umask)
  })

  it('clears the anti-flap stop of a watched IP, and refuses an unknown name as not found', async () => {
    server = await startControlServer({ path, handlers, log })
    expect(await askDaemon(path, { command: 'clear-flap', name: 'web' })).toEqual({
      ok: true,
      cleared: 'web',
    })
    expect(cleared).toEqual(['web'])
    const error = await failure(askDaemon(path, { command: 'clear-flap', name: 'db' }))
    expect([error.kind, error.message]).toEqual(['not-found', 'ipmove watch: db is not watched'])
  })

  it('passes on the wish an engine’s script tells, hold or release, and refuses any other', async () => {
    server = await startControlServer({ path, handlers, log })
    expect(await askDaemon(path, { command: 'tell', name: 'web', wish: 'hold' })).toEqual({
      ok: true,
      told: 'web',
      wish: 'hold',
    })
    await askDaemon(path, { command: 'tell', name: 'web', wish: 'release' })
    expect(told).toEqual(['web=hold', 'web=release'])
    expect(JSON.parse(await rawExchange('{"command":"tell","name":"web","wish":"unknown"}\n'))).toEqual({
      ok: false,
      error: 'tell needs a wish: hold or release',
      kind: 'usage',
    })
    expect(JSON.parse(await rawExchange('{"command":"tell","wish":"hold"}\n'))).toMatchObject({
      error: 'tell needs the name of a watched IP',
    })
    const error = await failure(askDaemon(path, { command: 'tell', name: 'db', wish: 'hold' }))
    expect(error.kind).toBe('not-found')
    expect(told).toHaveLength(2)
  })

  it('answers a malformed request with a one-line usage refusal', async () => {
    server = await startControlServer({ path, handlers, log })
    expect(JSON.parse(await rawExchange('hello\n'))).toEqual({
      ok: false,
      error: 'the request is not JSON',
      kind: 'usage',
    })
    expect(JSON.parse(await rawExchange('{"command":"reboot"}\n'))).toMatchObject({
      ok: false,
      error: 'unknown command: expected status, clear-flap or tell',
    })
    expect(JSON.parse(await rawExchange('{"command":"clear-flap"}\n'))).toMatchObject({
      ok: false,
      kind: 'usage',
    })
  })

  it('takes a request the client ends without a newline (echo -n … | socat)', async () => {
    server = await startControlServer({ path, handlers, log })
    expect(JSON.parse(await rawExchange('{"command":"clear-flap","name":"web"}', true))).toEqual({
      ok: true,
      cleared: 'web',
    })
  })

  it('cuts off a request longer than the bound, counted in bytes, without reading the rest', async () => {
    server = await startControlServer({ path, handlers, log })
    // 2000 characters but 6000 bytes.
    const said = await rawExchange(`{"command":"status","x":"${'€'.repeat(2000)}"}\n`)
    expect(JSON.parse(said)).toMatchObject({
      ok: false,
      error: `request longer than ${MAX_REQUEST_BYTES} bytes`,
    })
  })

  it('cuts off a request that never ends, without reading the rest', async () => {
    server = await startControlServer({ path, handlers, log })
    const said = await rawExchange('x'.repeat(MAX_REQUEST_BYTES * 4))
    expect(JSON.parse(said)).toEqual({
      ok: false,
      error: `request longer than ${MAX_REQUEST_BYTES} bytes`,
      kind: 'usage',
    })
  })

  it('serves others at once while a client hangs, and drops the hung one after the client timeout', async () => {
    server = await startControlServer({ path, handlers, log })
    const hung: Socket = connect(path)
    const hungClosed = new Promise<number>((resolve) => hung.on('close', () => resolve(performance.now())))
    hung.on('error', () => {})
    hung.write('{"command":') // and never the rest
    const started = performance.now()
    await askDaemon(path, { command: 'status' })
    expect(performance.now() - started).toBeLessThan(500)
    const closedAt = await hungClosed
    expect(closedAt - started).toBeGreaterThanOrEqual(CLIENT_TIMEOUT_MS - 100)
    expect(closedAt - started).toBeLessThan(CLIENT_TIMEOUT_MS + 1500)
  })

  it('replaces a socket left by a dead daemon, and refuses to start beside a live one', async () => {
    const first = await startControlServer({ path, handlers, log })
    const second = await failure(startControlServer({ path, handlers, log }))
    expect(second.message).toBe(`another ipmove watch is running: ${path} answers`)
    await first.close()
    // What a killed daemon leaves: the socket's file, and nothing listening on it.
    const bound = await exec([
      'python3',
      '-c',
      'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])',
      path,
    ])
    expect(bound.code).toBe(0)
    expect(lstatSync(path).isSocket()).toBe(true)
    server = await startControlServer({ path, handlers, log })
    expect(await askDaemon(path, { command: 'status' })).toMatchObject({ ok: true })
  })

  it('refuses a directory others may write, a symlinked one, and a name that is not a socket', async () => {
    mkdirSync(join(dir, 'run'), { mode: 0o700 })
    chmodSync(join(dir, 'run'), 0o777)
    expect((await failure(startControlServer({ path, handlers, log }))).message).toMatch(
      /^control socket directory: .*run is writable by others \(mode 0777\)/,
    )
    chmodSync(join(dir, 'run'), 0o700)
    writeFileSync(path, 'not a socket')
    expect((await failure(startControlServer({ path, handlers, log }))).message).toBe(
      `${path} exists and is not a socket; remove it or choose another path`,
    )
    symlinkSync(join(dir, 'run'), join(dir, 'link'))
    expect(
      (await failure(startControlServer({ path: join(dir, 'link', 'watch.sock'), handlers, log }))).message,
    ).toMatch(/is a symlink, which ipmove does not follow/)
  })

  it('closes: clients dropped, socket file removed', async () => {
    server = await startControlServer({ path, handlers, log })
    const lingering = connect(path)
    lingering.on('error', () => {})
    const dropped = new Promise<void>((resolve) => lingering.on('close', () => resolve()))
    await new Promise<void>((resolve) => lingering.on('connect', () => resolve()))
    await server.close()
    server = undefined
    await dropped
    expect(() => lstatSync(path)).toThrow(/ENOENT/)
  })
})

describe('control client', () => {
  it('says no daemon runs when nothing listens (not found, exit 4)', async () => {
    const error = await failure(askDaemon(join(dir, 'none.sock'), { command: 'status' }))
    expect([error.kind, error.message]).toEqual([
      'not-found',
      `no ipmove watch is running: nothing listens on ${join(dir, 'none.sock')}`,
    ])
  })

  it('gives up on a daemon that does not answer (timeout, exit 5)', async () => {
    const silent = createServer(() => {})
    await new Promise<void>((resolve) => silent.listen(path.replace('run/', ''), resolve))
    try {
      const error = await failure(askDaemon(path.replace('run/', ''), { command: 'status' }, 300))
      expect([error.kind, error.message]).toEqual([
        'timeout',
        `ipmove watch did not answer on ${path.replace('run/', '')} within 0.3 s`,
      ])
    } finally {
      silent.close()
    }
  })

  it('refuses an answer that is not the daemon’s (unexpected, exit 9)', async () => {
    const other = createServer((socket) => socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'))
    const at = join(dir, 'other.sock')
    await new Promise<void>((resolve) => other.listen(at, resolve))
    try {
      const error = await failure(askDaemon(at, { command: 'status' }))
      expect([error.kind, error.message]).toEqual([
        'unexpected',
        `what answers on ${at} is not ipmove watch (not JSON)`,
      ])
    } finally {
      other.close()
    }
  })
})

describeRoot('control socket permissions', () => {
  it('refuses a client that is not root, even through a directory it may enter', async () => {
    server = await startControlServer({ path, handlers, log })
    // Open the directories, so that only the socket's own mode stands in the way.
    chmodSync(dir, 0o755)
    chmodSync(join(dir, 'run'), 0o755)
    const script = `require('net').connect(${JSON.stringify(path)}).on('connect', () => { console.log('connected'); process.exit(0) }).on('error', (e) => { console.log(e.code); process.exit(1) })`
    const asNobody = await exec([...AS_NOBODY, process.execPath, '-e', script])
    expect(asNobody.stdout.trim()).toBe('EACCES')
    const asRoot = await exec([process.execPath, '-e', script])
    expect(asRoot.stdout.trim()).toBe('connected')
  })
})
