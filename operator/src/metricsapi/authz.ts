import type { V1SubjectAccessReview } from "@kubernetes/client-node";
import type { Identity } from "./authn.js";

/**
 * May this user read this? The API server decides, by SubjectAccessReview (the operator's
 * ServiceAccount holds system:auth-delegator for it), as for any aggregated API. Decisions are
 * cached briefly, as the API server's webhook authorizer caches them: the HPA asks the same
 * question every 15 s per model.
 */

export type Attributes =
  | { resource: { group: string; version: string; resource: string; subresource?: string; name?: string; namespace?: string; verb: string } }
  | { nonResource: { path: string; verb: string } };

export interface Decision {
  allowed: boolean;
  reason?: string;
}

/** Sends one SubjectAccessReview and answers its status. */
export type Review = (body: V1SubjectAccessReview) => Promise<V1SubjectAccessReview>;

export interface AuthorizerOptions {
  ttlMs: number;
  /** Entries kept at most; the oldest go first. */
  maxEntries: number;
  now: () => number;
}

export class Authorizer {
  private readonly cache = new Map<string, { decision: Decision; until: number }>();

  constructor(
    private readonly review: Review,
    private readonly options: AuthorizerOptions,
  ) {}

  async authorize(who: Identity, what: Attributes): Promise<Decision> {
    const key = JSON.stringify([who.user, [...who.groups].sort(), Object.entries(who.extra).sort(), what]);
    const now = this.options.now();
    const hit = this.cache.get(key);
    if (hit && hit.until > now) return hit.decision;
    const answer = await this.review({
      apiVersion: "authorization.k8s.io/v1",
      kind: "SubjectAccessReview",
      spec: {
        user: who.user,
        groups: who.groups,
        extra: who.extra,
        ...("resource" in what ? { resourceAttributes: what.resource } : { nonResourceAttributes: what.nonResource }),
      },
    });
    const decision = { allowed: answer.status?.allowed === true && answer.status.denied !== true, reason: answer.status?.reason };
    this.cache.delete(key);
    this.cache.set(key, { decision, until: now + this.options.ttlMs });
    // A Map iterates in insertion order: the first key is the oldest.
    while (this.cache.size > this.options.maxEntries) this.cache.delete(this.cache.keys().next().value!);
    return decision;
  }
}
