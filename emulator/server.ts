/**
 * The server side both API emulators share: listening (plain HTTP, or HTTPS with
 * a throw-away CA), env.sh once it listens, request recording, fault injection,
 * timers, and a close() that ends hung and half-open connections too. Each
 * emulator extends EmulatorServer and keeps only its API: routing, auth, error
 * format and state.
 */
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
import { applyFault, describeFault, FaultInjector, type FaultSpec } from './faults.js'
import { generateTls } from './tls.js'

/** The options every emulator takes; each one documents its own `pendingMs` and `dir`. */
export interface EmulatorOptions<Fixture> {
  /** 0 (default) picks a free port. */
  port?: number
  /** Default 127.0.0.1. */
  host?: string
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

const MAX_BODY = 1 << 20
/** Old entries go first so a long CI run cannot grow memory without bound. */
const MAX_RECORDED = 10_000

export abstract class EmulatorServer<State, Recorded extends RecordedRequestBase> {
  abstract readonly state: State
  readonly requests: Recorded[] = []
  protected readonly faults: FaultInjector
  protected readonly pendingMs: number
  protected readonly host: string
  protected readonly log: Logger | undefined
  private readonly timers = new Set<NodeJS.Timeout>()
  private readonly sockets = new Set<Socket>()
  private server: Server | undefined
  private closed = false

  constructor(
    private readonly options: EmulatorOptions<unknown>,
    defaultPendingMs: number,
  ) {
    this.host = options.host ?? '127.0.0.1'
    this.pendingMs = options.pendingMs ?? defaultPendingMs
    if (!Number.isInteger(this.pendingMs) || this.pendingMs < 0)
      throw usageError('pendingMs must be a whole number >= 0')
    this.faults = new FaultInjector(options.faults ?? [])
    this.log = options.log
  }

  /** Answer one request in the API's own way. */
  protected abstract handle(req: IncomingMessage, res: ServerResponse): Promise<void>

  /** Answer a request whose handler threw (a bug), like the API's own internal errors. */
  protected abstract internalError(res: ServerResponse, error: Error): void

  /** Listen, then write env.sh; the running emulator's close() also removes a directory it made. */
  protected async listen(spec: ListenSpec): Promise<RunningEmulator<State, Recorded> & { caFile?: string }> {
    // Wildcard addresses are no names to connect to; clients then use loopback.
    const tls = spec.tls
      ? await generateTls([this.host].filter((h) => h !== '0.0.0.0' && h !== '::'))
      : undefined
    const createdDir = this.options.dir === undefined
    const dir = this.options.dir ?? (await mkdtemp(join(tmpdir(), spec.dirPrefix)))
    if (!createdDir) await mkdir(dir, { recursive: true })
    let caFile: string | undefined
    if (tls) {
      caFile = join(dir, 'ca.pem')
      await writeFile(caFile, tls.caCert)
    }

    const onRequest = (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent && !res.destroyed) this.internalError(res, error as Error)
      })
    }
    const server = tls
      ? createHttpsServer({ key: tls.key, cert: tls.cert }, onRequest)
      : createHttpServer(onRequest)
    this.server = server
    // Raw sockets, so that close() can end hung and half-open connections too.
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket)
      socket.on('close', () => this.sockets.delete(socket))
    })
    // A client that drops the TLS handshake must not crash the emulator.
    if (tls) server.on('tlsClientError', () => {})
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => {
        reject(
          new IpmoveError(
            'usage',
            `cannot listen on ${this.host}:${this.options.port ?? 0}: ${error.code ?? error.message}`,
          ),
        )
      })
      server.listen(this.options.port ?? 0, this.host, () => resolve())
    })
    const address = server.address()
    const port = typeof address === 'object' && address ? address.port : 0
    const origin = `${tls ? 'https' : 'http'}://${urlHost(this.host)}:${port}`
    const env = spec.env(origin, caFile)
    // env.sh appears only once the server listens: CI scripts can wait for it, then source it.
    const envFile = join(dir, 'env.sh')
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
      close: async () => {
        await this.close()
        if (createdDir) await rm(dir, { recursive: true, force: true })
      },
    }
  }

  private async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const timer of this.timers) clearTimeout(timer)
    this.timers.clear()
    this.faults.close()
    const server = this.server
    if (!server) return
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    server.closeAllConnections()
    for (const socket of this.sockets) socket.destroy()
    await closed
  }

  /** Run `action` after `ms`, unless the emulator closes first. */
  protected schedule(ms: number, action: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      action()
    }, ms)
    this.timers.add(timer)
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
    return { answered: (await applyFault(fault, res, this.faults, sendStatus)) === 'answered', fault }
  }

  /** The emulator's own part of /_emulator/state: faults with the uses they have left, requests seen. */
  protected emulatorView(): { faults: Array<{ spec: string; left: number | 'forever' }>; requests: number } {
    return {
      faults: this.faults.faults.map((f) => ({
        spec: describeFault(f.spec),
        left: Number.isFinite(f.left) ? f.left : 'forever',
      })),
      requests: this.requests.length,
    }
  }
}

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
