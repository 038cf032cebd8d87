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
    // test/http.test.ts forces garbage collections, as a long run would have them.
    poolOptions: { forks: { execArgv: ['--expose-gc'] } },
  },
})
