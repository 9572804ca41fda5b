import { execFileSync } from "node:child_process";

/**
 * Waits until every named CRD is Established. `kubectl wait --for=condition=Established` fails
 * at once ("accessor error: <nil>") instead of waiting when it reads a CRD the API server has
 * not given conditions yet, which a busy machine makes likely right after the apply.
 */
export function waitEstablished(kubectl: string, kubeconfig: string, crds: string[], timeoutMs = 60_000): void {
  const deadline = Date.now() + timeoutMs;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (const crd of crds) {
    for (;;) {
      let status = "";
      try {
        status = execFileSync(kubectl, ["get", "crd", crd, "-o", 'jsonpath={.status.conditions[?(@.type=="Established")].status}'], {
          encoding: "utf8",
          stdio: ["ignore", "pipe", "ignore"],
          env: { ...process.env, KUBECONFIG: kubeconfig },
        }).trim();
      } catch {
        // not there yet
      }
      if (status === "True") break;
      if (Date.now() > deadline) throw new Error(`CRD ${crd} is not Established after ${timeoutMs / 1000} s`);
      Atomics.wait(pause, 0, 0, 250);
    }
  }
}
