/**
 * `ipmove emulate NAME` as a CI job runs it: the built CLI in its own process,
 * its --json line read for the URL and environment, and plain HTTP(S) requests
 * to it that trust its CA the way a non-Node client does (the `ca` option only).
 */
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { ipmoveArgv } from './cli.js'

export interface EmulatorProcess {
  url: string
  port: number
  caFile?: string
  env: Record<string, string>
  /** The emulator's stderr so far (its --debug lines: `emulator: METHOD PATH -> STATUS`). */
  stderr(): string
  stop(): Promise<void>
}

/**
 * Start `ipmove emulate ARGS --json` (with `prefix` before it: `ip netns exec NS`);
 * resolves once it listens, with what it printed.
 */
export async function spawnEmulator(
  args: readonly string[],
  prefix: readonly string[] = [],
  env: NodeJS.ProcessEnv = process.env,
): Promise<EmulatorProcess> {
  const [file, ...argv] = [...prefix, ...ipmoveArgv(['emulate', ...args, '--json'])]
  const child = spawn(file!, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()))
  const ready = await new Promise<Omit<EmulatorProcess, 'stderr' | 'stop'>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the emulator did not start: ${stderr}`)), 30_000)
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
      const line = stdout.split('\n')[0]
      if (stdout.includes('\n') && line) {
        clearTimeout(timer)
        const started = JSON.parse(line) as Omit<EmulatorProcess, 'stderr' | 'stop'> & { ok?: boolean }
        if (started.ok) resolve(started)
        else reject(new Error(`the emulator did not start: ${line}`))
      }
    })
    child.once('close', (code) => {
      clearTimeout(timer)
      reject(new Error(`the emulator exited with ${code}: ${stderr}`))
    })
  })
  return {
    ...ready,
    stderr: () => stderr,
    stop: async () => {
      child.kill('SIGTERM')
      await exited
    },
  }
}

export interface HttpAnswer {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  // biome-ignore lint/suspicious/noExplicitAny: tests read answers of every shape
  json: any
  /** From the request's start to the answer's end. */
  ms: number
}

export interface HttpCallOptions {
  /** Trusted for HTTPS: the emulator's throw-away CA. */
  caFile?: string
  /** An object is sent as JSON; a string is sent as is (set its Content-Type in `headers`). */
  body?: unknown
  headers?: Record<string, string>
  /** Give up with "client timeout" when the socket is idle this long. */
  timeoutMs?: number
}

/** One request to `url`, trusting `caFile` for HTTPS. */
export function httpCall(method: string, url: string, options: HttpCallOptions = {}): Promise<HttpAnswer> {
  const target = new URL(url)
  const sendsJson = options.body !== undefined && typeof options.body !== 'string'
  const payload = sendsJson ? JSON.stringify(options.body) : (options.body as string | undefined)
  const started = Date.now()
  return new Promise((resolve, reject) => {
    const request = (target.protocol === 'https:' ? httpsRequest : httpRequest)(
      target,
      {
        method,
        ...(options.caFile === undefined ? {} : { ca: readFileSync(options.caFile) }),
        ...(options.timeoutMs === undefined ? {} : { timeout: options.timeoutMs }),
        headers: {
          ...(sendsJson ? { 'Content-Type': 'application/json' } : {}),
          ...options.headers,
        },
      },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          text += chunk
        })
        res.on('end', () => {
          let json: unknown
          try {
            json = JSON.parse(text)
          } catch {
            json = undefined
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json, ms: Date.now() - started })
        })
      },
    )
    request.on('timeout', () => request.destroy(new Error('client timeout')))
    request.on('error', reject)
    request.end(payload)
  })
}
