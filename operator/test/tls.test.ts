import { describe, expect, it } from "vitest";
import { tlsSecretProblem, trustAnchor } from "../src/reconcile/tls.js";
import { makeCA, makeCert, pkiDir } from "../../test-support/pki.js";

/** spec.tls's Secret, checked as the server would load it, with real PEM pairs made by openssl. */

const dir = pkiDir();
const ca = makeCA(dir, "model-ca");
const leaf = makeCert(dir, ca, "api", { cn: "api.example.com", dns: ["api.example.com"] });
const other = makeCert(dir, ca, "other", { cn: "other.example.com", dns: ["other.example.com"] });
const secret = (data: Record<string, string>, type = "kubernetes.io/tls") => ({ resourceVersion: "1", type, data });

describe("a TLS Secret the pods can serve (issue 26)", () => {
  it("accepts a CA-issued pair with its ca.crt, and a self-signed pair", () => {
    expect(tlsSecretProblem(secret({ "tls.crt": leaf.cert, "tls.key": leaf.key, "ca.crt": ca.cert }))).toBeUndefined();
    expect(tlsSecretProblem(secret({ "tls.crt": ca.cert, "tls.key": ca.key }))).toBeUndefined();
  });

  it.each([
    ["missing", undefined, "does not exist"],
    ["of another type", secret({ "tls.crt": leaf.cert, "tls.key": leaf.key }, "Opaque"), "is of type Opaque, not kubernetes.io/tls"],
    ["without tls.crt", secret({ "tls.key": leaf.key }), "has no tls.crt"],
    ["without tls.key", secret({ "tls.crt": leaf.cert }), "has no tls.key"],
    ["with a tls.crt that is not PEM", secret({ "tls.crt": "not a certificate", "tls.key": leaf.key }), "has a tls.crt that is not a PEM certificate"],
    ["with a tls.key that is not PEM", secret({ "tls.crt": leaf.cert, "tls.key": "not a key" }), "has a tls.key that is not a PEM private key (an encrypted one cannot be read)"],
    ["with the key of another certificate", secret({ "tls.crt": leaf.cert, "tls.key": other.key }), "has a tls.key that is not the private key of its tls.crt"],
    ["with a ca.crt that is not PEM", secret({ "tls.crt": leaf.cert, "tls.key": leaf.key, "ca.crt": "not a CA" }), "has a ca.crt that is not a PEM certificate"],
  ])("says what is wrong with one %s", (_name, given, problem) => {
    expect(tlsSecretProblem(given)).toBe(problem);
  });

  it("analysis trusts the Secret's ca.crt, or without one its tls.crt", () => {
    expect(trustAnchor(secret({ "tls.crt": leaf.cert, "tls.key": leaf.key, "ca.crt": ca.cert }))).toBe(ca.cert);
    expect(trustAnchor(secret({ "tls.crt": leaf.cert, "tls.key": leaf.key }))).toBe(leaf.cert);
    expect(trustAnchor(undefined)).toBeUndefined();
  });
});
