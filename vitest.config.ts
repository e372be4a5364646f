import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "sdk/test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Suites start real servers and databases; a 2-core machine runs them best two at a time.
    maxWorkers: 2,
    minWorkers: 1,
    pool: "forks",
  },
});
