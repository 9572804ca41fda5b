import type { V1PodDisruptionBudget } from "@kubernetes/client-node";
import type { Color, WaveletModel } from "../api/waveletmodel.js";
import { LABELS } from "../api/labels.js";
import { commonLabels, ownerReference, pdbName } from "./names.js";

/**
 * The PodDisruptionBudget of the active colour: a node drain or cluster upgrade takes its
 * pods one at a time. It follows the traffic (the selector names the active colour); the
 * idle colour needs none. One at a time is always allowed, so a single replica never blocks
 * a drain.
 */
export function desiredPdb(wm: WaveletModel, active: Color): V1PodDisruptionBudget {
  return {
    apiVersion: "policy/v1",
    kind: "PodDisruptionBudget",
    metadata: { name: pdbName(wm), namespace: wm.metadata.namespace, labels: commonLabels(wm), ownerReferences: [ownerReference(wm)] },
    spec: {
      maxUnavailable: 1,
      selector: { matchLabels: { [LABELS.instance]: wm.metadata.name, [LABELS.model]: wm.metadata.name, [LABELS.color]: active } },
    },
  };
}
