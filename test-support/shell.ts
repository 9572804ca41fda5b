/**
 * The variables of an `export A=x B=y\ z` line, as scripts/docker-env.sh and
 * scripts/images.sh print last (values shell-quoted with printf %q: spaces escaped).
 */
export function exportedVariables(out: string): Record<string, string> {
  const line = out.trim().split("\n").at(-1)!.replace(/^export /, "");
  return Object.fromEntries([...line.matchAll(/(\w+)=((?:\\.|\S)*)/g)].map((m) => [m[1]!, m[2]!.replace(/\\(.)/g, "$1")]));
}
