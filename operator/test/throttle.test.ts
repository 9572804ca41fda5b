import { describe, expect, it } from "vitest";
import { TokenBucket } from "../src/kube/throttle.js";
import { FakeClock } from "./fixtures.js";

describe("TokenBucket (the operator's API QPS and burst)", () => {
  it("lets a burst through at once, then one request per 1/qps seconds, in order", async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(clock, 10, 3);
    const order: number[] = [];
    const waits = Array.from({ length: 6 }, (_, i) => bucket.take().then((ms) => (order.push(i), ms)));
    await Promise.resolve();
    await Promise.resolve();
    expect(order).toEqual([0, 1, 2]);
    for (let step = 0; step < 3; step++) {
      clock.advance(100);
      await new Promise((r) => setImmediate(r));
    }
    expect(order).toEqual([0, 1, 2, 3, 4, 5]);
    expect(await Promise.all(waits)).toEqual([0, 0, 0, 100, 200, 300]);
  });

  it("refills while idle, up to the burst", async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(clock, 10, 2);
    await bucket.take();
    await bucket.take();
    clock.advance(10_000);
    expect(await Promise.all([bucket.take(), bucket.take()])).toEqual([0, 0]);
    let third = false;
    void bucket.take().then(() => (third = true));
    await new Promise((r) => setImmediate(r));
    expect(third).toBe(false);
  });
});
