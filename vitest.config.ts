import { defineConfig } from 'vitest/config';

// Two projects: fast unit tests beside the code, and integration tests that talk to the
// real Kafka and ClickHouse started by `paysentinel stack up` (run one file at a time so
// tests that stop or kill services do not disturb each other).
export default defineConfig({
  test: {
    // Integration files share one Kafka and one ClickHouse and some stop them: one file at a time.
    fileParallelism: false,
    // The JSON report lets CI print one plain "N passed, N failed" line at the end.
    reporters: ['default', 'json'],
    outputFile: { json: 'out/vitest-report.json' },
    projects: [
      {
        test: {
          name: 'unit',
          include: ['**/*.test.ts'],
          exclude: ['test/integration/**', 'node_modules/**', '.cache/**', '.stack/**'],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['test/integration/global-setup.ts'],
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
