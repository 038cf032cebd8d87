/**
 * HTTP(S) GET: the status is one of those expected and, when asked, the body
 * matches (seed 002: "request a web page and make sure it has a closing
 * </html>"). Redirects are not followed: a 301 is an answer like any other.
 * A fresh connection per run, so a dead server cannot hide behind a kept-alive
 * socket.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { usageError } from '../errors.js'
import { shown } from '../validate.js'
import { type Probe, periodicProbe, reason, type Timing } from './probe.js'

export interface HttpSpec extends Timing {
  url: string
  /** Statuses that count as healthy; any 2xx when not given. */
  status?: readonly number[]
  /** The body must contain this text, or match this pattern. The body is read only when this is set. */
  body?: string | RegExp
  /**
   * Host header and TLS server name, for probing a name at a given address
   * (the failover IP, as clients see it): url https://203.0.113.5/, host www.example.com.
   */
  host?: string
  /** Accept any certificate (a self-signed one on an internal service). */
  insecure?: boolean
  /** Bodies longer than this fail rather than being read without end. */
  maxBodyBytes?: number
}

const DEFAULT_MAX_BODY = 1024 * 1024

function parseUrl(text: string): URL {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw usageError(`http probe: ${shown(text)} is not a URL`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw usageError(`http probe: ${shown(text)} must start with http:// or https://`)
  }
  return url
}

/** Read the body up to `max` bytes, then test it against `want`. */
function checkBody(
  response: IncomingMessage,
  want: string | RegExp,
  max: number,
): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    response.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > max) {
        response.destroy()
        resolve(`body larger than ${max} bytes`)
        return
      }
      chunks.push(chunk)
    })
    response.once('end', () => {
      const text = Buffer.concat(chunks).toString('utf8')
      const found = typeof want === 'string' ? text.includes(want) : text.search(want) >= 0
      resolve(found ? undefined : `body does not match ${typeof want === 'string' ? shown(want) : want}`)
    })
    response.once('error', reject)
  })
}

export function httpProbe(spec: HttpSpec): Probe {
  const url = parseUrl(spec.url)
  const { status, body, host, insecure } = spec
  const maxBody = spec.maxBodyBytes ?? DEFAULT_MAX_BODY
  const healthy = (code: number) => (status ? status.includes(code) : code >= 200 && code < 300)
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest
  return periodicProbe(`http ${url.href}`, spec, (signal) => {
    return new Promise((resolve) => {
      const req = send(url, {
        method: 'GET',
        signal,
        agent: false,
        headers: { ...(host ? { host } : {}), 'user-agent': 'ipmove-watch' },
        ...(host ? { servername: host } : {}),
        ...(insecure ? { rejectUnauthorized: false } : {}),
      })
      req.once('error', (error) => resolve({ ok: false, detail: reason(error) }))
      req.once('response', (response) => {
        const code = response.statusCode ?? 0
        const line = `HTTP ${code}`
        if (!healthy(code) || body === undefined) {
          response.destroy()
          resolve({ ok: healthy(code), detail: line })
          return
        }
        checkBody(response, body, maxBody).then(
          (mismatch) => resolve({ ok: !mismatch, detail: mismatch ? `${line}, ${mismatch}` : line }),
          (error: unknown) => resolve({ ok: false, detail: `${line}, ${reason(error)}` }),
        )
      })
      req.end()
    })
  })
}
