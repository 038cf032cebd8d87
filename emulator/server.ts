/**
 * The server side every API emulator shares: listening (plain HTTP, or HTTPS with
 * a throw-away CA whose certificate names every --host), env.sh once it listens,
 * request recording, fault injection, timers, the control API under /_emulator/
 * (control.ts), and a close() that ends hung and half-open connections too. Each
 * emulator extends EmulatorServer and keeps only its API: routing, auth, error
 * format and state.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { timingSafeEqual } from 'node:crypto'
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { isIP, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { IpmoveError, usageError } from '../src/errors.js'
import type { Logger } from '../src/output.js'
import { CONTROL_PREFIX, type ControlTarget, type FaultView, handleControl } from './control.js'
import { applyFault, describeFault, FaultInjector, type FaultSpec } from './faults.js'
import { generateTls } from './tls.js'

/** The options every emulator takes; each one documents its own `pendingMs` and `dir`. */
export interface EmulatorOptions<Fixture> {
  /** 0 (default) picks a free port. */
  port?: number
  /**
   * Where to listen, default 127.0.0.1. Several: one listener each on the same port,
   * except that a wildcard (0.0.0.0, ::) is listened on alone and the other names
   * only go on the certificate. The first name that is no wildcard goes in the URL.
   */
  host?: string | readonly string[]
  /** How long a change takes, ms. */
  pendingMs?: number
  faults?: Array<FaultSpec | string>
  fixture?: Fixture
  /** Where to write env.sh; default a fresh temporary directory, removed on close. */
  dir?: string
  /** Instance name or id the metadata service reports as "this host". */
  thisHost?: string
  /** Receives one debug line per request. */
  log?: Logger
}

/** What every emulator records of a request. */
export interface RecordedRequestBase {
  method: string
  path: string
  /** 0 while unanswered, and for requests a reset or hang fault took. */
  status: number
  /** The fault that took this request, in spec syntax. */
  fault?: string
}

export interface RunningEmulator<State, Recorded> {
  url: string
  port: number
  env: Record<string, string>
  /** Live and mutable: tests may change it between calls, as another client would. */
  state: State
  requests: Recorded[]
  addFault(spec: FaultSpec | string): void
  /** Drop every fault (those still hanging or dripping carry on). */
  clearFaults(): void
  /** Back to the start: the fixture's state, the --fault list, the --pending-ms, no requests. */
  reset(): void
  close(): Promise<void>
}

/** How an emulator listens and what it tells its clients. */
export interface ListenSpec {
  /** HTTPS with a fresh throw-away CA, written to ca.pem beside env.sh; else plain HTTP. */
  tls: boolean
  /** Name prefix of the temporary directory made when no `dir` is given. */
  dirPrefix: string
  /** The API's URL, from the server's origin (e.g. https://127.0.0.1:PORT). */
  url(origin: string): string
  /** The environment that points a client at the emulator. */
  env(origin: string, caFile: string | undefined): Record<string, string>
}

/** What one request may change for itself: a `pending=MS` fault's delay. */
interface RequestScope {
  pendingMs?: number
}

const MAX_BODY = 1 << 20
/** Old entries go first so a long CI run cannot grow memory without bound. */
const MAX_RECORDED = 10_000

export abstract class EmulatorServer<State extends object, Recorded extends RecordedRequestBase> {
  abstract readonly state: State
  readonly requests: Recorded[] = []
  protected readonly faults: FaultInjector
  protected readonly hosts: readonly string[]
  protected readonly log: Logger | undefined
  /** How long a change takes unless a `pending=MS` fault says otherwise; the control API may change it. */
  private defaultPendingMs: number
  private readonly startPendingMs: number
  private readonly requestScope = new AsyncLocalStorage<RequestScope>()
  /** Pending changes; each may have something to do when a reset drops it (end a waiting request). */
  private readonly timers = new Map<NodeJS.Timeout, (() => void) | undefined>()
  private readonly sockets = new Set<Socket>()
  private readonly servers: Server[] = []
  private closed = false

  constructor(
    protected readonly options: EmulatorOptions<unknown>,
    defaultPendingMs: number,
  ) {
    const host = options.host ?? '127.0.0.1'
    this.hosts = typeof host === 'string' ? [host] : [...new Set(host)]
    if (this.hosts.length === 0) throw usageError('host: give at least one address or name')
    this.startPendingMs = options.pendingMs ?? defaultPendingMs
    if (!Number.isInteger(this.startPendingMs) || this.startPendingMs < 0)
      throw usageError('pendingMs must be a whole number >= 0')
    this.defaultPendingMs = this.startPendingMs
    this.faults = new FaultInjector(options.faults ?? [])
    this.log = options.log
  }

  /** How long a change started by the current request takes, ms. */
  protected get pendingMs(): number {
    return this.requestScope.getStore()?.pendingMs ?? this.defaultPendingMs
  }

