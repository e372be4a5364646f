/**
 * A throw-away PKI made at test time with the `openssl` command: a CA, a server certificate it
 * signs (for `localhost`, `participant.test` and 127.0.0.1), a client certificate it signs (for
 * mTLS), and a second, unrelated CA (the "wrong CA"). Keys are P-256; everything lives in a temp
 * directory removed by {@link TestPki.remove}. No certificate is checked into the repository.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestPki {
  readonly dir: string;
  /** Paths of PEM files. */
  readonly caCert: string;
  readonly otherCaCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** The content of a PEM file of this PKI. */
  read(path: string): Buffer;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"], timeout: 30_000 });
}

const KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

function selfSignedCa(dir: string, name: string): void {
  openssl(["req", "-x509", ...KEY, "-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", "2", "-subj", `/CN=dtx test ${name}`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"], dir);
}

/** A leaf certificate for `name`, signed by the CA `ca`, with the given extensions. */
function leaf(dir: string, ca: string, name: string, subject: string, extensions: string): void {
  writeFileSync(join(dir, `${name}.ext`), extensions);
  openssl(["req", ...KEY, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subject], dir);
  openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`, "-set_serial", String(Date.now()),
    "-days", "2", "-out", `${name}.pem`, "-extfile", `${name}.ext`], dir);
}

/** Makes the PKI (a few hundred ms of openssl). */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), "dtx-pki-"));
  selfSignedCa(dir, "ca");
  selfSignedCa(dir, "other-ca");
  leaf(dir, "ca", "server", "/CN=localhost",
    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,DNS:participant.test,IP:127.0.0.1\n");
  leaf(dir, "ca", "client", "/CN=dtx-coordinator",
    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n");
  const path = (file: string): string => join(dir, file);
  return {
    dir,
    caCert: path("ca.pem"),
    otherCaCert: path("other-ca.pem"),
    serverCert: path("server.pem"),
    serverKey: path("server.key"),
    clientCert: path("client.pem"),
    clientKey: path("client.key"),
    read: (file) => readFileSync(file),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
