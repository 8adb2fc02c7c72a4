import { defineConfig } from 'vitest/config';

// Long soak, fault and LAN tests: run by `npm run test:slow` and by .ci/run, not by `npm test`.
export default defineConfig({
  test: {
    include: ['test/slow/**/*.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