  /** Answer one request in the API's own way. */
  protected abstract handle(req: IncomingMessage, res: ServerResponse): Promise<void>

  /** Answer a request whose handler threw (a bug), like the API's own internal errors. */
  protected abstract internalError(res: ServerResponse, error: Error): void

  /** The state as the options' fixture makes it: at start, and again at each reset. */
  protected abstract freshState(): State

  /** The part of the state /_emulator/state shows (credentials left out). */
  protected abstract stateView(): unknown

  /** What else a reset starts afresh besides the state (rate-limit budgets, say). */
  protected afterReset(): void {}

  /**
   * Back to how the emulator started: the fixture's state (in place, so that
   * `running.state` stays live), the --fault list with its counts, the start
   * --pending-ms and an empty request log. Pending changes are dropped; a request
   * waiting on one loses its connection, as at a restart.
   */
  reset(): void {
    for (const [timer, onReset] of this.timers) {
      clearTimeout(timer)
      onReset?.()
    }
    this.timers.clear()
    const fresh = this.freshState()
    for (const key of Object.keys(this.state)) delete (this.state as Record<string, unknown>)[key]
    Object.assign(this.state, fresh)
    this.faults.clear()
    for (const spec of this.options.faults ?? []) this.faults.add(spec)
    this.defaultPendingMs = this.startPendingMs
    this.requests.length = 0
    this.afterReset()
  }

