import { describe, expect, it } from 'vitest'
import { MemoryLogger } from '../src/output.js'
import { runActions } from '../src/watch/actions.js'

const context = { role: 'master' as const, name: 'web', ip: '203.0.113.10/32' }

describe('actions on transitions', () => {
  it('run in order; a hung one is killed at its timeout, a missing one reported, and the next still runs', async () => {
    const log = new MemoryLogger()
    const started = Date.now()
    const codes = await runActions(
      [
        { name: 'hangs', on: 'master', argv: ['sleep', '30'], timeoutMs: 200 },
        { name: 'missing', on: 'master', argv: ['/nonexistent/ipmove-action'], timeoutMs: 1000 },
        {
          name: 'env',
          on: 'master',
          argv: ['sh', '-c', 'test "$IPMOVE_ROLE $IPMOVE_NAME" = "master web"'],
          timeoutMs: 1000,
        },
      ],
      context,
      log,
    )
    expect(codes).toEqual([null, null, 0])
    expect(Date.now() - started).toBeLessThan(5000)
    expect(log.lines[0]).toBe('warning: action hangs (master) timed out after 200 ms and was killed')
    expect(log.lines[1]).toMatch(
      /^warning: action missing \(master\) could not start: spawn \/nonexistent\/ipmove-action ENOENT/,
    )
    expect(log.lines[2]).toMatch(/^action env \(master\) exited 0 in \d+ ms$/)
  })
})
