import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "operator",
          root: "operator",
          include: ["test/*.test.ts", "test/metricsapi/*.test.ts"],
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
        // A real Prometheus scraping a real server and operator (monitoring/README.md): its own
        // control plane, after the operator's integration tests.
        test: {
          name: "monitoring",
          root: "monitoring",
          include: ["test/**/*.test.ts"],
          environment: "node",
          globalSetup: ["../operator/test/integration/setup.ts"],
          testTimeout: 60_000,
          hookTimeout: 600_000,
        },
      },
      {
        // The images built offline (scripts/images.sh), run with Docker.
        test: {
          name: "images",
          root: "e2e/images",
          include: ["*.test.ts"],
          environment: "node",
          globalSetup: ["setup.ts"],
          testTimeout: 300_000,
          hookTimeout: 3_600_000,
        },
      },
      {
        // A kind cluster with real server pods and traffic (e2e/kind): minutes, one file at a time.
        test: {
          name: "e2e-kind",
          root: "e2e/kind",
          include: ["test/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/setup.ts"],
          fileParallelism: false,
          testTimeout: 900_000,
          hookTimeout: 3_600_000,
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
