import { describe, expect, it } from "vitest";
import { GUIDE_FEATURES, startServer, waitFor } from "./helpers.js";

/**
 * A 400 names the fields at fault, but never echoes the request back in bulk (issue 22, item 2:
 * a 779 KB body of 30k unknown keys got a 2.94 MB answer and a 1.47 MB log line at info).
 * The real server, over HTTP, its log read from its stdout.
 */

interface ErrorBody {
  error: string;
  message: string;
  request_id: string;
  fields: { field: string; message: string }[];
}

describe("validation errors stay small whatever the body", () => {
  it("30k unknown keys: a few named, truncated, and how many more; the answer and the log line stay small", async () => {
    const server = await startServer({ LOG_LEVEL: "info", MODELS: "xgboost" });
    try {
      const post = async (path: string, body: unknown) => {
        const payload = JSON.stringify(body);
        const res = await fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: payload });
        const text = await res.text();
        return { status: res.status, bytes: text.length, sent: payload.length, body: JSON.parse(text) as ErrorBody };
      };

      const flood: Record<string, unknown> = { features: GUIDE_FEATURES };
      for (let i = 0; i < 30_000; i++) flood[`unknown-key-${String(i).padStart(9, "0")}`] = 1;
      const keys = await post("/predict", flood);
      expect(keys.sent).toBeGreaterThan(750_000);
      expect(keys.status).toBe(400);
      expect(keys.body.error).toBe("validation_error");
      expect(keys.bytes).toBeLessThan(2048);
      expect(keys.body.fields.map((f) => f.field)).toEqual(Array.from({ length: 5 }, (_, i) => `unknown-key-00000000${i}`));
      expect(keys.body.fields[0]!.message).toBe("unknown field");
      expect(keys.body.message).toMatch(/; and 29995 more$/);

      // One key as long as the body allows is named by its beginning.
      const long = await post("/predict", { features: GUIDE_FEATURES, ["x".repeat(500_000)]: 1 });
      expect(long.status).toBe(400);
      expect(long.bytes).toBeLessThan(2048);
      expect(long.body.fields).toHaveLength(1);
      expect(long.body.fields[0]!.field).toMatch(/^x{32}…$/);

      // Every row of a batch wrong: the first few rows are named, the rest counted.
      const rows = await post("/predict/batch", { samples: Array.from({ length: 5000 }, () => Array(10).fill("a")) });
      expect(rows.status).toBe(400);
      expect(rows.bytes).toBeLessThan(2048);
      expect(rows.body.fields.map((f) => f.field)).toEqual(Array.from({ length: 5 }, (_, i) => `samples[${i}][0]`));
      expect(rows.body.message).toMatch(/; and 4995 more$/);

      // The log line of each refusal is as small as its answer.
      for (const { body } of [keys, long, rows]) {
        const logged = (l: string) => l.includes(body.request_id) && l.includes('"error":"validation_error"');
        const line = await waitFor(`the log line of ${body.request_id}`, () => server.output().split("\n").find(logged), 5000);
        expect(line.length).toBeLessThan(2048);
      }
    } finally {
      server.child.kill("SIGKILL");
      await server.exit;
    }
  }, 60_000);
});
