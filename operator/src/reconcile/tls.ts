import { X509Certificate, createPrivateKey } from "node:crypto";
import type { SecretData } from "../kube/client.js";

/**
 * spec.tls: what makes its Secret servable, and what the operator trusts when it speaks
 * HTTPS to the model's pods (analysis).
 */

/**
 * Why the Secret cannot serve HTTPS (the server would refuse to start with it), or undefined:
 * a kubernetes.io/tls Secret whose tls.key is the private key of tls.crt, PEM both, and whose
 * ca.crt, if any, is a certificate.
 */
export function tlsSecretProblem(secret: SecretData | undefined): string | undefined {
  if (!secret) return "does not exist";
  if (secret.type !== "kubernetes.io/tls") return `is of type ${secret.type}, not kubernetes.io/tls`;
  const { "tls.crt": crt, "tls.key": key, "ca.crt": ca } = secret.data;
  if (!crt) return "has no tls.crt";
  if (!key) return "has no tls.key";
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(crt);
  } catch {
    return "has a tls.crt that is not a PEM certificate";
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    return "has a tls.key that is not a PEM private key (an encrypted one cannot be read)";
  }
  if (!cert.checkPrivateKey(privateKey)) return "has a tls.key that is not the private key of its tls.crt";
  if (ca) {
    try {
      new X509Certificate(ca);
    } catch {
      return "has a ca.crt that is not a PEM certificate";
    }
  }
  return undefined;
}

/**
 * The certificates a colour's serving certificate must chain to: the Secret's ca.crt, or
 * without one its tls.crt itself (self-signed, or a chain whose root the Secret does not hold).
 */
export function trustAnchor(secret: SecretData | undefined): string | undefined {
  return secret?.data["ca.crt"] || secret?.data["tls.crt"] || undefined;
}
