import { describe, expect, it } from 'vitest'
import { type ClaimOptions, claim, yieldIp } from '../src/core/converge.js'
import { IpmoveError } from '../src/errors.js'
import { MemoryLogger } from '../src/output.js'
import { failure } from './helpers/errors.js'
import { FakeDriver, FakeProvider } from './helpers/fake-provider.js'

function options(cloud: FakeProvider, driver: FakeDriver, more: Partial<ClaimOptions> = {}): ClaimOptions {
  return {
    find: { ip: cloud.ip },
    // Announcing needs arping and a real link: the kernel tests cover it (e2e-move-interface).
    carry: { interface: 'eth0', announce: false, driver },
    wait: true,
    dryRun: false,
    signal: AbortSignal.timeout(5_000),
    pollMs: { first: 1, max: 5 },
    log: new MemoryLogger(),
    ...more,
  }
}

/** Calls to the cloud and to the interface, in one timeline. */
function timeline(cloud: FakeProvider, driver: FakeDriver): string[] {
  const events: string[] = []
  const push = cloud.calls.push.bind(cloud.calls)
  cloud.calls.push = (...items: string[]) => {
    events.push(...items.map((i) => `cloud: ${i}`))
    return push(...items)
  }
  const pushLocal = driver.calls.push.bind(driver.calls)
  driver.calls.push = (...items: string[]) => {
    events.push(...items.map((i) => `host: ${i}`))
    return pushLocal(...items)
  }
  return events
}

describe('claim, on an in-memory cloud and interface', () => {
  it('adds the address while the API moves the IP, and reports both', async () => {
    const cloud = new FakeProvider({ settleReads: 2 })
    const driver = new FakeDriver()
    const events = timeline(cloud, driver)
    const result = await claim(cloud, options(cloud, driver))
    expect(result).toMatchObject({
      outcome: 'moved',
      from: { id: 'web-2' },
      to: { id: 'self' },
      located: { ip: cloud.ip, kind: 'fake' },
      alias: { ip: '203.0.113.10/32', interface: 'eth0', changed: true, announced: false },
    })
    // The add starts right after locating, before the API has finished the move.
    expect(events).toEqual([
      'cloud: locate',
      'host: add 203.0.113.10/32 eth0',
      'cloud: write self',
      'cloud: read',
      'cloud: read',
      'cloud: read',
    ])
    expect(driver.has(cloud.ip, 'eth0')).toBe(true)
    expect(result.located).not.toHaveProperty('read')
  })

  it('takes back the address it added when the cloud move fails', async () => {
    const cloud = new FakeProvider()
    cloud.writeFaults.push(new IpmoveError('auth', 'fake cloud: not allowed'))
    const driver = new FakeDriver()
    const log = new MemoryLogger()
    const error = await failure(claim(cloud, options(cloud, driver, { log })))
    expect(error.kind).toBe('auth')
    expect(driver.calls).toEqual(['add 203.0.113.10/32 eth0', 'remove 203.0.113.10/32 eth0'])
    expect(driver.has(cloud.ip, 'eth0')).toBe(false)
    expect(log.lines).toContain('removed 203.0.113.10/32 from eth0 again, since the move failed')
  })

  it('leaves an address that was there before alone when the move fails', async () => {
    const cloud = new FakeProvider()
    cloud.writeFaults.push(new IpmoveError('auth', 'fake cloud: not allowed'))
    const driver = new FakeDriver()
    await driver.add({ ip: cloud.ip, iface: 'eth0' })
    expect((await failure(claim(cloud, options(cloud, driver)))).kind).toBe('auth')
    expect(driver.has(cloud.ip, 'eth0')).toBe(true)
    expect(driver.calls.filter((c) => c.startsWith('remove'))).toEqual([])
  })

  it('rolls back when a third holder takes the IP while ours runs', async () => {
    const cloud = new FakeProvider({ settleReads: 3 })
    cloud.onRead = (c, n) => {
      if (n === 1) {
        c.operation = undefined
        c.holder = c.host('web-3')
      }
    }
    const driver = new FakeDriver()
    expect((await failure(claim(cloud, options(cloud, driver)))).kind).toBe('superseded')
    expect(driver.has(cloud.ip, 'eth0')).toBe(false)
  })

  it('fails as local, naming the cloud state, when the address cannot be added', async () => {
    const cloud = new FakeProvider()
    const driver = new FakeDriver()
    driver.failAdd = new IpmoveError('local', 'adding 203.0.113.10/32 to eth0 needs root')
    const error = await failure(claim(cloud, options(cloud, driver)))
    expect(error.kind).toBe('local')
    expect(error.message).toBe(
      'adding 203.0.113.10/32 to eth0 needs root (fake now routes it to self.example (self))',
    )
    expect(error.details).toMatchObject({ cloud: 'moved' })
    expect(cloud.holder?.id).toBe('self')
  })

  it('checks the interface before the cloud is touched', async () => {
    const cloud = new FakeProvider()
    const error = await failure(claim(cloud, options(cloud, new FakeDriver(['eth1']))))
    expect(error).toMatchObject({ kind: 'local', message: 'interface eth0 does not exist' })
    expect(cloud.calls).toEqual([])
  })

  it('does not put an IP the cloud maps onto another address on the interface', async () => {
    const cloud = new FakeProvider({ hostCarries: false })
    const driver = new FakeDriver()
    const result = await claim(cloud, options(cloud, driver))
    expect(result.outcome).toBe('moved')
    expect(result.alias).toBeUndefined()
    expect(driver.calls).toEqual([])
  })

  it('touches nothing on a dry run', async () => {
    const cloud = new FakeProvider()
    const driver = new FakeDriver()
    expect(await claim(cloud, options(cloud, driver, { dryRun: true }))).toMatchObject({
      outcome: 'would-move',
    })
    expect(driver.calls).toEqual([])
    expect(cloud.holder?.id).toBe('web-2')
  })

  it('claims again and again with one provider, as a daemon would', async () => {
    const cloud = new FakeProvider()
    const driver = new FakeDriver()
    expect((await claim(cloud, options(cloud, driver))).outcome).toBe('moved')
    cloud.startForeignMove('web-3', 0)
    await yieldIp({ ip: cloud.ip, interface: 'eth0', driver })
    const again = await claim(cloud, options(cloud, driver))
    expect(again).toMatchObject({ outcome: 'moved', from: { id: 'web-3' }, alias: { changed: true } })
    const third = await claim(cloud, options(cloud, driver))
    expect(third).toMatchObject({ outcome: 'in-place', writes: 0, alias: { changed: false } })
  })
})

describe('yield', () => {
  it('drops the address and never asks the cloud; absent is success', async () => {
    const driver = new FakeDriver()
    const cloud = new FakeProvider()
    await driver.add({ ip: cloud.ip, iface: 'eth0' })
    expect(await yieldIp({ ip: cloud.ip, interface: 'eth0', driver })).toEqual({
      ip: '203.0.113.10/32',
      interface: 'eth0',
      changed: true,
    })
    expect(await yieldIp({ ip: '203.0.113.10', interface: 'eth0', driver })).toMatchObject({ changed: false })
    expect(cloud.calls).toEqual([])
  })
})
