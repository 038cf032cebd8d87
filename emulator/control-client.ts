/**
 * The client side of the control API (control.ts), for `ipmove emulate control`:
 * one action becomes one request to a running emulator, its JSON answer the
 * result. Plain node:http(s), never through a proxy: the emulator is local.
 */
import { readFile } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { IpmoveError, usageError } from '../src/errors.js'
import { shown } from '../src/validate.js'
import { CONTROL_PREFIX } from './control.js'

/** Each action: its request, and whether it takes a value (a fault spec, a delay). */
export const CONTROL_ACTIONS = {
  state: { method: 'GET', path: 'state' },
  requests: { method: 'GET', path: 'requests' },
  'clear-requests': { method: 'DELETE', path: 'requests' },
  faults: { method: 'GET', path: 'faults' },
  fault: { method: 'POST', path: 'faults', value: 'SPEC' },
  'clear-faults': { method: 'DELETE', path: 'faults' },
  'pending-ms': { method: 'PUT', path: 'pending-ms', value: 'MS' },
  reset: { method: 'POST', path: 'reset' },
} as const satisfies Record<string, { method: string; path: string; value?: string }>

export type ControlAction = keyof typeof CONTROL_ACTIONS

const TIMEOUT_MS = 10_000

/** The body an action sends, from its value; a usage error when the value is missing or wrong. */
function bodyOf(action: ControlAction, value: string | undefined): string | undefined {
  const spec = CONTROL_ACTIONS[action]
  if (!('value' in spec)) {
    if (value !== undefined) throw usageError(`${action} takes no value, got ${shown(value)}`)
    return undefined
  }
  if (value === undefined) throw usageError(`${action} needs ${spec.value}`)
  if (action === 'fault') return JSON.stringify({ fault: value })
  if (!/^\d{1,7}$/.test(value)) throw usageError(`pending-ms ${shown(value)} must be a whole number of ms`)
  return JSON.stringify({ ms: Number(value) })
}

/**
 * Carry out `action` on the emulator at `baseUrl` (its origin, IPMOVE_EMULATOR_URL),
 * trusting `caFile` besides the usual CAs. Refusals are usage errors (exit 2), an
 * emulator that does not answer is unreachable (exit 8).
 */
export async function callControl(
  baseUrl: string,
  action: ControlAction,
  value: string | undefined,
  caFile?: string,
): Promise<Record<string, unknown>> {
  const body = bodyOf(action, value)
  let url: URL
  try {
    url = new URL(`${CONTROL_PREFIX}${CONTROL_ACTIONS[action].path}`, baseUrl)
  } catch {
    throw usageError(`--url ${shown(baseUrl)} is not a URL`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw usageError(`--url ${shown(baseUrl)} must be http:// or https://`)
  let ca: string | undefined
  if (caFile !== undefined) {
    try {
      ca = await readFile(caFile, 'utf8')
    } catch (error) {
      throw usageError(`--ca ${shown(caFile)}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`)
    }
  }
  const { status, text } = await send(url, CONTROL_ACTIONS[action].method, body, ca)
  let answer: unknown
  try {
    answer = JSON.parse(text)
  } catch {
    throw new IpmoveError(
      'unexpected',
      `${url.origin} answered HTTP ${status} without JSON: is it an ipmove emulator?`,
    )
  }
  const fields = (answer ?? {}) as Record<string, unknown>
  if (status >= 400) {
    const message = typeof fields.error === 'string' ? fields.error : `HTTP ${status}`
    throw new IpmoveError(status < 500 ? 'usage' : 'unexpected', `emulator: ${message}`)
  }
  return fields
}

function send(
  url: URL,
  method: string,
  body: string | undefined,
  ca: string | undefined,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const request = (url.protocol === 'https:' ? httpsRequest : httpRequest)(
      url,
      {
        method,
        ...(ca === undefined ? {} : { ca }),
        headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
        timeout: TIMEOUT_MS,
      },
      (response) => {
        const chunks: Buffer[] = []
        response.on('data', (chunk: Buffer) => chunks.push(chunk))
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
        )
        response.on('error', reject)
      },
    )
    request.on('timeout', () => request.destroy(new Error(`no answer in ${TIMEOUT_MS / 1000} s`)))
    request.on('error', (error: NodeJS.ErrnoException) =>
      reject(
        new IpmoveError(
          'unreachable',
          `cannot reach the emulator at ${url.origin}: ${error.code ?? error.message}`,
        ),
      ),
    )
    request.end(body)
  })
}
