import { defineConfig } from 'vitest/config';

const packages = ['core', 'models', 'speculative', 'streaming', 'server', 'cli'];

// Workspace packages export `src/` under the `@specstream/source` condition,
// so tests run against sources without a build step.
const conditions = ['@specstream/source', 'node', 'import', 'module', 'default'];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: conditions } },
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores: one fork per core, no point in more.
    maxWorkers: 2,
    projects: packages.map((name) => ({
      extends: true,
      test: { name, root: `packages/${name}`, include: ['test/**/*.test.ts'] },
    })),
  },
});
