import type { CoordinationV1Api, V1Lease } from "@kubernetes/client-node";
import { statusCode } from "../kube/client.js";
import { type Clock, sleep } from "./clock.js";

/**
 * Leader election on a coordination.k8s.io Lease, as client-go does it: the holder renews
 * the lease every retry period; others take it over once they have seen the same record
 * unchanged for a lease duration, timed by their own clock (the times written in the
 * record come from another machine's clock and only serve people reading it). Every write
 * carries the resourceVersion it read, so of two candidates racing for an expired lease
 * one gets a 409 and stays a follower. A leader that cannot renew within the renew
 * deadline stops leading (the process then exits, so no two replicas ever act at once);
 * that deadline is kept by this process's clock, not by the API calls, so a call that
 * hangs cannot keep a leader acting after others may have taken over.
 */

/** The lease's namespace does not exist: nothing will create it, so campaigning is pointless. */
export class LeaseNamespaceMissing extends Error {}

/** MicroTime: the API server insists on exactly six fractional digits. */
const microTime = (ms: number) => `${new Date(ms).toISOString().slice(0, -1)}000Z` as unknown as Date;

export interface LeaderOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds: number;
  renewDeadlineSeconds: number;
  retryPeriodSeconds: number;
}

type Log = { info: (msg: string, extra?: unknown) => void; warn: (msg: string, extra?: unknown) => void };

export class LeaderElector {
  private stopped = false;
  private leading = false;
  /** The lease record as last seen, and when (by this process's clock) it was first seen so. */
  private observed: { record: string; at: number } | undefined;

  constructor(
    private readonly api: CoordinationV1Api,
    private readonly options: LeaderOptions,
    private readonly clock: Clock,
    private readonly log: Log,
  ) {}

  get isLeader(): boolean {
    return this.leading;
  }

  /** Campaign until leading, then keep renewing; resolves when leadership is lost or stop() is called. */
  async run(onStartedLeading: () => void): Promise<"lost" | "stopped"> {
    const { retryPeriodSeconds, renewDeadlineSeconds } = this.options;
    const renewMs = renewDeadlineSeconds * 1000;
    let lastRenew: number;
    for (;;) {
      if (this.stopped) return "stopped";
      // Leadership counts from before the winning call: the lease was written no earlier.
      lastRenew = this.clock.now();
      if (await this.attempt(renewMs)) break;
      await sleep(this.clock, retryPeriodSeconds * 1000);
    }
    this.leading = true;
    this.log.info(`became leader (lease ${this.options.namespace}/${this.options.name})`);
    onStartedLeading();
    while (!this.stopped) {
      await sleep(this.clock, retryPeriodSeconds * 1000);
      if (this.stopped) break;
      const started = this.clock.now();
      // An attempt gets only the time left before the deadline; one that hangs counts as failed.
      if (await this.attempt(lastRenew + renewMs - started)) {
        lastRenew = started;
      } else if (this.clock.now() >= lastRenew + renewMs) {
        this.leading = false;
        this.log.warn("lost leadership: could not renew the lease in time");
        return "lost";
      }
    }
    return "stopped";
  }

  /** tryAcquireOrRenew, answering false if it has not finished within `ms`. */
  private attempt(ms: number): Promise<boolean> {
    if (ms <= 0) return Promise.resolve(false);
    let timer: { cancel(): void } | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = this.clock.setTimeout(() => resolve(false), ms);
    });
    const call = this.tryAcquireOrRenew();
    call.catch(() => undefined); // settled after the timeout, its failure has no one to tell
    return Promise.race([call, timeout]).finally(() => timer?.cancel());
  }

  /** Give the lease up so a standby takes over at once instead of after the lease expires. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (!this.leading) return;
    this.leading = false;
    // A renewal still in flight may win the race (409): read again and retry.
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const lease = await this.read();
        if (lease?.spec?.holderIdentity !== this.options.identity) return;
        lease.spec.holderIdentity = undefined;
        lease.spec.leaseDurationSeconds = 1;
        // Times read back are Dates again; the API server wants them with six digits.
        if (lease.spec.renewTime) lease.spec.renewTime = microTime(new Date(lease.spec.renewTime).getTime());
        if (lease.spec.acquireTime) lease.spec.acquireTime = microTime(new Date(lease.spec.acquireTime).getTime());
        await this.api.replaceNamespacedLease({ name: this.options.name, namespace: this.options.namespace, body: lease });
        return;
      } catch (error) {
        if (statusCode(error) !== 409) {
          this.log.warn("could not release the lease", { err: String(error).slice(0, 300) });
          return;
        }
      }
    }
  }

  private async read(): Promise<V1Lease | undefined> {
    try {
      return await this.api.readNamespacedLease({ name: this.options.name, namespace: this.options.namespace });
    } catch (error) {
      if (statusCode(error) === 404) return undefined;
      throw error;
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { name, namespace, identity, leaseDurationSeconds } = this.options;
    const nowMs = this.clock.now();
    const now = microTime(nowMs);
    try {
      const lease = await this.read();
      if (!lease) {
        await this.create(now);
        return true;
      }
      const spec = lease.spec ?? {};
      const record = JSON.stringify([spec.holderIdentity, spec.renewTime, spec.leaseDurationSeconds]);
      if (this.observed?.record !== record) this.observed = { record, at: nowMs };
      const heldByOther = !!spec.holderIdentity && spec.holderIdentity !== identity;
      const duration = (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
      if (heldByOther && nowMs < this.observed.at + duration) return false;
      const takingOver = spec.holderIdentity !== identity;
      lease.spec = {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds,
        renewTime: now,
        ...(takingOver ? { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
      };
      if (spec.acquireTime && !takingOver) lease.spec.acquireTime = microTime(new Date(spec.acquireTime).getTime());
      await this.api.replaceNamespacedLease({ name, namespace, body: lease });
      return true;
    } catch (error) {
      if (error instanceof LeaseNamespaceMissing) throw error;
      const code = statusCode(error);
      if (code !== 409) this.log.warn("lease update failed", { err: String((error as Error)?.message ?? error).slice(0, 300), code });
      return false;
    }
  }

  private async create(now: Date): Promise<void> {
    const { name, namespace, identity, leaseDurationSeconds } = this.options;
    try {
      await this.api.createNamespacedLease({
        namespace,
        body: {
          metadata: { name, namespace },
          spec: { holderIdentity: identity, leaseDurationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
        },
      });
    } catch (error) {
      // A missing lease is 404 on read, a missing namespace 404 on create.
      if (statusCode(error) === 404) {
        throw new LeaseNamespaceMissing(
          `leader election: namespace ${namespace} does not exist; create it, set OPERATOR_NAMESPACE to one that does, or set LEADER_ELECTION=false`,
        );
      }
      throw error;
    }
  }
}
