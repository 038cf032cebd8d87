import { describe, expect, it } from 'vitest'
import { reconcile, StoodDown } from '../src/core/reconcile.js'
import { IpmoveError } from '../src/errors.js'
import { MemoryLogger } from '../src/output.js'
import { failure } from './helpers/errors.js'
import { FakeProvider } from './helpers/fake-provider.js'

const POLL = { first: 1, max: 5 }

async function run(
  cloud: FakeProvider,
  options: { dryRun?: boolean; wait?: boolean; timeoutMs?: number; stop?: AbortSignal } = {},
) {
  const signal = AbortSignal.timeout(options.timeoutMs ?? 5_000)
  const located = await cloud.locate({ ip: cloud.ip, needTarget: true }, signal)
  const log = new MemoryLogger()
  const result = reconcile(
    cloud,
    located,
    {
      target: located.target!,
      wait: options.wait ?? true,
      dryRun: options.dryRun ?? false,
      signal,
      pollMs: POLL,
      stop: options.stop,
    },
    log,
  )
  return { result, log }
}

const writes = (cloud: FakeProvider) => cloud.calls.filter((call) => call.startsWith('write'))

describe('reconcile, on an in-memory cloud', () => {
  it('writes nothing when the IP is already on the target', async () => {
    const cloud = new FakeProvider({ holder: 'self' })
    const result = await (await run(cloud)).result
    expect(result).toMatchObject({ outcome: 'in-place', writes: 0 })
    expect(cloud.calls).toEqual(['locate'])
  })

  it('writes once, then polls until the API shows the target', async () => {
    const cloud = new FakeProvider({ settleReads: 2 })
    const result = await (await run(cloud)).result
    expect(result).toMatchObject({ outcome: 'moved', writes: 1, from: { id: 'web-2' }, to: { id: 'self' } })
    expect(cloud.calls).toEqual(['locate', 'write self', 'read', 'read', 'read'])
    expect(cloud.holder?.id).toBe('self')
  })

  it('waits for an operation already pending, then writes once', async () => {
    const cloud = new FakeProvider()
    cloud.startForeignMove('web-3', 2)
    const { result, log } = await run(cloud)
    expect(await result).toMatchObject({ outcome: 'moved', writes: 1, from: { id: 'web-3' } })
    expect(cloud.calls).toEqual(['locate', 'read', 'read', 'read', 'write self', 'read', 'read'])
    expect(log.lines.join('\n')).toMatch(
      /an operation is already pending \(another move\); waiting for it first/,
    )
  })

  it('writes nothing when a pending operation was already bringing the IP to the target', async () => {
    const cloud = new FakeProvider()
    cloud.startForeignMove('self', 1)
    expect(await (await run(cloud)).result).toMatchObject({ outcome: 'in-place', writes: 0 })
    expect(writes(cloud)).toEqual([])
  })

  it('does not write again after an ambiguous write that landed', async () => {
    const cloud = new FakeProvider()
    cloud.writeFaults.push('ambiguous-landed')
    const { result, log } = await run(cloud)
    expect(await result).toMatchObject({ outcome: 'moved' })
    expect(writes(cloud)).toEqual(['write self'])
    expect(log.lines.join('\n')).toMatch(/may not have reached fake .*; checking/)
  })

  it('writes once more after an ambiguous write the API never saw', async () => {
    const cloud = new FakeProvider()
    cloud.writeFaults.push('ambiguous-lost')
    expect(await (await run(cloud)).result).toMatchObject({ outcome: 'moved', writes: 2 })
    expect(writes(cloud)).toEqual(['write self', 'write self'])
    expect(cloud.holder?.id).toBe('self')
  })

  it('waits and writes again when the API says busy', async () => {
    const cloud = new FakeProvider()
    cloud.writeFaults.push('busy')
    expect(await (await run(cloud)).result).toMatchObject({ outcome: 'moved', writes: 2 })
    expect(writes(cloud)).toEqual(['write self', 'write self'])
  })

  it('stops, superseded, when a third holder appears after our write', async () => {
    const cloud = new FakeProvider({ settleReads: 3 })
    cloud.onRead = (c, n) => {
      if (n === 1) {
        c.operation = undefined
        c.holder = c.host('web-3')
      }
    }
    const error = await failure((await run(cloud)).result)
    expect(error.kind).toBe('superseded')
    expect(error.message).toBe('another operation moved the IP to web-3.example (web-3) while ours ran')
    expect(writes(cloud)).toEqual(['write self'])
  })

  it('stops, superseded, when the IP goes back where it was after the API showed our move', async () => {
    const cloud = new FakeProvider({ settleReads: 5 })
    cloud.onRead = (c, n) => {
      // Read 1 shows our move pending; before read 2, another node's move puts it back on web-2.
      if (n === 2) {
        c.operation = undefined
        c.holder = c.host('web-2')
      }
    }
    const error = await failure((await run(cloud, { timeoutMs: 2_000 })).result)
    expect(error.kind).toBe('superseded')
    expect(error.message).toBe('another operation moved the IP to web-2.example (web-2) while ours ran')
    expect(writes(cloud)).toEqual(['write self'])
  })

  it('stops, superseded, when the IP reached the target and another operation moved it back where it came from', async () => {
    const cloud = new FakeProvider({ settleReads: 1 })
    cloud.onRead = (c, n) => {
      // Ours lands and at once another node's move back to web-2 starts: pending on us (read 2), then done.
      if (n === 2) {
        c.holder = c.host('self')
        c.startForeignMove('web-2', 1)
      }
    }
    const error = await failure((await run(cloud, { timeoutMs: 2000 })).result)
    expect(error.kind).toBe('superseded')
    expect(error.message).toBe('another operation moved the IP to web-2.example (web-2) while ours ran')
    expect(writes(cloud)).toEqual(['write self'])
  })

  it('gives up after two move requests when both fail', async () => {
    const cloud = new FakeProvider()
    cloud.writeFaults.push('ambiguous-lost', 'ambiguous-lost')
    const error = await failure((await run(cloud)).result)
    expect(error.kind).toBe('ambiguous-write')
    expect(error.message).toMatch(/gave up after 2 move requests/)
    expect(writes(cloud)).toEqual(['write self', 'write self'])
  })

  it('passes other write failures through, unretried', async () => {
    const cloud = new FakeProvider()
    cloud.writeFaults.push(new IpmoveError('auth', 'fake cloud: not allowed'))
    expect((await failure((await run(cloud)).result)).kind).toBe('auth')
    expect(writes(cloud)).toEqual(['write self'])
  })

  it('times out, naming the last state, when the operation never ends', async () => {
    const cloud = new FakeProvider()
    cloud.startForeignMove('web-3', 1_000_000)
    const error = await failure((await run(cloud, { timeoutMs: 50 })).result)
    expect(error.kind).toBe('timeout')
    expect(error.message).toMatch(
      /^timed out before the IP reached self.example \(self\); last seen: another move/,
    )
    expect(writes(cloud)).toEqual([])
  })

  it('writes nothing on a dry run, and returns after the write with wait off', async () => {
    const dry = new FakeProvider()
    expect(await (await run(dry, { dryRun: true })).result).toMatchObject({
      outcome: 'would-move',
      writes: 0,
    })
    expect(writes(dry)).toEqual([])
    const noWait = new FakeProvider()
    expect(await (await run(noWait, { wait: false })).result).toMatchObject({
      outcome: 'accepted',
      writes: 1,
    })
    expect(noWait.calls).toEqual(['locate', 'write self'])
  })
})

