import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Real certificates for TLS tests, made by openssl (Debian's `openssl`). */

export interface Pair {
  cert: string;
  key: string;
  certFile: string;
  keyFile: string;
}

const openssl = (args: string[], cwd: string) => execFileSync("openssl", args, { cwd, stdio: ["ignore", "pipe", "pipe"] });

export function pkiDir(): string {
  return mkdtempSync(join(tmpdir(), "wavelet-pki-"));
}

const pair = (dir: string, name: string): Pair => ({
  cert: readFileSync(join(dir, `${name}.crt`), "utf8"),
  key: readFileSync(join(dir, `${name}.key`), "utf8"),
  certFile: join(dir, `${name}.crt`),
  keyFile: join(dir, `${name}.key`),
});

export function makeCA(dir: string, name: string): Pair {
  openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", `/CN=${name}`, "-keyout", `${name}.key`, "-out", `${name}.crt`], dir);
  return pair(dir, name);
}

/** A leaf signed by `ca`: a server certificate for `dns` names, or a client certificate. */
export function makeCert(dir: string, ca: Pair, name: string, opts: { cn: string; dns?: string[]; client?: boolean }): Pair {
  const ext = opts.client
    ? "extendedKeyUsage=clientAuth"
    : `extendedKeyUsage=serverAuth\nsubjectAltName=${(opts.dns ?? ["localhost"]).map((d) => (/^[\d.]+$/.test(d) ? `IP:${d}` : `DNS:${d}`)).join(",")}`;
  writeFileSync(join(dir, `${name}.ext`), `${ext}\n`);
  openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", `/CN=${opts.cn}`, "-keyout", `${name}.key`, "-out", `${name}.csr`], dir);
  openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", ca.certFile, "-CAkey", ca.keyFile, "-CAcreateserial", "-days", "2", "-extfile", `${name}.ext`, "-out", `${name}.crt`], dir);
  return pair(dir, name);
}
