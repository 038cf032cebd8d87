import { describe, expect, it } from 'vitest'
import { describeFault, FaultInjector, matchPathGlob, parseFaultSpec } from '../emulator/faults.js'
import { IpmoveError } from '../src/errors.js'

const segments = (path: string) => path.split('/').slice(1)

function usageMessage(spec: string): string {
  try {
    parseFaultSpec(spec)
  } catch (error) {
    expect(error).toBeInstanceOf(IpmoveError)
    expect((error as IpmoveError).kind).toBe('usage')
    return (error as Error).message
  }
  throw new Error(`${spec} was accepted`)
}

describe('parseFaultSpec', () => {
  it('parses every action with its options', () => {
    expect(
      parseFaultSpec('path=/cloud/project/*/ip/failover/*/attach,method=post,status=503,times=2'),
    ).toEqual({
      path: '/cloud/project/*/ip/failover/*/attach',
      method: 'POST',
      action: { type: 'status', status: 503 },
      times: 2,
    })
    expect(parseFaultSpec('status=429,retry-after=7')).toEqual({
      action: { type: 'status', status: 429, retryAfter: 7 },
      times: 1,
    })
    expect(parseFaultSpec('reset,times=0')).toEqual({ action: { type: 'reset' }, times: 0 })
    expect(parseFaultSpec(' hang , path=/ip/** ')).toEqual({
      action: { type: 'hang' },
      path: '/ip/**',
      times: 1,
    })
    expect(parseFaultSpec('slow=250')).toEqual({ action: { type: 'slow', ms: 250 }, times: 1 })
  })

  it('names the wrong item', () => {
    expect(usageMessage('status=503,colour=red')).toMatch(/unknown item "colour=red"/)
    expect(usageMessage('status=99')).toMatch(/"status=99" needs a whole number from 400 to 599/)
    expect(usageMessage('status=5xx')).toMatch(/"status=5xx"/)
    expect(usageMessage('slow=-1')).toMatch(/"slow=-1"/)
    expect(usageMessage('reset,times=many')).toMatch(/"times=many"/)
    expect(usageMessage('reset=1')).toMatch(/"reset=1" takes no value/)
    expect(usageMessage('status')).toMatch(/"status" needs a value/)
    expect(usageMessage('path=cloud,reset')).toMatch(/"path=cloud" must be a path/)
    expect(usageMessage('method=P0ST,reset')).toMatch(/"method=P0ST" is not an HTTP method/)
    expect(usageMessage('reset,status=500,times=2,times=3')).toMatch(/"times" is given twice/)
  })

  it('wants exactly one action, and retry-after only with a status', () => {
    expect(usageMessage('path=/ip/*')).toMatch(/exactly one of/)
    expect(usageMessage('reset,hang')).toMatch(/exactly one of/)
    expect(usageMessage('slow=10,retry-after=3')).toMatch(/retry-after only goes with status/)
    expect(usageMessage('')).toMatch(/empty/)
  })

  it('parses the answer faults: body (with a status), size, drip, reset-after, task', () => {
    expect(parseFaultSpec('body=%7B%22a%22%3A1%2C%22b%22%3A2%7D')).toEqual({
      action: { type: 'body', status: 200, text: '{"a":1,"b":2}' },
      times: 1,
    })
    expect(parseFaultSpec('status=502,body=<html>')).toEqual({
      action: { type: 'body', status: 502, text: '<html>' },
      times: 1,
    })
    expect(parseFaultSpec('status=204,body=').action).toEqual({ type: 'body', status: 204, text: '' })
    expect(usageMessage('body')).toMatch(/"body" needs a value/)
    expect(parseFaultSpec('size=5').action).toEqual({ type: 'size', mib: 5 })
    expect(parseFaultSpec('drip=100').action).toEqual({ type: 'drip', ms: 100 })
    expect(parseFaultSpec('reset-after,method=POST').action).toEqual({ type: 'reset-after' })
    expect(parseFaultSpec('task=customerError').action).toEqual({ type: 'task', status: 'customerError' })
    expect(usageMessage('task=done')).toMatch(/"task=done" must be one of todo, cancelled/)
    expect(parseFaultSpec('pending=60000,method=POST').action).toEqual({ type: 'pending', ms: 60_000 })
    expect(usageMessage('pending=soon')).toMatch(/"pending=soon" needs a whole number from 0 to 3600000/)
    expect(usageMessage('pending=5,status=503')).toMatch(/exactly one of .*pending=MS/)
    expect(usageMessage('size=0')).toMatch(/"size=0" needs a whole number from 1 to 4096/)
    expect(usageMessage('body=%E0%A4%A')).toMatch(/not percent-encoded/)
    expect(usageMessage('reset-after=1')).toMatch(/takes no value/)
    expect(usageMessage('body=x,drip=5')).toMatch(/exactly one of/)
    for (const spec of [
      'status=503,body=a%2Cb',
      'size=2',
      'drip=7',
      'reset-after',
      'task=todo',
      'pending=9',
    ]) {
      expect(parseFaultSpec(describeFault(parseFaultSpec(spec)))).toEqual(parseFaultSpec(`${spec},path=/**`))
    }
  })

  it('describes a fault in its own syntax', () => {
    const spec = 'path=/ip/*/move,method=POST,status=409,retry-after=2,times=3'
    expect(describeFault(parseFaultSpec(spec))).toBe(spec)
    expect(parseFaultSpec(describeFault(parseFaultSpec('slow=5')))).toEqual(parseFaultSpec('slow=5,path=/**'))
  })
})

