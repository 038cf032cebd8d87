import { type KeyringLike, KeyringUnavailable } from '../../src/keyring.js'

/** An in-memory KeyringLike, only to test where resolution looks and in what order. */
export class MemoryKeyring implements KeyringLike {
  readonly description = 'the test keyring'
  readonly entries = new Map<string, string>()
  gets = 0
  constructor(private readonly broken = false) {}
  async get(account: string) {
    this.gets++
    if (this.broken) throw new KeyringUnavailable('no D-Bus session')
    return this.entries.get(account)
  }
  async set(account: string, value: string) {
    if (this.broken) throw new KeyringUnavailable('no D-Bus session')
    this.entries.set(account, value)
  }
  async delete(account: string) {
    if (this.broken) throw new KeyringUnavailable('no D-Bus session')
    return this.entries.delete(account)
  }
}
