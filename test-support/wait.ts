import { createServer } from "node:net";

/** Helpers shared by the server's and the operator's tests. */

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

/**
 * Poll `probe` until it gives a value (undefined, false and errors mean not yet). A probe may
 * finish after the deadline (a slow machine), but one still running long after it (as long
 * again, at least 5 s) has hung: the wait fails with its name instead of the test hanging.
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  const HUNG = Symbol("hung");
  let last: unknown;
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<typeof HUNG>((resolve) => (timer = setTimeout(() => resolve(HUNG), Math.max(0, deadline - Date.now()) + Math.max(timeoutMs, 5000))));
    let value: T | undefined | false | typeof HUNG;
    try {
      value = await Promise.race([probe(), hung]);
    } catch (error) {
      last = error;
    } finally {
      clearTimeout(timer);
    }
    if (value === HUNG) throw new Error(`timed out waiting for ${what}: a probe hung`);
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