  /** Listen, then write env.sh; the running emulator's close() also removes a directory it made. */
  protected async listen(spec: ListenSpec): Promise<RunningEmulator<State, Recorded> & { caFile?: string }> {
    const { listenOn, names } = listenPlan(this.hosts)
    const tls = spec.tls ? await generateTls(names) : undefined
    const createdDir = this.options.dir === undefined
    const dir = this.options.dir ?? (await mkdtemp(join(tmpdir(), spec.dirPrefix)))
    const envFile = join(dir, 'env.sh')
    if (!createdDir) {
      await mkdir(dir, { recursive: true })
      // env.sh means "listening": one left by an earlier run must not say so before this one does.
      await rm(envFile, { force: true })
    }
    let caFile: string | undefined
    if (tls) {
      caFile = join(dir, 'ca.pem')
      await writeFile(caFile, tls.caCert)
    }

    const onRequest = (req: IncomingMessage, res: ServerResponse) => {
      // The control API is the emulator's own: no fault, no record, no API rules.
      if (req.url?.startsWith(CONTROL_PREFIX)) {
        void handleControl(this.controls(), req, res)
        return
      }
      this.requestScope
        .run({}, () => this.handle(req, res))
        .catch((error: unknown) => {
          if (error instanceof DroppedByReset) res.socket?.destroy()
          else if (!res.headersSent && !res.destroyed) this.internalError(res, error as Error)
        })
    }
    let port = this.options.port ?? 0
    // Every listener after the first takes the port the first one got.
    for (const host of listenOn) {
      const server = tls
        ? createHttpsServer({ key: tls.key, cert: tls.cert }, onRequest)
        : createHttpServer(onRequest)
      this.servers.push(server)
      // Raw sockets, so that close() can end hung and half-open connections too.
      server.on('connection', (socket: Socket) => {
        this.sockets.add(socket)
        socket.on('close', () => this.sockets.delete(socket))
      })
      // A client that drops the TLS handshake must not crash the emulator.
      if (tls) server.on('tlsClientError', () => {})
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', (error: NodeJS.ErrnoException) => {
            reject(
              new IpmoveError('usage', `cannot listen on ${host}:${port}: ${error.code ?? error.message}`),
            )
          })
          server.listen(port, host, () => resolve())
        })
      } catch (error) {
        await this.close()
        if (createdDir) await rm(dir, { recursive: true, force: true })
        throw error
      }
      const address = server.address()
      port = typeof address === 'object' && address ? address.port : 0
    }
    // Wildcard addresses are no names to connect to; clients then use loopback.
    const origin = `${tls ? 'https' : 'http'}://${urlHost(names[0] ?? listenOn[0]!)}:${port}`
    const env = { ...spec.env(origin, caFile), IPMOVE_EMULATOR_URL: origin }
    // env.sh appears only once the server listens: CI scripts can wait for it, then source it.
    await writeFile(`${envFile}.tmp`, `${envLines(env).join('\n')}\n`)
    await rename(`${envFile}.tmp`, envFile)

    return {
      url: spec.url(origin),
      port,
      ...(caFile === undefined ? {} : { caFile }),
      env,
      state: this.state,
      requests: this.requests,
      addFault: (spec) => this.faults.add(spec),
      clearFaults: () => this.faults.clear(),
      reset: () => this.reset(),
      close: async () => {
        await this.close()
        if (createdDir) await rm(dir, { recursive: true, force: true })
      },
    }
  }

  /** What the control API may read and change. */
  private controls(): ControlTarget {
    return {
      state: () => ({ ...(this.stateView() as object), ...this.emulatorView() }),
      faults: () => this.emulatorView().faults,
      addFault: (spec) => this.faults.add(spec),
      clearFaults: () => this.faults.clear(),
      setPendingMs: (ms) => {
        this.defaultPendingMs = ms
      },
      reset: () => this.reset(),
      requests: () =>
        this.requests.map(
          ({ authorization: _, ...request }: Recorded & { authorization?: string }) => request,
        ),
      clearRequests: () => {
        this.requests.length = 0
      },
    }
  }

  private async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const timer of this.timers.keys()) clearTimeout(timer)
    this.timers.clear()
    this.faults.close()
    const closing = this.servers
      .filter((server) => server.listening)
      .map((server) => new Promise<void>((resolve) => server.close(() => resolve())))
    for (const server of this.servers) server.closeAllConnections()
    for (const socket of this.sockets) socket.destroy()
    await Promise.all(closing)
  }

  /**
   * Run `action` after `ms`, unless the emulator closes or resets first; `onReset`
   * runs instead when a reset drops it (to end a request waiting on it).
   */
  protected schedule(ms: number, action: () => void, onReset?: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      action()
    }, ms)
    this.timers.set(timer, onReset)
  }

  /** The request body, or undefined once it grows past 1 MiB. */
  protected async readBody(req: IncomingMessage): Promise<Buffer | undefined> {
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of req) {
      size += (chunk as Buffer).length
      if (size > MAX_BODY) return undefined
      chunks.push(chunk as Buffer)
    }
    return Buffer.concat(chunks)
  }

  /** Keep a request for tests and /_emulator/state. */
  protected record(request: Recorded): void {
    this.requests.push(request)
    if (this.requests.length > MAX_RECORDED) this.requests.shift()
  }

  /**
   * Take the first fault that matches this request and carry it out. `answered` when
   * the fault dealt with the request (answered it, dropped it or left it hanging);
   * otherwise the normal answer should follow (through `res`, which a `drip` or
   * `reset-after` fault has rigged), and `fault` is the one taken, if any.
   */
  protected async injectFault(
    method: string,
    segments: readonly string[],
    record: Recorded,
    res: ServerResponse,
    sendStatus: (status: number, headers: Record<string, string>) => void,
  ): Promise<{ answered: boolean; fault?: FaultSpec }> {
    const fault = this.faults.take(method, segments)
    if (!fault) return { answered: false }
    record.fault = describeFault(fault)
    // Answers the fault writes itself; the emulator records its own.
    if (fault.action.type === 'body') record.status = fault.action.status
    if (fault.action.type === 'size') record.status = 200
    // The rest of this request (the change it starts) takes the fault's delay.
    if (fault.action.type === 'pending') {
      const scope = this.requestScope.getStore()
      if (scope) scope.pendingMs = fault.action.ms
    }
    return { answered: (await applyFault(fault, res, this.faults, sendStatus)) === 'answered', fault }
  }

  /** The emulator's own part of /_emulator/state: faults with the uses they have left, delay, requests seen. */
  private emulatorView(): { faults: FaultView[]; pendingMs: number; requests: number } {
    return {
      faults: this.faults.faults.map((f) => ({
        spec: describeFault(f.spec),
        left: Number.isFinite(f.left) ? f.left : 'forever',
      })),
      pendingMs: this.defaultPendingMs,
      requests: this.requests.length,
    }
  }
}

/** What a request waiting on a change gets when a reset drops the change: its connection closed. */
export class DroppedByReset extends Error {
  constructor() {
    super('the emulator was reset')
  }
}

/**
 * Which addresses to listen on and which names the certificate and URL carry:
 * a wildcard covers every address, so it is listened on alone.
 */
export function listenPlan(hosts: readonly string[]): { listenOn: string[]; names: string[] } {
  const names = hosts.filter((h) => !WILDCARDS.includes(h))
  const wildcard = hosts.find((h) => WILDCARDS.includes(h))
  return { listenOn: wildcard === undefined ? names : [wildcard], names }
}

const WILDCARDS = ['0.0.0.0', '::']

/** A host to put in a URL: wildcard addresses become loopback, IPv6 gets brackets. */
export function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1'
  if (host === '::') return '[::1]'
  return isIP(host) === 6 ? `[${host}]` : host
}

/** Constant-time comparison, for secrets and signatures. */
export function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** `export NAME=value` lines, quoted for sh where a value needs it. */
export function envLines(env: Record<string, string>): string[] {
  return Object.entries(env).map(([name, value]) => {
    const quoted = /^[A-Za-z0-9_@%+=:,./-]*$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`
    return `export ${name}=${quoted}`
  })
}