describe('reconcile asked to stand down for a newer call', () => {
  /** Stop when the cloud answers read number `at`, as the lock's watch would between polls. */
  function stopAtRead(cloud: FakeProvider, at: number): AbortSignal {
    const stop = new AbortController()
    cloud.onRead = (_cloud, read) => {
      if (read === at) stop.abort()
    }
    return stop.signal
  }

  /** The StoodDown that reconcile threw; fails the test on a result or another error. */
  async function stoodDown(result: Promise<unknown>): Promise<StoodDown> {
    const outcome = await result.catch((e: unknown) => e)
    expect(outcome).toBeInstanceOf(StoodDown)
    return outcome as StoodDown
  }

  it('stops before writing while it waits for another operation', async () => {
    const cloud = new FakeProvider()
    cloud.startForeignMove('web-3', 50)
    const stood = await stoodDown((await run(cloud, { stop: stopAtRead(cloud, 2) })).result)
    expect(stood).toMatchObject({ writes: 0, wrote: false })
    expect(writes(cloud)).toEqual([])
    expect(cloud.calls).toEqual(['locate', 'read', 'read'])
  })

  it('after its accepted write, reads the IP once more, then stops: the operation is left to the API', async () => {
    const cloud = new FakeProvider({ settleReads: 50 })
    const stood = await stoodDown((await run(cloud, { stop: stopAtRead(cloud, 2) })).result)
    expect(stood).toMatchObject({
      writes: 1,
      wrote: true,
      accepted: true,
      to: { id: 'self' },
      state: { pending: true },
    })
    expect(cloud.calls).toEqual(['locate', 'write self', 'read', 'read', 'read'])
    expect(cloud.operation).toMatchObject({ ours: true, to: { id: 'self' } })
  })

  it('never sends the second write an unanswered first one would earn, and says it may have landed', async () => {
    const cloud = new FakeProvider({ settleReads: 50 })
    cloud.writeFaults.push('ambiguous-lost')
    const stood = await stoodDown((await run(cloud, { stop: stopAtRead(cloud, 1) })).result)
    expect(stood).toMatchObject({
      writes: 1,
      wrote: true,
      accepted: false,
      state: { pending: false, holder: { id: 'web-2' } },
    })
    expect(writes(cloud)).toEqual(['write self'])
  })

  it('cuts a write that gets no answer short, reads once more, and stands down saying it may have landed', async () => {
    const cloud = new FakeProvider({ settleReads: 50 })
    cloud.writeFaults.push('hang')
    const stop = new AbortController()
    const { result } = await run(cloud, { stop: stop.signal, timeoutMs: 20_000 })
    setTimeout(() => stop.abort(), 50)
    const started = Date.now()
    const stood = await stoodDown(result)
    expect(Date.now() - started).toBeLessThan(1000)
    expect(stood).toMatchObject({ writes: 1, wrote: true, accepted: false, state: { pending: true } })
    expect(cloud.calls).toEqual(['locate', 'write self', 'read'])
  })

  it('finishes as moved when the re-read shows the move done', async () => {
    const cloud = new FakeProvider({ settleReads: 2 })
    const { result } = await run(cloud, { stop: stopAtRead(cloud, 2) })
    expect(await result).toMatchObject({ outcome: 'moved', writes: 1 })
  })
})
