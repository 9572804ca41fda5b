/**
 * Who is asking: an aggregated API server trusts only the kube-aggregator (the front proxy),
 * which proves itself with a client certificate signed by the requestheader CA and names the
 * real user in headers. The CA, the names allowed to proxy and the header names are the API
 * server's own settings, published in kube-system/extension-apiserver-authentication.
 */

export const AUTH_CONFIGMAP = { namespace: "kube-system", name: "extension-apiserver-authentication" } as const;

export interface RequestHeaderConfig {
  /** PEM bundle the proxy's client certificate must chain to. */
  clientCA: string;
  /** Common names allowed to proxy; empty means any certificate the CA signed. */
  allowedNames: string[];
  usernameHeaders: string[];
  groupHeaders: string[];
  extraPrefixes: string[];
}

export interface Identity {
  user: string;
  groups: string[];
  extra: Record<string, string[]>;
}

export class AuthConfigError extends Error {}

const AUTHENTICATED = "system:authenticated";

const list = (data: Record<string, string>, key: string): string[] => {
  const raw = data[key];
  if (!raw) return [];
  const parsed: unknown = JSON.parse(raw);
  if (!Array.isArray(parsed) || !parsed.every((v) => typeof v === "string")) throw new AuthConfigError(`${AUTH_CONFIGMAP.name}: ${key} is not a JSON list of strings`);
  return parsed;
};

/** The requestheader settings from the ConfigMap's data; a cluster without a front proxy cannot call us. */
export function parseAuthConfig(data: Record<string, string> | undefined): RequestHeaderConfig {
  const clientCA = data?.["requestheader-client-ca-file"];
  if (!clientCA) {
    throw new AuthConfigError(
      `${AUTH_CONFIGMAP.namespace}/${AUTH_CONFIGMAP.name} has no requestheader-client-ca-file: the API server runs without --requestheader-client-ca-file, so it cannot proxy to an aggregated API`,
    );
  }
  const config = {
    clientCA,
    allowedNames: list(data, "requestheader-allowed-names"),
    usernameHeaders: list(data, "requestheader-username-headers").map((h) => h.toLowerCase()),
    groupHeaders: list(data, "requestheader-group-headers").map((h) => h.toLowerCase()),
    extraPrefixes: list(data, "requestheader-extra-headers-prefix").map((h) => h.toLowerCase()),
  };
  if (config.usernameHeaders.length === 0) throw new AuthConfigError(`${AUTH_CONFIGMAP.name}: requestheader-username-headers is empty`);
  return config;
}

/** The TLS peer as the server saw it: whether its chain verified against clientCA, and its common name. */
export interface Peer {
  authorized: boolean;
  commonName?: string;
}

/**
 * The user the front proxy speaks for, or why the request is refused. `headers` are Node's
 * headersDistinct (every value of a repeated header, so groups are never split on commas).
 */
export function authenticate(peer: Peer, headers: Record<string, string[] | undefined>, config: RequestHeaderConfig): Identity | { refused: string } {
  if (!peer.authorized) return { refused: "a client certificate signed by the front proxy's CA is required" };
  if (config.allowedNames.length > 0 && !config.allowedNames.includes(peer.commonName ?? "")) {
    return { refused: `client certificate ${peer.commonName ?? "(no common name)"} is not an allowed front proxy` };
  }
  const user = config.usernameHeaders.map((h) => headers[h]?.[0]).find((v) => v);
  if (!user) return { refused: "the front proxy named no user" };
  // As every Kubernetes API server does (k8s.io/apiserver's AuthenticatedGroupAdder): RBAC
  // grants discovery to system:authenticated, and the aggregator's own discovery requests name
  // no group at all.
  const named = config.groupHeaders.flatMap((h) => headers[h] ?? []);
  const groups = named.includes(AUTHENTICATED) ? named : [...named, AUTHENTICATED];
  const extra: Record<string, string[]> = {};
  for (const [name, values] of Object.entries(headers)) {
    const prefix = config.extraPrefixes.find((p) => name.startsWith(p));
    if (!prefix || !values) continue;
    // Extra keys are percent-encoded in header names (k8s.io/apiserver's requestheader rule).
    const key = decodeURIComponent(name.slice(prefix.length)).toLowerCase();
    (extra[key] ??= []).push(...values);
  }
  return { user, groups, extra };
}

