import { describe, expect, it } from "vitest";
import { WorkQueue } from "../src/controller/queue.js";
import { FakeClock } from "./fixtures.js";

describe("WorkQueue", () => {
  it("hands out each key once however often it is added", async () => {
    const q = new WorkQueue(new FakeClock());
    q.add("a");
    q.add("b");
    q.add("a");
    expect(q.length).toBe(2);
    expect(await q.get()).toBe("a");
    expect(await q.get()).toBe("b");
  });

  it("never gives a key to two workers at once, and re-queues it when added during processing", async () => {
    const q = new WorkQueue(new FakeClock());
    q.add("a");
    const key = await q.get();
    q.add("a"); // while being processed
    expect(q.length).toBe(0);
    let second: string | undefined;
    void q.get().then((k) => (second = k));
    await Promise.resolve();
    expect(second).toBeUndefined();
    q.done(key!);
    await Promise.resolve();
    expect(second).toBe("a");
  });

  it("backs off exponentially on failures up to the maximum, and forget resets it", () => {
    const clock = new FakeClock();
    const q = new WorkQueue(clock, { baseDelayMs: 100, maxDelayMs: 1000 });
    expect([1, 2, 3, 4, 5, 6].map(() => q.addRateLimited("a"))).toEqual([100, 200, 400, 800, 1000, 1000]);
    q.forget("a");
    expect(q.addRateLimited("a")).toBe(100);
  });

  it("adds delayed keys when their time comes; the earliest pending delay wins", async () => {
    const clock = new FakeClock();
    const q = new WorkQueue(clock);
    q.addAfter("a", 1000);
    q.addAfter("a", 5000);
    clock.advance(999);
    expect(q.length).toBe(0);
    clock.advance(1);
    expect(q.length).toBe(1);
    expect(await q.get()).toBe("a");
    q.done("a");
    clock.advance(10_000);
    expect(q.length).toBe(0);
  });

  it("hands out low-priority keys only when no normal one waits; a normal add moves a low key up (issue 13)", async () => {
    const q = new WorkQueue(new FakeClock());
    for (const key of ["new-1", "new-2", "new-3"]) q.add(key, "low");
    q.add("running");
    q.add("new-3");
    q.add("running", "low"); // already waiting as normal: stays so
    expect(q.length).toBe(4);
    const order: (string | undefined)[] = [];
    for (let i = 0; i < 4; i++) {
      const key = await q.get();
      order.push(key);
      q.done(key!);
    }
    expect(order).toEqual(["running", "new-3", "new-1", "new-2"]);
  });

  it("a key added while being processed is queued afterwards with the priority it was added with", async () => {
    const q = new WorkQueue(new FakeClock());
    q.add("a", "low");
    const key = await q.get();
    q.add("a", "low");
    q.add("a"); // promoted while processing
    q.add("b", "low");
    q.done(key!);
    expect(await q.get()).toBe("a");
  });

  it("shutDown releases waiting workers", async () => {
    const q = new WorkQueue(new FakeClock());
    const waiting = q.get();
    q.shutDown();
    expect(await waiting).toBeUndefined();
    q.add("a");
    expect(await q.get()).toBeUndefined();
  });
});
