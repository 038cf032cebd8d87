import { describe, expect, it } from 'vitest'
import { ERROR_KINDS } from '../src/errors.js'
import { ExitCode, exitOf } from '../src/exit-codes.js'

describe('exit codes at the CLI edge', () => {
  it('maps every error kind to its documented exit code', () => {
    const table = Object.fromEntries(ERROR_KINDS.map((kind) => [kind, exitOf(kind)]))
    expect(table).toEqual({
      usage: { code: 'USAGE', exitCode: 2 },
      auth: { code: 'AUTH', exitCode: 3 },
      'not-found': { code: 'NOT_FOUND', exitCode: 4 },
      timeout: { code: 'TIMEOUT', exitCode: 5 },
      busy: { code: 'BUSY', exitCode: 6 },
      superseded: { code: 'BUSY', exitCode: 6 },
      local: { code: 'LOCAL', exitCode: 7 },
      unreachable: { code: 'UNREACHABLE', exitCode: 8 },
      'ambiguous-write': { code: 'UNREACHABLE', exitCode: 8 },
      unexpected: { code: 'UNEXPECTED', exitCode: 9 },
      'provider-failed': { code: 'INTERNAL', exitCode: 1 },
      internal: { code: 'INTERNAL', exitCode: 1 },
    })
  })

  it('never renumbers the documented codes', () => {
    expect(ExitCode).toEqual({
      OK: 0,
      INTERNAL: 1,
      USAGE: 2,
      AUTH: 3,
      NOT_FOUND: 4,
      TIMEOUT: 5,
      BUSY: 6,
      LOCAL: 7,
      UNREACHABLE: 8,
      UNEXPECTED: 9,
    })
  })
})
