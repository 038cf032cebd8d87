/**
 * The control API every emulator serves on its own port, under /_emulator/: read
 * the state and the request log, add and clear faults, change how long changes
 * stay pending, reset to the fixture. One port and one certificate serve both the
 * API and its control, so a CI job publishes, trusts and finds only one URL; no
 * emulated API has a path starting with `_emulator`. Answers are JSON, the same
 * for every provider; errors are `{"error": "one line"}`. Control requests are
 * neither recorded nor faulted, so reading the log does not change it and a
 * `path=/**` fault cannot lock the test out.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { IpmoveError } from '../src/errors.js'

export const CONTROL_PREFIX = '/_emulator/'

/** A fault as the control API shows it: its spec and the requests it may still take. */
export interface FaultView {
  spec: string
  left: number | 'forever'
}

/** What the control API acts on: one emulator, whichever its API. */
export interface ControlTarget {
  /** The state without credentials, with the faults, the pending delay and the request count. */
  state(): unknown
  faults(): FaultView[]
  addFault(spec: string): void
  clearFaults(): void
  setPendingMs(ms: number): void
  reset(): void
  /** The request log, oldest first, without credentials. */
  requests(): unknown[]
  clearRequests(): void
}

/** Largest control body: a fault spec is short. */
const MAX_CONTROL_BODY = 64 * 1024
/** As --pending-ms allows. */
const MAX_PENDING_MS = 3_600_000

class ControlError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
  }
}

type Handler = (body: () => Promise<Record<string, unknown>>) => Promise<[number, unknown]>

/** The control routes: path below /_emulator/, then method. */
function routes(target: ControlTarget): Record<string, Record<string, Handler>> {
  return {
    state: { GET: async () => [200, target.state()] },
    faults: {
      GET: async () => [200, { faults: target.faults() }],
      POST: async (body) => {
        const { fault } = await body()
        if (typeof fault !== 'string') throw new ControlError(400, 'give {"fault": "SPEC"}')
        target.addFault(fault)
        return [201, { faults: target.faults() }]
      },
      DELETE: async () => {
        target.clearFaults()
        return [200, { faults: target.faults() }]
      },
    },
    'pending-ms': {
      PUT: async (body) => {
        const { ms } = await body()
        if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 0 || ms > MAX_PENDING_MS) {
          throw new ControlError(400, `give {"ms": N}, N a whole number from 0 to ${MAX_PENDING_MS}`)
        }
        target.setPendingMs(ms)
        return [200, { pendingMs: ms }]
      },
    },
    reset: {
      POST: async () => {
        target.reset()
        return [200, target.state()]
      },
    },
    requests: {
      GET: async () => [200, { requests: target.requests() }],
      DELETE: async () => {
        target.clearRequests()
        return [200, { requests: [] }]
      },
    },
  }
}

/** Answer one request under /_emulator/. */
export async function handleControl(
  target: ControlTarget,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
    if (res.headersSent || res.destroyed) return
    res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...headers })
    res.end(`${JSON.stringify(payload)}\n`)
  }
  try {
    const method = (req.method ?? 'GET').toUpperCase()
    const name = (req.url ?? '').slice(CONTROL_PREFIX.length).split('?')[0]!.replace(/\/$/, '')
    const paths = routes(target)
    const path = Object.hasOwn(paths, name) ? paths[name]! : undefined
    if (!path) {
      throw new ControlError(
        404,
        `no control path /_emulator/${name} (known: ${Object.keys(paths).join(', ')})`,
      )
    }
    const handler = Object.hasOwn(path, method) ? path[method]! : undefined
    if (!handler) {
      const allowed = Object.keys(path).join(', ')
      throw new ControlError(405, `/_emulator/${name} takes ${allowed}`, { Allow: allowed })
    }
    const [status, payload] = await handler(() => jsonBody(req))
    send(status, payload)
  } catch (error) {
    if (error instanceof ControlError) send(error.status, { error: error.message }, error.headers)
    // A fault spec the fault language refuses: its one-line message.
    else if (error instanceof IpmoveError) send(400, { error: error.message })
    else send(500, { error: `emulator error: ${(error as Error).message}` })
  }
}

/** The request body as a JSON object. */
async function jsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > MAX_CONTROL_BODY) throw new ControlError(413, `the body is over ${MAX_CONTROL_BODY} bytes`)
    chunks.push(chunk as Buffer)
  }
  let value: unknown
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new ControlError(400, 'the body is not JSON')
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new ControlError(400, 'the body is not a JSON object')
  return value as Record<string, unknown>
}
