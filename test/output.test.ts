import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, it, vi } from 'vitest'
import { MAX_LINE, MemoryLogger, Output, printable, redact, registerSecret } from '../src/output.js'
import { controlCharacters } from './helpers/errors.js'

/** A writable that records what it gets and claims to be (or not) a terminal. */
function sink(isTTY: boolean) {
  const chunks: string[] = []
  const stream = { isTTY, write: (chunk: string) => chunks.push(chunk) > 0 } as unknown as NodeJS.WriteStream
  return { stream, text: () => chunks.join('') }
}

describe('Output', () => {
  it('shows progress on stderr with elapsed time on a terminal, and clears it before the next line', () => {
    let now = 1_000
    const out = sink(false)
    const err = sink(true)
    const output = new Output({
      json: false,
      syslog: false,
      debug: false,
      stdout: out.stream,
      stderr: err.stream,
      now: () => now,
    })
    now += 2_500
    output.progress('waiting for ovh: status operationPending, 40%')
    output.info('moved')
    output.result({ ok: true })
    // stdout stays plain lines, for a hook's log even when a person watches the terminal.
    expect(out.text()).toBe('moved\n')
    expect(err.text()).toBe('\r\x1b[2Kwaiting for ovh: status operationPending, 40% (2.5 s)\r\x1b[2K')
  })

  it('cuts the progress line to the terminal’s width, so that a redraw leaves no wrapped row behind', () => {
    const err = sink(true)
    ;(err.stream as { columns?: number }).columns = 80
    const output = new Output({ json: false, syslog: false, debug: false, stderr: err.stream, now: () => 0 })
    const long = `waiting for ovh: ${'status operationPending, task 42 doing, '.repeat(3)}40%`
    expect(long.length).toBeGreaterThan(110)
    output.progress(long)
    output.progress(long)
    const drawn = err.text().split('\r\x1b[2K').filter(Boolean)
    expect(drawn).toHaveLength(2)
    for (const line of drawn) {
      expect([...line].length).toBeLessThanOrEqual(79)
      expect(line).toMatch(/^waiting for ovh: status .*… \(0\.0 s\)$/)
    }
    output.result({})
  })

  it('keeps the elapsed time ticking while nothing new comes (a request that hangs)', async () => {
    vi.useFakeTimers()
    try {
      let now = 0
      const err = sink(true)
      const output = new Output({
        json: false,
        syslog: false,
        debug: false,
        stderr: err.stream,
        now: () => now,
      })
      output.progress('waiting for ovh: status operationPending')
      for (let i = 0; i < 8; i++) {
        now += 250
        await vi.advanceTimersByTimeAsync(250)
      }
      expect(err.text()).toContain('operationPending (1.0 s)')
      expect(err.text()).toContain('operationPending (2.0 s)')
      // A warning goes on a line of its own, and the progress line comes back under it.
      output.warn('slow answer')
      expect(
        err
          .text()
          .endsWith(
            '\r\x1b[2Kipmove: warning: slow answer\n\r\x1b[2Kwaiting for ovh: status operationPending (2.0 s)',
          ),
      ).toBe(true)
      // Once ended, it stays ended.
      output.result({})
      const ended = err.text()
      await vi.advanceTimersByTimeAsync(2_000)
      expect(err.text()).toBe(ended)
      expect(vi.getTimerCount()).toBe(0)
    } finally {
      vi.useRealTimers()
    }
  })

  it('gives hooks plain lines only: no progress off a terminal', () => {
    const out = sink(false)
    const err = sink(false)
    const output = new Output({
      json: false,
      syslog: false,
      debug: false,
      stdout: out.stream,
      stderr: err.stream,
    })
    output.progress('waiting')
    output.info('moved')
    expect(out.text()).toBe('moved\n')
    expect(err.text()).toBe('')
  })

  it('prints exactly one JSON object with --json, and warnings on stderr', () => {
    const out = sink(false)
    const err = sink(false)
    const output = new Output({
      json: true,
      syslog: false,
      debug: false,
      stdout: out.stream,
      stderr: err.stream,
    })
    output.info('a line')
    output.warn('careful')
    output.result({ ok: true })
    expect(out.text()).toBe('{"ok":true}\n')
    expect(err.text()).toBe('ipmove: warning: careful\n')
  })

  it('redacts registered secrets from every line, JSON included', () => {
    registerSecret('s3cr3t-value-xyz')
    const out = sink(false)
    const err = sink(false)
    const output = new Output({
      json: true,
      syslog: false,
      debug: true,
      stdout: out.stream,
      stderr: err.stream,
    })
    output.debug('header was s3cr3t-value-xyz')
    output.error('bad s3cr3t-value-xyz')
    output.result({ echoed: 'x s3cr3t-value-xyz y' })
    expect(out.text() + err.text()).not.toContain('s3cr3t-value-xyz')
    expect(redact('a s3cr3t-value-xyz b')).toBe('a *** b')
  })

  it('escapes control characters, so API text cannot forge a second line or drive the terminal', () => {
    const err = sink(true)
    const output = new Output({
      json: false,
      syslog: false,
      debug: true,
      stdout: sink(true).stream,
      stderr: err.stream,
    })
    const forged = 'denied\nipmove: error: \x1b[32mall good\x1b[0m\r\u2028\x7f\x9b'
    output.error(forged)
    output.warn(forged)
    output.debug(forged)
    const lines = err.text().split('\n').filter(Boolean)
    expect(lines).toHaveLength(3)
    expect(lines[0]).toBe(
      'ipmove: error: denied\\nipmove: error: \\u001b[32mall good\\u001b[0m\\r\\u2028\\u007f\\u009b',
    )
    // Nothing left that a terminal or syslog would act on.
    expect(controlCharacters(err.text())).toEqual([])
    const memory = new MemoryLogger()
    memory.info(forged)
    expect(memory.lines[0]).not.toContain('\n')
  })

  it('caps an echoed value: a 100 KB API message prints as one bounded line', () => {
    const err = sink(false)
    const output = new Output({ json: false, syslog: false, debug: false, stderr: err.stream })
    output.error(`OVH said: ${'x'.repeat(100_000)}`)
    const text = err.text()
    expect(text.length).toBeLessThan(MAX_LINE + 100)
    expect(text).toMatch(/… \(\d+ more characters\)\n$/)
  })

  it('redacts before it caps, so a cut never leaves part of a secret', () => {
    registerSecret('cut-secret-abcdefghij')
    const text = printable(`${'y'.repeat(MAX_LINE - 5)}cut-secret-abcdefghij`)
    expect(text).not.toContain('cut-s')
  })

  it('redacts every form a secret takes: JSON-escaped, percent-encoded, form-encoded, doubly escaped', () => {
    const secret = 'ck"quote\\back/slash+plus=9Zx'
    registerSecret(secret)
    const forms = [
      secret,
      JSON.stringify(secret).slice(1, -1),
      JSON.stringify(JSON.stringify(secret)).slice(1, -1),
      encodeURIComponent(secret),
      encodeURIComponent(secret).replace(/%[0-9A-F]{2}/g, (hex) => hex.toLowerCase()),
      new URLSearchParams({ k: secret }).toString().slice(2),
    ]
    const out = sink(false)
    const err = sink(false)
    const output = new Output({
      json: true,
      syslog: false,
      debug: true,
      stdout: out.stream,
      stderr: err.stream,
    })
    for (const form of forms) {
      output.error(`the API said: {"headers":{"X-Ovh-Consumer":"${form}"}}`)
      output.debug(`echo ${form}`)
    }
    // Our own --json escapes the API's escaped text once more.
    output.result({ error: { message: `{"X-Ovh-Consumer":${JSON.stringify(secret)}}` } })
    const printed = out.text() + err.text()
    for (const form of forms) expect(printed).not.toContain(form)
    expect(printed).not.toContain('quote')
  })

  it('never prints the password of a URL, registered or not', () => {
    expect(redact('cannot reach https://ipmove:pw-in-url-123@api.example.com/1.0: refused')).toBe(
      'cannot reach https://***@api.example.com/1.0: refused',
    )
    expect(printable('"http://u:p@127.0.0.1:8080/x"')).toBe('"http://***@127.0.0.1:8080/x"')
  })

  it('sends lines to syslog through logger(1) with an argument vector', async () => {
    // A stand-in logger(1) on PATH records its argv, one argument per line.
    const dir = mkdtempSync(join(tmpdir(), 'ipmove-logger-'))
    const record = join(dir, 'argv')
    writeFileSync(join(dir, 'logger'), `#!/bin/sh\nprintf '%s\\n' "$@" >> '${record}'\n`)
    chmodSync(join(dir, 'logger'), 0o755)
    const path = process.env.PATH
    process.env.PATH = `${dir}:${path}`
    try {
      const output = new Output({
        json: true,
        syslog: true,
        debug: false,
        stdout: sink(false).stream,
        stderr: sink(false).stream,
      })
      output.info('moved 203.0.113.10; $(reboot)')
      output.error('refused\nipmove: error: forged')
      let text = ''
      for (let i = 0; i < 50 && text.split('\n').length < 13; i++) {
        await sleep(20)
        text = (() => {
          try {
            return readFileSync(record, 'utf8')
          } catch {
            return ''
          }
        })()
      }
      expect(text).toContain('-t\nipmove\n-p\ndaemon.notice\n--\nmoved 203.0.113.10; $(reboot)\n')
      // One argument per line: a newline in the message would have made a line of its own.
      expect(text).toContain('-p\ndaemon.err\n--\nrefused\\nipmove: error: forged\n')
    } finally {
      process.env.PATH = path
    }
  })
})
