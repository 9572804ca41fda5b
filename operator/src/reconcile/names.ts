import { APP, LABELS, MANAGED_BY } from "../api/labels.js";
import { type Color, PREVIEW_SUFFIX, type WaveletModel } from "../api/waveletmodel.js";

/** Names and labels of a WaveletModel's children; one place so every builder agrees. */

export const replicaSetName = (wm: WaveletModel, color: Color) => `${wm.metadata.name}-${color}`;
export const activeServiceName = (wm: WaveletModel) => wm.metadata.name;
export const previewServiceName = (wm: WaveletModel) => `${wm.metadata.name}${PREVIEW_SUFFIX}`;
export const hpaName = (wm: WaveletModel) => wm.metadata.name;
export const pdbName = (wm: WaveletModel) => wm.metadata.name;
export const otherColor = (color: Color): Color => (color === "blue" ? "green" : "blue");

export function commonLabels(wm: WaveletModel): Record<string, string> {
  return {
    [LABELS.app]: APP,
    [LABELS.instance]: wm.metadata.name,
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.model]: wm.metadata.name,
  };
}

export function ownerReference(wm: WaveletModel) {
  return {
    apiVersion: wm.apiVersion,
    kind: wm.kind,
    name: wm.metadata.name,
    uid: wm.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}
