/**
 * The operator's vocabulary on the objects it manages: labels, annotations and its field
 * manager. Shared by the builders (reconcile/), the informers (controller/) and the client
 * (kube/), so it lives here, below all three.
 */

export const MANAGED_BY = "wavelet-operator";
export const FIELD_MANAGER = "wavelet-operator";
export const LABELS = {
  app: "app.kubernetes.io/name",
  instance: "app.kubernetes.io/instance",
  managedBy: "app.kubernetes.io/managed-by",
  model: "wavelet.dev/model",
  color: "wavelet.dev/color",
  role: "wavelet.dev/service-role",
} as const;
export const TEMPLATE_HASH = "wavelet.dev/template-hash";
export const SECRETS_HASH = "wavelet.dev/secrets-hash";
/** On every child: a hash of what the operator last applied (reconcile/unchanged.ts). */
export const APPLIED_HASH = "wavelet.dev/applied-hash";
export const APP = "wavelet-server";
/** Selects every child of every WaveletModel: the informers' label selector. */
export const MANAGED_SELECTOR = `${LABELS.managedBy}=${MANAGED_BY}`;

/** The WaveletModel a child belongs to, from its labels (namespace/name), if any. */
export function ownerKey(child: { metadata?: { namespace?: string; labels?: Record<string, string> } }): string | undefined {
  const model = child.metadata?.labels?.[LABELS.model];
  return model && child.metadata?.namespace ? `${child.metadata.namespace}/${model}` : undefined;
}

/** A pod counts as ready when its Ready condition is True (what Services route to). */
export const podReady = (p: { status?: { conditions?: { type: string; status: string }[] } }) =>
  !!p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True");
