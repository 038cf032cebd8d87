/**
 * An in-memory cloud behind the Provider interface, for tests of the engine
 * (reconcile, converge, and the watch daemon): no HTTP, every API behaviour
 * the engine must cope with scripted by the test. Cloud providers themselves
 * are tested against their real HTTP APIs' fakes (nock, the emulators).
 */
import type { AddRequest, AddressDriver, AddressEntry, RemoveRequest } from '../../src/alias/driver.js'
import type { Holder, IpState, LocatedIp, LocateRequest, Provider } from '../../src/core/provider.js'
import { IpmoveError, notFound } from '../../src/errors.js'
import { type IpBlock, parseIp } from '../../src/validate.js'

export interface FakeCloudOptions {
  /** The one IP this cloud knows. Default 203.0.113.10. */
  ip?: string
  /** Machines the IP can be routed to; the first is "this host". Default self, web-2, web-3. */
  hosts?: string[]
  /** Who holds the IP at the start (an id from `hosts`); null: nobody. Default web-2. */
  holder?: string | null
  /** Reads during which our write shows as pending before it lands. Default 1. */
  settleReads?: number
  /** False for a cloud whose IP this host cannot carry (an EIP NATed onto a private address). */
  hostCarries?: boolean
}

/** What the next write does instead of landing normally. */
export type WriteFault =
  /** The request timed out, but the API did act on it. */
  | 'ambiguous-landed'
  /** The request timed out, and the API never saw it. */
  | 'ambiguous-lost'
  /** The API refuses: another operation holds the IP. */
  | 'busy'
  /** No answer until the request is aborted (the API or the network gone); the write lands all the same. */
  | 'hang'
  /** Any other refusal. */
  | IpmoveError

export class FakeProvider implements Provider {
  readonly name = 'fake'
  readonly hasCloudApi = true
  readonly ip: IpBlock
  readonly hosts: Holder[]
  /** Every call, in order: `locate`, `read`, `write web-3`, `close`. */
  readonly calls: string[] = []
  holder: Holder | null
  /** An operation in flight: ours or someone else's, landing on `to` after `reads` more reads. */
  operation: { to: Holder | null; reads: number; ours: boolean } | undefined
  /** Faults for the coming writes, first one first. */
  readonly writeFaults: WriteFault[] = []
  /** Runs before each read answers (the read's number, from 1): a test changes the world here. */
  onRead: ((cloud: FakeProvider, read: number) => void) | undefined
  private reads = 0
  private readonly settleReads: number
  private readonly hostCarries: boolean

  constructor(options: FakeCloudOptions = {}) {
    this.ip = parseIp(options.ip ?? '203.0.113.10')
    this.hosts = (options.hosts ?? ['self', 'web-2', 'web-3']).map((id) => ({ id, name: `${id}.example` }))
    const start = options.holder === undefined ? 'web-2' : options.holder
    this.holder = start === null ? null : this.host(start)
    this.settleReads = options.settleReads ?? 1
    this.hostCarries = options.hostCarries ?? true
  }

  get requests(): number {
    return this.calls.filter((call) => call !== 'close').length
  }

  get roundTrips(): number {
    return this.requests
  }

  /** The machine with this id; throws for an unknown one (a test's typo). */
  host(id: string): Holder {
    const found = this.hosts.find((h) => h.id === id)
    if (!found) throw new Error(`fake cloud: no host ${id}`)
    return found
  }

  /** Someone else starts moving the IP: pending for `reads` reads, then on `to`. */
  startForeignMove(to: string | null, reads: number): void {
    this.operation = { to: to === null ? null : this.host(to), reads, ours: false }
  }

  state(): IpState {
    return this.operation
      ? { holder: this.holder, pending: true, note: this.operation.ours ? 'our move' : 'another move' }
      : { holder: this.holder, pending: false }
  }

  async locate(request: LocateRequest, signal: AbortSignal): Promise<LocatedIp> {
    signal.throwIfAborted()
    this.calls.push('locate')
    if (request.ip && request.ip.block !== this.ip.block)
      throw notFound(`${request.ip.block} is not in the fake cloud`)
    const target = request.needTarget ? this.hostNamed(request.instance ?? this.hosts[0]!.id) : undefined
    return {
      ip: this.ip,
      kind: 'fake',
      target,
      state: this.state(),
      hostCarries: this.hostCarries,
      read: (s) => this.read(s),
      write: (to, s) => this.write(to, s),
    }
  }

  close(): void {
    this.calls.push('close')
  }

  private hostNamed(ref: string): Holder {
    const found = this.hosts.find((h) => h.id === ref || h.name === ref)
    if (!found) throw notFound(`no instance ${ref} in the fake cloud`)
    return found
  }

  private async read(signal: AbortSignal): Promise<IpState> {
    signal.throwIfAborted()
    this.calls.push('read')
    this.reads++
    this.onRead?.(this, this.reads)
    const op = this.operation
    if (op && op.reads-- <= 0) {
      this.holder = op.to
      this.operation = undefined
    }
    return this.state()
  }

  private async write(to: Holder, signal: AbortSignal): Promise<IpState | undefined> {
    signal.throwIfAborted()
    this.calls.push(`write ${to.id}`)
    const fault = this.writeFaults.shift()
    if (fault === 'busy' || (fault === undefined && this.operation && !this.operation.ours)) {
      throw new IpmoveError('busy', 'fake cloud: another operation holds the IP')
    }
    if (fault instanceof IpmoveError) throw fault
    if (fault === 'hang') {
      this.operation = { to, reads: this.settleReads, ours: true }
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
      throw new IpmoveError('timeout', 'fake cloud: the write got no answer')
    }
    if (fault !== 'ambiguous-lost') this.operation = { to, reads: this.settleReads, ours: true }
    if (fault)
      throw new IpmoveError('ambiguous-write', 'fake cloud: no answer to the write', { ambiguous: true })
    return undefined
  }
}

/** An in-memory address driver: what an interface carries, and every change asked of it. */
export class FakeDriver implements AddressDriver {
  readonly entries: AddressEntry[] = []
  readonly calls: string[] = []
  /** The next add fails with this error (after nothing was changed). */
  failAdd: IpmoveError | undefined

  constructor(readonly interfaces: string[] = ['eth0']) {}

  async list(iface?: string): Promise<AddressEntry[]> {
    if (iface !== undefined && !this.interfaces.includes(iface)) {
      throw new IpmoveError('local', `interface ${iface} does not exist`)
    }
    return this.entries.filter((e) => iface === undefined || e.iface === iface)
  }

  async add({ ip, iface }: AddRequest): Promise<boolean> {
    this.calls.push(`add ${ip.block} ${iface}`)
    if (this.failAdd) throw this.failAdd
    if (this.has(ip, iface)) return false
    this.entries.push({
      iface,
      address: ip.address,
      prefix: ip.prefix,
      version: ip.version,
      scope: 'global',
      state: 'ready',
      mac: '02:00:00:00:00:01',
    })
    return true
  }

  async remove({ ip, iface }: RemoveRequest): Promise<boolean> {
    this.calls.push(`remove ${ip.block} ${iface}`)
    const at = this.entries.findIndex((e) => e.iface === iface && e.address === ip.address)
    if (at < 0) return false
    this.entries.splice(at, 1)
    return true
  }

  has(ip: IpBlock, iface: string): boolean {
    return this.entries.some((e) => e.iface === iface && e.address === ip.address)
  }
}
