/**
 * Signed branch calls (docs/security.md#signed-branch-calls): with `branchSigning` configured, every
 * branch request carries `x-dtx-signature: v1,kid=<key id>,t=<unix seconds>,sig=<hex>`, an
 * HMAC-SHA256 under the active key of
 *
 * ```
 * v1 \n <t> \n <METHOD> \n <path and query as sent> \n <hex SHA-256 of the body as sent>
 * ```
 *
 * so a participant holding the key can tell the coordinator's calls from forged ones, and refuse an
 * old one replayed. HTTP and JSON-RPC send it as a header; gRPC as metadata, with method `POST`, the
 * path `/package.Service/Method` and the request message's bytes. The SDK's verifier
 * (`verifyBranchSignature`) checks the same string.
 */
import { createHash, createHmac } from "node:crypto";
import type { SigningKey } from "./signing-keys.ts";

/** The header (HTTP) and metadata key (gRPC) that carries the signature. */
export const SIGNATURE_HEADER = "x-dtx-signature";
export const SIGNATURE_VERSION = "v1";

/** The string the signature covers. */
export function canonicalRequest(timestamp: number, method: string, pathAndQuery: string, body: Uint8Array | string): string {
  const bodyHash = createHash("sha256").update(body).digest("hex");
  return `${SIGNATURE_VERSION}\n${timestamp}\n${method.toUpperCase()}\n${pathAndQuery}\n${bodyHash}`;
}

export class BranchSigner {
  /**
   * @param keys holds the active key, read at every call (a rotation takes effect at the next call)
   * @param now the coordinator's clock, in ms
   */
  constructor(private readonly keys: { readonly active: SigningKey }, private readonly now: () => number) {}

  /** The header value for one request. */
  sign(method: string, pathAndQuery: string, body: Uint8Array | string): string {
    const key = this.keys.active;
    const timestamp = Math.floor(this.now() / 1000);
    const sig = createHmac("sha256", key.secret).update(canonicalRequest(timestamp, method, pathAndQuery, body)).digest("hex");
    return `${SIGNATURE_VERSION},kid=${key.id},t=${timestamp},sig=${sig}`;
  }
}

/**
 * Sets the signature header (any case of the name a branch header used is dropped first).
 * `pathAndQuery` is the request target exactly as sent.
 */
export function signWith(signer: BranchSigner, headers: Record<string, string>, method: string, pathAndQuery: string, body: Uint8Array | string): void {
  for (const name of Object.keys(headers)) if (name.toLowerCase() === SIGNATURE_HEADER) delete headers[name];
  headers[SIGNATURE_HEADER] = signer.sign(method, pathAndQuery, body);
}

/** The metadata entries that sign a gRPC call of `path` (`/package.Service/Method`) with `message`; none without a signer. */
export function grpcSignatureMetadata(signer: BranchSigner | undefined, path: string, message: Uint8Array): [string, string][] {
  return signer ? [[SIGNATURE_HEADER, signer.sign("POST", path, message)]] : [];
}
