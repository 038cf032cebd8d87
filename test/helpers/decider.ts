/** A decider driven by a fake clock: `at(ms, change)` decides at that time with the facts so far plus `change`. */
import type { Decider, Facts } from '../../src/watch/decide.js'

export function drive<D extends Decider>(decider: D) {
  let facts: Facts = { peer: 'pending', self: 'pending', witness: undefined, api: undefined }
  return {
    decider,
    at(t: number, change: Partial<Facts> = {}) {
      facts = { ...facts, ...change }
      return decider.decide(facts, t)
    },
    done(t: number, ok = true, superseded = false) {
      return decider.claimDone(ok, t, superseded)
    },
  }
}
