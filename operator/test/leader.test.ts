import type { CoordinationV1Api, V1Lease } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { LeaderElector } from "../src/controller/leader.js";
import { FakeClock } from "./fixtures.js";

/** Leader election against an in-memory Lease API whose calls can be made to hang. */

const options = { namespace: "ops", name: "lease", identity: "me", leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 2 };

function fakeApi() {
  let lease: V1Lease | undefined;
  let version = 0;
  const api = {
    hang: false,
    namespaceMissing: false,
    calls: 0,
    async readNamespacedLease() {
      api.calls++;
      if (api.hang) return new Promise<V1Lease>(() => undefined);
      if (!lease) throw Object.assign(new Error("not found"), { code: 404 });
      return structuredClone(lease);
    },
    async createNamespacedLease({ body }: { body: V1Lease }) {
      if (api.namespaceMissing) throw Object.assign(new Error('namespaces "ops" not found'), { code: 404 });
      lease = { ...body, metadata: { ...body.metadata, resourceVersion: String(++version) } };
      return lease;
    },
    async replaceNamespacedLease({ body }: { body: V1Lease }) {
      if (body.metadata?.resourceVersion !== lease?.metadata?.resourceVersion) throw Object.assign(new Error("conflict"), { code: 409 });
      lease = { ...body, metadata: { ...body.metadata, resourceVersion: String(++version) } };
      return lease;
    },
  };
  return api;
}

/** Lets the elector's promise chains run between clock steps. */
const settle = () => new Promise((r) => setImmediate(r));

async function advance(clock: FakeClock, ms: number, step = 500) {
  for (let t = 0; t < ms; t += step) {
    clock.advance(step);
    await settle();
  }
}

const log = { info: () => undefined, warn: () => undefined };

describe("leader election", () => {
  it("a leader whose renewals hang stops leading at the renew deadline, before anyone may take over", async () => {
    const clock = new FakeClock();
    const api = fakeApi();
    const elector = new LeaderElector(api as unknown as CoordinationV1Api, options, clock, log);
    let ledAt: number | undefined;
    let outcome: string | undefined;
    void elector.run(() => (ledAt = clock.now())).then((o) => (outcome = o));
    await settle();
    expect(ledAt).toBe(clock.now());
    await advance(clock, 4_000); // renewed twice
    const lastGood = clock.now();
    api.hang = true;
    await advance(clock, 9_000);
    expect(outcome).toBeUndefined();
    expect(elector.isLeader).toBe(true);
    await advance(clock, 2_000);
    // Lost within the renew deadline (10 s) of the last renewal, well before the lease (15 s) ends.
    expect(outcome).toBe("lost");
    expect(elector.isLeader).toBe(false);
    expect(clock.now() - lastGood).toBeLessThanOrEqual(11_000);
  });

  it("a missing lease namespace fails the campaign at once with one clear line", async () => {
    const api = fakeApi();
    api.namespaceMissing = true;
    const elector = new LeaderElector(api as unknown as CoordinationV1Api, options, new FakeClock(), log);
    await expect(elector.run(() => undefined)).rejects.toThrow(
      "leader election: namespace ops does not exist; create it, set OPERATOR_NAMESPACE to one that does, or set LEADER_ELECTION=false",
    );
  });
});
