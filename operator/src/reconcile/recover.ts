import type { V1Service } from "@kubernetes/client-node";
import { COLORS, type Color, type WaveletModelStatus } from "../api/waveletmodel.js";
import type { ColorState, PlanEvent } from "./bluegreen.js";
import { LABELS } from "../api/labels.js";

/**
 * State that survives the loss of status. Status says which colour serves; when it is gone
 * (deleted, restored from a backup without it, unreadable), the live active Service still
 * does. Without this the model would look new and its first pass would point traffic at
 * blue, whatever blue runs, even with no ready pods. The recovered colour keeps its
 * ReplicaSet untouched unless it already runs the spec's template: what spec it serves
 * otherwise is not known, so it cannot be re-rendered (nor rolled back to).
 */

export interface Recovered {
  status: Pick<WaveletModelStatus, "activeColor" | "activeTemplateHash">;
  event: PlanEvent;
}

export function recoverStatus(status: WaveletModelStatus | undefined, activeService: V1Service | undefined, colors: Partial<Record<Color, ColorState>>): Recovered | undefined {
  // Lost means no trace of either a serving colour or a first rollout (during which the
  // Service already selects blue, though nothing is recorded as serving yet).
  if (status?.activeColor || status?.rollout) return undefined;
  const selected = activeService?.spec?.selector?.[LABELS.color];
  const color = COLORS.find((c) => c === selected);
  if (!color) return undefined;
  const state = colors[color];
  // Only a colour that serves: traffic never moves to, or stays pinned on, zero ready pods.
  if (!state?.templateHash || state.readyReplicas === 0) return undefined;
  return {
    status: { activeColor: color, activeTemplateHash: state.templateHash },
    event: {
      type: "Warning",
      reason: "StatusRecovered",
      message: `status had no active colour; the active Service selects ${color} (${state.readyReplicas} ready, template ${state.templateHash}), which keeps the traffic`,
    },
  };
}
