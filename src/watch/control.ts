/**
 * The daemon's control socket: how `ipmove status --watch` reads the running
 * daemon's state and how an operator clears an anti-flap stop.
 *
 * A unix stream socket, by default `watch.sock` in the lock directory
 * (/run/ipmove for root), which is checked as the lock directory is: owned by
 * the daemon's user, not writable by anyone else, not a symlink. The socket is
 * mode 0600 inside that 0700 directory, so only its owner and root may
 * connect: Node cannot read a peer's credentials (SO_PEERCRED), so the file
 * system is what refuses everyone else, before a byte is read.
 *
 * Protocol: the client sends one JSON request on one line, the daemon answers
 * one JSON line and closes. Requests:
 *
 *   {"command":"status"}                    → {"ok":true,"snapshot":DaemonSnapshot}
 *   {"command":"clear-flap","name":"web"}   → {"ok":true,"cleared":"web"}
 *   {"command":"tell","name":"web","wish":"hold"}
 *                                           → {"ok":true,"told":"web","wish":"hold"}
 *     (an engine's script, for source = ucarp; wish is hold or release)
 *   anything else                           → {"ok":false,"error":"…"}
 *
 * A request longer than MAX_REQUEST_BYTES, or a client that has not finished
 * within CLIENT_TIMEOUT_MS, is cut off; clients are served concurrently by
 * the event loop, so one that hangs delays no one.
 */
import { lstatSync, unlinkSync } from 'node:fs'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { dirname, join } from 'node:path'
import { ERROR_KINDS, type ErrorKind, IpmoveError, notFound, usageError } from '../errors.js'
import { lockDir } from '../lock.js'
import type { Logger } from '../output.js'
import { privateDirProblem } from '../secure-file.js'
import type { DaemonSnapshot } from './snapshot.js'
import type { ToldWish } from './sources/source.js'

export const SOCKET_NAME = 'watch.sock'
/** Requests are a few dozen bytes; anything much longer is not a client of ours. */
export const MAX_REQUEST_BYTES = 4096
/** How long a client may take to send its request and read the answer. */
export const CLIENT_TIMEOUT_MS = 2000
/** Connections served at once; Node closes any beyond. */
const MAX_CONNECTIONS = 16
/** A snapshot of many IPs is a few hundred KB at most; a larger answer is not the daemon's. */
const MAX_ANSWER_BYTES = 16 * 1024 * 1024

export type ControlRequest =
  | { command: 'status' }
  | { command: 'clear-flap'; name: string }
  | { command: 'tell'; name: string; wish: ToldWish }

export type ControlAnswer =
  | { ok: true; snapshot: DaemonSnapshot }
  | { ok: true; cleared: string }
  | { ok: true; told: string; wish: ToldWish }
  /** `kind`: the IpmoveError kind of the refusal, so the client exits with the same code. */
  | { ok: false; error: string; kind: ErrorKind }

/** What the daemon does for each request. */
export interface ControlHandlers {
  status(): DaemonSnapshot
  /** Clear the anti-flap stop of one IP; throw an IpmoveError (not-found) for a name not watched. */
  clearFlap(name: string): void
  /** Tell one IP's source the wish; throw not-found for a name not watched, usage for a source not told. */
  tell(name: string, wish: ToldWish): void
}

/** The socket's path: `watch.sock` in the lock directory (IPMOVE_LOCK_DIR, /run/ipmove for root). */
export function controlSocketPath(env: NodeJS.ProcessEnv): string {
  return join(lockDir(env), SOCKET_NAME)
}

export interface ControlServer {
  readonly path: string
  /** Stop accepting, drop the clients still connected, and remove the socket file. */
  close(): Promise<void>
}

function parseRequest(line: string): ControlRequest {
  let request: unknown
  try {
    request = JSON.parse(line)
  } catch {
    throw usageError('the request is not JSON')
  }
  const r = request as { command?: unknown; name?: unknown; wish?: unknown } | null
  if (r?.command === 'status') return { command: 'status' }
  if (r?.command !== 'clear-flap' && r?.command !== 'tell')
    throw usageError('unknown command: expected status, clear-flap or tell')
  if (typeof r.name !== 'string' || r.name === '')
    throw usageError(`${r.command} needs the name of a watched IP`)
  if (r.command === 'clear-flap') return { command: 'clear-flap', name: r.name }
  if (r.wish !== 'hold' && r.wish !== 'release') throw usageError('tell needs a wish: hold or release')
  return { command: 'tell', name: r.name, wish: r.wish }
}

function answer(request: ControlRequest, handlers: ControlHandlers): ControlAnswer {
  switch (request.command) {
    case 'status':
      return { ok: true, snapshot: handlers.status() }
    case 'clear-flap':
      handlers.clearFlap(request.name)
      return { ok: true, cleared: request.name }
    case 'tell':
      handlers.tell(request.name, request.wish)
      return { ok: true, told: request.name, wish: request.wish }
  }
}

/** The answer to one request line; never throws. */
function reply(line: string, handlers: ControlHandlers, log: Logger): ControlAnswer {
  try {
    return answer(parseRequest(line), handlers)
  } catch (error) {
    if (error instanceof IpmoveError) return { ok: false, error: error.message, kind: error.kind }
    // A bug in a handler: the daemon goes on, the operator sees it.
    log.warn(`control socket: ${String(error)}`)
    return { ok: false, error: String(error), kind: 'internal' }
  }
}

/**
 * Serve one connection: read one line (or what came before the client
 * half-closed), answer, close; cut off what is too long or too slow.
 */
