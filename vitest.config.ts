import { defineConfig } from 'vitest/config';

// Three projects: `unit` needs no servers; `integration` gets one real Dovecot and one Redis for the
// whole run from its globalSetup (test/support/global-setup.ts, read through test/support/servers.ts);
// `interop` runs the protocol-shaped cases once per server against Dovecot, Cyrus and Courier
// (test/support/interop-setup.ts, read through test/support/mail-servers.ts).
// `vitest run --project unit` starts no servers.
export default defineConfig({
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['test/support/global-setup.ts'],
          // Files run in parallel against the shared servers, each with its own users.
          fileParallelism: true,
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'interop',
          include: ['test/interop/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['test/support/interop-setup.ts'],
          fileParallelism: true,
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
