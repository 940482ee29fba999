import { defineConfig } from 'vitest/config';

// One run covers every workspace. End-to-end tests start real servers and real
// clients, so files run in parallel but each file's tests run in order.
export default defineConfig({
  test: {
    include: [
      'packages/*/test/**/*.test.ts',
      'plugins/*/test/**/*.test.ts',
      'filters/*/test/**/*.test.ts',
      'examples/*/test/**/*.test.ts',
    ],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
