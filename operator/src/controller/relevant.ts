import type { KubernetesObject, V1Pod } from "@kubernetes/client-node";
import { TEMPLATE_HASH, podReady } from "../api/labels.js";

/**
 * Which updates of a child can change what a pass decides or writes, as controller-runtime's
 * predicates do: a pod's readiness, its end or deletion, its template, owner and labels
 * (colorstate.ts reads nothing else); the spec, metadata and deletion of a ReplicaSet, PDB,
 * HPA, Ingress, HTTPRoute or an older operator's Deployment, never their status (readiness
 * comes from the pods). A Service's every update counts (its status has the load balancer's
 * address). A pod goes through several status updates to Ready, and the ReplicaSet's and
 * PDB's status follow each: each a pass of a few milliseconds of CPU that could change nothing.
 */

type Fingerprint = (o: KubernetesObject) => string;

/** For the kinds whose status no pass reads: what is applied (spec, by generation) and metadata. */
function specAndMetadata(o: KubernetesObject): string {
  const { generation, labels, annotations, ownerReferences, deletionTimestamp } = o.metadata ?? {};
  return JSON.stringify([generation, labels, annotations, ownerReferences, !!deletionTimestamp]);
}

const FINGERPRINTS: Record<string, Fingerprint> = {
  pods: (o) => {
    const p = o as V1Pod;
    const owner = p.metadata?.ownerReferences?.find((r) => r.controller)?.uid;
    return JSON.stringify([podReady(p), !!p.metadata?.deletionTimestamp, p.status?.phase, p.metadata?.annotations?.[TEMPLATE_HASH], owner, p.metadata?.labels]);
  },
  replicasets: specAndMetadata,
  // Their controllers write status on every pod change (a PDB) or every 15 s (an HPA).
  pdbs: specAndMetadata,
  hpas: specAndMetadata,
  deployments: specAndMetadata,
  // Their controllers (an ingress controller, a Gateway's) write addresses and conditions no pass reads.
  ingresses: specAndMetadata,
  httproutes: specAndMetadata,
};

/**
 * For the informer of `resource` (its plural), a filter of update events: true when the
 * object changed in a way that matters (or the resource has no fingerprint: every update
 * does). Remembers one fingerprint per object, forgotten on delete.
 */
export function relevantUpdates(resource: string): { update(o: KubernetesObject): boolean; seen(o: KubernetesObject): void; forget(o: KubernetesObject): void } {
  const fingerprint = FINGERPRINTS[resource];
  const last = new Map<string, string>();
  const key = (o: KubernetesObject) => o.metadata?.uid ?? `${o.metadata?.namespace}/${o.metadata?.name}`;
  return {
    update(o) {
      if (!fingerprint) return true;
      const now = fingerprint(o);
      if (last.get(key(o)) === now) return false;
      last.set(key(o), now);
      return true;
    },
    seen(o) {
      if (fingerprint) last.set(key(o), fingerprint(o));
    },
    forget(o) {
      last.delete(key(o));
    },
  };
}
