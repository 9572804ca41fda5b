import type { Color, WaveletModelStatus } from "../api/waveletmodel.js";

/**
 * The colours that carry traffic, or may at any moment: the one status records as active;
 * the one the active Service selects (as the cache shows it: a switch, or a switch back, may
 * have been made by a pass whose status write came first); the new colour of a promotion
 * already recorded (the switch is recorded before it is made, so a pass that died between
 * the two leaves it selected); and the old colour during its scale-down delay (an abort
 * switches back to it at once). Their pods are never replaced and the workloads serving them
 * never removed until something else carries their load.
 *
 * None while nothing has ever served (the first deployment): there is no traffic to protect,
 * and a spec fixed during it must replace the pods of the broken one.
 */
export function servingColors(status: WaveletModelStatus | undefined, activeServiceColor: string | undefined): Set<Color> {
  const colors = new Set<Color>();
  if (!status?.activeColor) return colors;
  colors.add(status.activeColor);
  if (activeServiceColor === "blue" || activeServiceColor === "green") colors.add(activeServiceColor);
  const rollout = status.rollout;
  if (rollout && (rollout.phase === "Promoting" || rollout.phase === "ScalingDown")) colors.add(rollout.color);
  return colors;
}
