import nock from 'nock'
import { afterEach, beforeAll, expect } from 'vitest'

/**
 * For a file of HTTP-level tests: no request may leave the machine, and after
 * each test every expected call must have happened and none be left over.
 */
export function guardNock(): void {
  beforeAll(() => {
    nock.disableNetConnect()
  })
  afterEach(() => {
    const pending = nock.pendingMocks()
    nock.cleanAll()
    expect(pending).toEqual([])
  })
}
