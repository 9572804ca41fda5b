import type { CoordinationV1Api, V1Lease } from "@kubernetes/client-node";
import { statusCode } from "../kube/client.js";
import { type Clock, sleep } from "./clock.js";

/**
 * Leader election on a coordination.k8s.io Lease, as client-go does it: the holder renews
 * the lease every retry period; others take it over once it has not been renewed for a
 * lease duration. Every write carries the resourceVersion it read, so of two candidates
 * racing for an expired lease one gets a 409 and stays a follower. A leader that cannot
 * renew within the renew deadline stops leading (the process then exits, so no two
 * replicas ever act at once).
 */

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
    while (!this.stopped && !(await this.tryAcquireOrRenew())) await sleep(this.clock, retryPeriodSeconds * 1000);
    if (this.stopped) return "stopped";
    this.leading = true;
    this.log.info(`became leader (lease ${this.options.namespace}/${this.options.name})`);
    onStartedLeading();
    let lastRenew = this.clock.now();
    while (!this.stopped) {
      await sleep(this.clock, retryPeriodSeconds * 1000);
      if (this.stopped) break;
      if (await this.tryAcquireOrRenew()) {
        lastRenew = this.clock.now();
      } else if (this.clock.now() - lastRenew > renewDeadlineSeconds * 1000) {
        this.leading = false;
        this.log.warn("lost leadership: could not renew the lease in time");
        return "lost";
      }
    }
    return "stopped";
  }

  /** Give the lease up so a standby takes over at once instead of after the lease expires. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.read();
      if (lease?.spec?.holderIdentity !== this.options.identity) return;
      lease.spec.holderIdentity = undefined;
      lease.spec.leaseDurationSeconds = 1;
      await this.api.replaceNamespacedLease({ name: this.options.name, namespace: this.options.namespace, body: lease });
    } catch (error) {
      this.log.warn("could not release the lease", { err: String(error) });
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
    const now = new Date(this.clock.now());
    try {
      const lease = await this.read();
      if (!lease) {
        await this.api.createNamespacedLease({
          namespace,
          body: {
            metadata: { name, namespace },
            spec: { holderIdentity: identity, leaseDurationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
          },
        });
        return true;
      }
      const spec = lease.spec ?? {};
      const held = spec.holderIdentity && spec.holderIdentity !== identity;
      const renewed = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
      const expired = renewed + (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000 < now.getTime();
      if (held && !expired) return false;
      const takingOver = spec.holderIdentity !== identity;
      lease.spec = {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds,
        renewTime: now,
        ...(takingOver ? { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
      };
      await this.api.replaceNamespacedLease({ name, namespace, body: lease });
      return true;
    } catch (error) {
      const code = statusCode(error);
      if (code !== 409) this.log.warn("lease update failed", { err: String((error as Error)?.message ?? error), code });
      return false;
    }
  }
}
