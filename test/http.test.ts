/**
 * The HTTP layer under faults a real server can produce, against a real local
 * server. The file runs with --expose-gc (vitest.config.ts) so a test can force
 * the garbage collections that hit a long run.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { HttpClient, MAX_BODY_BYTES } from '../providers/http.js'
import { MemoryLogger } from '../src/output.js'
import { failure } from './helpers/errors.js'

const servers: http.Server[] = []

/** A local server answering each request with `handle`; returns its URL. */
async function serve(handle: (req: http.IncomingMessage, res: http.ServerResponse, n: number) => void) {
  let n = 0
  const server = http.createServer((req, res) => handle(req, res, ++n))
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/x`)
}

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
})

/** A caller's deadline that a collection cannot lose: the test holds the controller. */
function deadline(ms: number): { signal: AbortSignal; clear: () => void } {
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(), ms)
  return { signal: controller.signal, clear: () => clearTimeout(timer) }
}

describe('HttpClient', () => {
  it('abandons a hung attempt after the per-request timeout and retries, even after a GC', async () => {
    const gc = (globalThis as { gc?: () => void }).gc
    expect(gc, 'run with --expose-gc (vitest.config.ts)').toBeTypeOf('function')
    let hung: () => void = () => {}
    const received = new Promise<void>((resolve) => {
      hung = resolve
    })
    const url = await serve((_req, res, n) => {
      if (n === 1)
        hung() // never answered
      else res.end('{}')
    })
    const client = new HttpClient({ log: new MemoryLogger(), requestTimeoutMs: 400, minBackoffMs: 10 })
    const { signal, clear } = deadline(5_000)
    const started = Date.now()
    try {
      const answer = client.send({ method: 'GET', url }, signal)
      await received
      for (let i = 0; i < 3; i++) gc?.()
      expect((await answer).status).toBe(200)
      expect(client.attempts).toBe(2)
      expect(Date.now() - started).toBeLessThan(2_000)
    } finally {
      clear()
      client.close()
    }
  })

  for (const declared of [true, false]) {
    it(`stops reading an answer over ${MAX_BODY_BYTES / 1024 / 1024} MiB (${declared ? 'declared' : 'chunked'}): exit 9, not retried`, async () => {
      let sent = 0
      const url = await serve((_req, res) => {
        const chunk = Buffer.alloc(64 * 1024, 'a')
        const total = 1024 * 1024 * 1024 // a 1 GB answer
        if (declared) res.setHeader('Content-Length', total)
        const pump = () => {
          while (sent < total && res.write(chunk)) sent += chunk.length
        }
        res.on('drain', pump)
        res.on('close', () => res.off('drain', pump))
        pump()
      })
      const client = new HttpClient({ log: new MemoryLogger(), minBackoffMs: 10 })
      const { signal, clear } = deadline(10_000)
      try {
        const error = await failure(client.send({ method: 'GET', url }, signal))
        expect(error.kind).toBe('unexpected')
        expect(error.message).toMatch(/answered more than 4 MiB; gave up reading it/)
        expect(client.attempts).toBe(1)
        expect(sent).toBeLessThan(64 * 1024 * 1024)
      } finally {
        clear()
        client.close()
      }
    })
  }
})
