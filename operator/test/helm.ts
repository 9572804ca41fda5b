import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import type { KubernetesObject } from "@kubernetes/client-node";
import { parseAllDocuments, stringify } from "yaml";

const execFileAsync = promisify(execFile);

/** The Helm chart, and helm v3 to render it, for tests (unit and integration). */

const root = resolve(import.meta.dirname, "../..");
export const CHART = resolve(root, "charts/wavelet-operator");

/** helm, built from the Go module proxy by e2e/kind/build.sh: minutes the first time, cached after. */
export function buildHelm(): string {
  const out = execFileSync(`${root}/e2e/kind/build.sh`, ["helm"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  return `${out.trim().split("\n").at(-1)}/helm`;
}

/** `helm template` of the chart; a failure throws with helm's message. */
export function helmTemplate(helm: string, args: string[] = []): string {
  return execFileSync(helm, ["template", "wavelet-operator", CHART, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

export function renderChart(helm: string, args: string[] = []): KubernetesObject[] {
  return parseObjects(helmTemplate(helm, args));
}

/** The objects of a multi-document YAML stream. */
export function parseObjects(yaml: string): KubernetesObject[] {
  return parseAllDocuments(yaml)
    .map((d) => d.toJS() as KubernetesObject | null)
    .filter((o) => o !== null);
}

/** helm without blocking the event loop (a fakeApiServer in this process must answer it); a failure rejects with helm's message. */
export async function helmAsync(helm: string, args: string[]): Promise<string> {
  try {
    return (await execFileAsync(helm, args, { encoding: "utf8" })).stdout;
  } catch (error) {
    const { stderr, message } = error as { stderr?: string; message: string };
    throw new Error(stderr || message);
  }
}

/** The kinds the chart renders or looks up, as discovery names them: apiVersion → [resource, kind, namespaced]. */
const RESOURCES: Record<string, [string, string, boolean][]> = {
  v1: [
    ["secrets", "Secret", true],
    ["services", "Service", true],
    ["serviceaccounts", "ServiceAccount", true],
    ["configmaps", "ConfigMap", true],
    ["namespaces", "Namespace", false],
  ],
  "apps/v1": [["deployments", "Deployment", true]],
  "policy/v1": [["poddisruptionbudgets", "PodDisruptionBudget", true]],
  "rbac.authorization.k8s.io/v1": [
    ["clusterroles", "ClusterRole", false],
    ["clusterrolebindings", "ClusterRoleBinding", false],
    ["roles", "Role", true],
    ["rolebindings", "RoleBinding", true],
  ],
  "apiregistration.k8s.io/v1": [["apiservices", "APIService", false]],
};

const prefixOf = (apiVersion: string) => (apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`);

function pathOf(o: KubernetesObject): string {
  const entry = RESOURCES[o.apiVersion!]?.find(([, kind]) => kind === o.kind);
  if (!entry) throw new Error(`fakeApiServer: no resource for ${o.apiVersion} ${o.kind}`);
  const [resource, , namespaced] = entry;
  return `${prefixOf(o.apiVersion!)}${namespaced ? `/namespaces/${o.metadata!.namespace}` : ""}/${resource}/${o.metadata!.name}`;
}

export interface FakeApiServer {
  kubeconfig: string;
  /** "GET <path>" of each request for an object (not discovery). */
  requests: string[];
  close(): Promise<void>;
}

/**
 * An API server that holds `objects` and nothing else, enough for `helm template --dry-run=server`
 * (the chart's lookups) and `helm install --dry-run=server --disable-openapi-validation` (its
 * NOTES): discovery of the kinds above, GET of the objects, 404 for others, empty lists (no
 * releases). It accepts no writes.
 */
export async function fakeApiServer(objects: KubernetesObject[]): Promise<FakeApiServer> {
  const stored = new Map(objects.map((o) => [pathOf(o), o]));
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url!, "http://fake");
    const path = url.pathname;
    const send = (code: number, body: unknown) => res.writeHead(code, { "content-type": "application/json" }).end(JSON.stringify(body));
    if (req.method !== "GET") return send(405, { kind: "Status", apiVersion: "v1", status: "Failure", reason: "MethodNotAllowed", code: 405 });
    if (path === "/version") return send(200, { major: "1", minor: "34", gitVersion: "v1.34.0" });
    if (path === "/api") return send(200, { kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [] });
    if (path === "/apis") {
      const groups = Object.keys(RESOURCES)
        .filter((gv) => gv.includes("/"))
        .map((groupVersion) => {
          const [name, version] = groupVersion.split("/");
          return { name, versions: [{ groupVersion, version }], preferredVersion: { groupVersion, version } };
        });
      return send(200, { kind: "APIGroupList", apiVersion: "v1", groups });
    }
    const discovered = Object.entries(RESOURCES).find(([gv]) => prefixOf(gv) === path);
    if (discovered) {
      const [groupVersion, resources] = discovered;
      return send(200, {
        kind: "APIResourceList",
        apiVersion: "v1",
        groupVersion,
        resources: resources.map(([name, kind, namespaced]) => ({ name, singularName: "", namespaced, kind, verbs: ["get", "list"] })),
      });
    }
    requests.push(`GET ${path}`);
    const object = stored.get(path);
    if (object) return send(200, object);
    // A collection (helm's release history): empty.
    if (url.searchParams.has("labelSelector") || RESOURCES.v1!.some(([resource]) => path.endsWith(`/${resource}`))) {
      return send(200, { kind: "List", apiVersion: "v1", metadata: {}, items: [] });
    }
    send(404, { kind: "Status", apiVersion: "v1", status: "Failure", reason: "NotFound", message: `${path} not found`, code: 404 });
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as AddressInfo;
  const dir = mkdtempSync(join(tmpdir(), "fake-api-"));
  const kubeconfig = join(dir, "kubeconfig");
  writeFileSync(
    kubeconfig,
    stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "fake", cluster: { server: `http://127.0.0.1:${port}` } }],
      users: [{ name: "fake", user: {} }],
      contexts: [{ name: "fake", context: { cluster: "fake", user: "fake" } }],
      "current-context": "fake",
    }),
  );
  return {
    kubeconfig,
    requests,
    close: async () => {
      await new Promise<void>((done) => server.close(() => done()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