function serve(socket: Socket, handlers: ControlHandlers, log: Logger): void {
  const chunks: Buffer[] = []
  let size = 0
  let answered = false
  const respond = (answer: ControlAnswer) => {
    answered = true
    socket.removeAllListeners('data')
    socket.end(`${JSON.stringify(answer)}\n`)
  }
  socket.setTimeout(CLIENT_TIMEOUT_MS, () => socket.destroy())
  socket.on('error', () => {
    // A client that went away: nothing to tell anyone.
  })
  socket.on('data', (chunk: Buffer) => {
    const newline = chunk.indexOf(0x0a)
    const kept = newline < 0 ? chunk : chunk.subarray(0, newline)
    size += kept.length
    if (size > MAX_REQUEST_BYTES) {
      return respond({ ok: false, error: `request longer than ${MAX_REQUEST_BYTES} bytes`, kind: 'usage' })
    }
    chunks.push(kept)
    if (newline >= 0) respond(reply(Buffer.concat(chunks).toString('utf8'), handlers, log))
  })
  socket.once('end', () => {
    if (!answered) respond(reply(Buffer.concat(chunks).toString('utf8'), handlers, log))
  })
}

/** Whether something answers on `path` (a daemon already running), without sending it anything. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path)
    probe.once('connect', () => {
      probe.destroy()
      resolve(true)
    })
    probe.once('error', () => resolve(false))
  })
}

/**
 * Listen on the control socket. Refused (usage error, exit 2) when the
 * directory is not private, when a daemon already answers there, or when
 * something other than a socket has the name; a socket left by a daemon that
 * died is replaced.
 */
export async function startControlServer(options: {
  path: string
  handlers: ControlHandlers
  log: Logger
}): Promise<ControlServer> {
  const { path, handlers, log } = options
  const dir = dirname(path)
  const problem = privateDirProblem(dir, 'IPMOVE_LOCK_DIR')
  if (problem) throw usageError(`control socket directory: ${problem.reason}`, { socket: path })
  let existing: ReturnType<typeof lstatSync> | undefined
  try {
    existing = lstatSync(path)
  } catch {
    // Nothing there: the usual case.
  }
  if (existing) {
    if (!existing.isSocket())
      throw usageError(`${path} exists and is not a socket; remove it or choose another path`)
    if (await answers(path)) throw usageError(`another ipmove watch is running: ${path} answers`)
    unlinkSync(path)
  }
  const server: Server = createServer((socket) => serve(socket, handlers, log))
  server.maxConnections = MAX_CONNECTIONS
  // Created 0600 from the start: the umask applies to the socket's mode, so no moment is it open to others.
  const umask = process.umask(0o177)
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(path, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } finally {
    process.umask(umask)
  }
  const clients = new Set<Socket>()
  server.on('connection', (socket) => {
    clients.add(socket)
    socket.once('close', () => clients.delete(socket))
  })
  return {
    path,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const socket of clients) socket.destroy()
      await closed
      try {
        unlinkSync(path)
      } catch {
        // Already gone (server.close removes it on some platforms).
      }
    },
  }
}

/**
 * Ask the daemon listening on `path`. Fails with a one-line IpmoveError: no
 * daemon (not-found, exit 4), not allowed (auth, exit 3), no answer in time
 * (timeout, exit 5), an answer that is not the daemon's (unexpected, exit 9),
 * or the daemon's own refusal (not-found for an unknown name, else usage).
 */
export function askDaemon(
  path: string,
  request: ControlRequest,
  timeoutMs = 5000,
): Promise<ControlAnswer & { ok: true }> {
  return new Promise((resolve, reject) => {
    const socket = connect(path)
    let received = ''
    const fail = (error: IpmoveError) => {
      socket.destroy()
      reject(error)
    }
    socket.setEncoding('utf8')
    socket.setTimeout(timeoutMs, () =>
      fail(new IpmoveError('timeout', `ipmove watch did not answer on ${path} within ${timeoutMs / 1000} s`)),
    )
    socket.once('connect', () => socket.write(`${JSON.stringify(request)}\n`))
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' || error.code === 'ECONNREFUSED') {
        return fail(notFound(`no ipmove watch is running: nothing listens on ${path}`, { socket: path }))
      }
      if (error.code === 'EACCES' || error.code === 'EPERM') {
        return fail(
          new IpmoveError(
            'auth',
            `not allowed to talk to ipmove watch on ${path}: run as root or as the daemon's user`,
          ),
        )
      }
      fail(
        new IpmoveError(
          'unexpected',
          `cannot talk to ipmove watch on ${path}: ${error.code ?? error.message}`,
        ),
      )
    })
    socket.on('data', (chunk: string) => {
      received += chunk
      if (received.length > MAX_ANSWER_BYTES)
        fail(new IpmoveError('unexpected', `answer on ${path} is too large`))
    })
    socket.once('end', () => {
      let reply: ControlAnswer
      try {
        reply = JSON.parse(received)
      } catch {
        return fail(new IpmoveError('unexpected', `what answers on ${path} is not ipmove watch (not JSON)`))
      }
      if (reply?.ok === true) {
        socket.destroy()
        return resolve(reply)
      }
      const message = typeof reply?.error === 'string' ? reply.error : 'refused without a reason'
      const kind = ERROR_KINDS.includes(reply?.kind) ? reply.kind : 'unexpected'
      fail(new IpmoveError(kind, `ipmove watch: ${message}`))
    })
  })
}