describe('matchPathGlob', () => {
  it('matches * within one segment and ** across segments', () => {
    const attach = segments('/cloud/project/abc/ip/failover/f1/attach')
    expect(matchPathGlob('/cloud/project/*/ip/failover/*/attach', attach)).toBe(true)
    expect(matchPathGlob('/cloud/project/*/attach', attach)).toBe(false)
    expect(matchPathGlob('/cloud/**/attach', attach)).toBe(true)
    expect(matchPathGlob('/cloud/project/**', segments('/cloud/project'))).toBe(true)
    expect(matchPathGlob('/cloud/project/*', segments('/cloud/project'))).toBe(false)
    expect(matchPathGlob('/**', segments('/auth/time'))).toBe(true)
    expect(matchPathGlob('/cloud/project/a*c', segments('/cloud/project/abc'))).toBe(true)
    expect(matchPathGlob('/cloud/project/a*c', segments('/cloud/project/abd'))).toBe(false)
  })

  it('treats a decoded block with a slash as one segment', () => {
    expect(matchPathGlob('/ip/*/move', ['ip', '198.51.100.7/32', 'move'])).toBe(true)
    expect(matchPathGlob('/ip/198.51.100.7/32/move', ['ip', '198.51.100.7/32', 'move'])).toBe(false)
  })

  it('takes regular-expression characters literally', () => {
    expect(matchPathGlob('/ip/198.51.100.7', ['ip', '198x51x100x7'])).toBe(false)
    expect(matchPathGlob('/a+b', ['a+b'])).toBe(true)
  })
})

describe('FaultInjector', () => {
  it('applies faults in the order added and counts their uses', () => {
    const injector = new FaultInjector(['path=/ip/**,status=500,times=2', 'status=503'])
    expect(injector.take('GET', segments('/ip/x'))?.action).toEqual({ type: 'status', status: 500 })
    expect(injector.take('GET', segments('/ip/x'))?.action).toEqual({ type: 'status', status: 500 })
    // The first is used up: the catch-all takes the next request, once.
    expect(injector.take('GET', segments('/ip/x'))?.action).toEqual({ type: 'status', status: 503 })
    expect(injector.take('GET', segments('/ip/x'))).toBeUndefined()
    expect(injector.faults.map((f) => f.left)).toEqual([0, 0])
  })

  it('filters by method and keeps times=0 faults forever', () => {
    const injector = new FaultInjector([{ method: 'post', action: { type: 'reset' }, times: 0 }])
    expect(injector.take('GET', segments('/a'))).toBeUndefined()
    for (let i = 0; i < 5; i++) expect(injector.take('POST', segments('/a'))?.action.type).toBe('reset')
  })

  it('checks programmatic specs like parsed ones', () => {
    const injector = new FaultInjector()
    expect(() => injector.add({ action: { type: 'status', status: 200 } })).toThrow(/400 to 599/)
    expect(() => injector.add({ action: { type: 'slow', ms: -5 } })).toThrow(/slow/)
    expect(() => injector.add({ action: { type: 'hang' }, times: 1.5 })).toThrow(/times/)
    expect(() => injector.add({ action: { type: 'hang' }, path: 'ip' })).toThrow(/start with/)
    expect(injector.faults).toHaveLength(0)
  })

  it('sleeps, and wakes every sleeper at once on close', async () => {
    const injector = new FaultInjector()
    expect(await injector.sleep(5)).toBe(true)
    const started = Date.now()
    const long = injector.sleep(60_000)
    injector.close()
    expect(await long).toBe(false)
    expect(Date.now() - started).toBeLessThan(1000)
    expect(await injector.sleep(60_000)).toBe(false)
  })
})
