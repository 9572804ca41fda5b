import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "operator",
          root: "operator",
          include: ["test/*.test.ts"],
          environment: "node",
        },
      },
      {
        // Against a real control plane (e2e/cluster): one cluster, one file at a time.
        test: {
          name: "operator-integration",
          root: "operator",
          include: ["test/integration/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/integration/setup.ts"],
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 600_000,
        },
      },
      {
        test: {
          name: "server",
          root: "server",
          include: ["test/**/*.test.ts"],
          environment: "node",
        },
      },
    ],
  },
});
