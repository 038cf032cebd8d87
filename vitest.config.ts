import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The end-to-end and kernel tests spawn processes and wait on real timers.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // The fault matrices run their rows side by side: most of a row is waiting on timers.
    maxConcurrency: 12,
    pool: 'forks',
    // Two files at a time: most of the suite waits on real timers and daemons (keepalived, etcd, the
    // emulators), so two side by side halve its wall time on 2 cores (7 min instead of 12 here). Every
    // test that spawns ipmove gives it its own lock, cache and socket directories, so files never share them.
    maxWorkers: 2,
    // test/http.test.ts forces garbage collections, as a long run would have them.
    poolOptions: { forks: { execArgv: ['--expose-gc'] } },
  },
})
