/**
 * Verifying signed branch calls (the coordinator's docs/security.md#signed-branch-calls). With
 * `branchSigning` configured, dtx sends every branch request with
 * `x-dtx-signature: v1,kid=<key id>,t=<unix seconds>,sig=<hex HMAC-SHA256>` (an HTTP header, or gRPC
 * metadata) over
 *
 * ```
 * v1 \n <t> \n <METHOD> \n <path and query as sent> \n <hex SHA-256 of the body as sent>
 * ```
 *
 * (gRPC: method `POST`, the path `/package.Service/Method`, the request message's bytes). A
 * participant holding the key checks it before running any business code; a missing, malformed,
 * unknown-key, wrong or stale signature is an `UNAUTHENTICATED` {@link DtxError}, which the handler
 * helpers answer with HTTP 401 / gRPC UNAUTHENTICATED and the coordinator retries.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { DtxError } from "../errors.ts";

/** The header (HTTP) and metadata key (gRPC) of the signature. */
export const BRANCH_SIGNATURE_HEADER = "x-dtx-signature";
/** The default largest distance, in seconds, between a signature's time and the verifier's clock. */
export const DEFAULT_MAX_SKEW_SECONDS = 300;

/** A key shared with the coordinator (its `branchSigning` keys): the secret is used as UTF-8 bytes. */
export interface BranchSigningKey {
  readonly id: string;
  readonly secret: string;
}

/** Options of {@link BranchSignatureVerifier} and {@link verifyBranchSignature}. */
export interface BranchSignatureOptions {
  /**
   * Every key accepted (during a rotation: the old and the new one), or a function returning them,
   * called at each verification (so keys can change without a restart).
   */
  readonly keys: readonly BranchSigningKey[] | (() => readonly BranchSigningKey[]);
  /** How far, in seconds, the signature's time may be from `now()`, either way (default 300). */
  readonly maxSkewSeconds?: number;
  /** The clock, in ms since the epoch (default `Date.now`). */
  readonly now?: () => number;
}

/** What a signature covers, plus the header carrying it. */
export interface SignedRequest {
  /** `GET`, `POST`, ... (`POST` for gRPC). */
  readonly method: string;
  /** The path and query exactly as received (node's `req.url`; gRPC: `/package.Service/Method`). */
  readonly pathAndQuery: string;
  /** The raw body as received (gRPC: the request message's bytes); a string is taken as UTF-8. */
  readonly body: Uint8Array | string;
  /** The `x-dtx-signature` value; undefined when absent. */
  readonly signature: string | undefined;
}

const SIGNATURE = /^v1,kid=([A-Za-z0-9._-]{1,64}),t=(\d{1,12}),sig=([0-9a-f]{64})$/;

function unauthenticated(reason: string): DtxError {
  return new DtxError("UNAUTHENTICATED", `branch signature refused: ${reason}`);
}

/** The string a signature covers. */
export function canonicalBranchRequest(timestamp: number, method: string, pathAndQuery: string, body: Uint8Array | string): string {
  const bodyHash = createHash("sha256").update(body).digest("hex");
  return `v1\n${timestamp}\n${method.toUpperCase()}\n${pathAndQuery}\n${bodyHash}`;
}

/**
 * Checks one request: returns the id of the key that signed it when it is signed by an accepted
 * key within the allowed skew, throws an `UNAUTHENTICATED` {@link DtxError} otherwise. The error's
 * message says which check failed, never a secret.
 */
export function verifyBranchSignature(request: SignedRequest, options: BranchSignatureOptions): { keyId: string } {
  if (request.signature === undefined || request.signature === "") throw unauthenticated(`no ${BRANCH_SIGNATURE_HEADER}`);
  const match = SIGNATURE.exec(request.signature.trim());
  if (!match) throw unauthenticated(`${BRANCH_SIGNATURE_HEADER} is not v1,kid=...,t=...,sig=<64 hex digits>`);
  const [, keyId = "", t = "", sig = ""] = match;
  const keys = typeof options.keys === "function" ? options.keys() : options.keys;
  const key = keys.find((k) => k.id === keyId);
  if (!key) throw unauthenticated(`unknown key id ${JSON.stringify(keyId)}`);
  const timestamp = Number(t);
  const maxSkew = options.maxSkewSeconds ?? DEFAULT_MAX_SKEW_SECONDS;
  const nowSeconds = (options.now ?? Date.now)() / 1000;
  if (Math.abs(nowSeconds - timestamp) > maxSkew) throw unauthenticated(`signed at ${timestamp}, more than ${maxSkew} s from now (${Math.floor(nowSeconds)})`);
  const expected = createHmac("sha256", Buffer.from(key.secret, "utf8")).update(canonicalBranchRequest(timestamp, request.method, request.pathAndQuery, request.body)).digest();
  if (!timingSafeEqual(expected, Buffer.from(sig, "hex"))) throw unauthenticated(`the signature does not match the request (key ${JSON.stringify(keyId)})`);
  return { keyId };
}

/** The first value of a header or metadata entry, as a string. */
export function firstValue(value: unknown): string | undefined {
  const first: unknown = Array.isArray(value) ? (value as unknown[])[0] : value;
  if (typeof first === "string") return first;
  return first instanceof Uint8Array ? Buffer.from(first).toString("utf8") : undefined;
}

/**
 * A verifier with its keys, for the handler helpers (`signature` option) and
 * `BranchBarrier.fromSignedHttp` / `fromSignedGrpc`. {@link setKeys} swaps the accepted keys at
 * run time (a rotation).
 *
 * ```ts
 * const verifier = new BranchSignatureVerifier({ keys: [{ id: "k1", secret: process.env.DTX_SIGNING_K1! }] });
 * http.createServer(nodeHandler(handle, { signature: verifier })).listen(8081);
 * ```
 */
export class BranchSignatureVerifier {
  #keys: readonly BranchSigningKey[] | (() => readonly BranchSigningKey[]);
  readonly #options: BranchSignatureOptions;

  constructor(options: BranchSignatureOptions) {
    this.#options = options;
    this.#keys = options.keys;
  }

  /** Replaces the accepted keys (e.g. the new one added before the coordinator switches to it). */
  setKeys(keys: readonly BranchSigningKey[]): void {
    this.#keys = keys;
  }

  /** {@link verifyBranchSignature} with this verifier's keys, skew and clock. */
  verify(request: SignedRequest): { keyId: string } {
    return verifyBranchSignature(request, { ...this.#options, keys: this.#keys });
  }

  /** Checks an HTTP request: its method, raw path and query, headers (lower-case names) and raw body. */
  verifyHttp(request: { method: string; url: string; headers: Readonly<Record<string, unknown>>; body: Uint8Array | string }): { keyId: string } {
    return this.verify({ method: request.method, pathAndQuery: request.url, body: request.body, signature: firstValue(request.headers[BRANCH_SIGNATURE_HEADER]) });
  }

  /** Checks a gRPC call: its path `/package.Service/Method`, metadata and request message bytes. */
  verifyGrpc(call: { path: string; metadata: { get(key: string): unknown[] }; message: Uint8Array }): { keyId: string } {
    return this.verify({ method: "POST", pathAndQuery: call.path, body: call.message, signature: firstValue(call.metadata.get(BRANCH_SIGNATURE_HEADER)) });
  }
}

/** A verifier, or the options to build one. */
export type SignatureOption = BranchSignatureVerifier | BranchSignatureOptions;

export function toVerifier(option: SignatureOption): BranchSignatureVerifier {
  return option instanceof BranchSignatureVerifier ? option : new BranchSignatureVerifier(option);
}

/**
 * The raw body of a request a framework already parsed: `rawBody` (set by {@link fastifyJsonParser},
 * `express.json({ verify })` or a raw-body plugin), else a Buffer or string body (`express.raw()`,
 * `express.text()`), else empty for a request without a body. Throws a plain Error (answered 500)
 * when only a parsed body is left: signatures cover bytes, which a parsed object no longer has.
 */
export function rawBodyOf(request: { body?: unknown; rawBody?: unknown; headers?: unknown }): Uint8Array | string {
  const { rawBody, body } = request;
  if (rawBody instanceof Uint8Array || typeof rawBody === "string") return rawBody;
  if (body instanceof Uint8Array || typeof body === "string") return body;
  const headers = (request.headers ?? {}) as Record<string, unknown>;
  const length = firstValue(headers["content-length"]);
  const chunked = firstValue(headers["transfer-encoding"]) !== undefined;
  if (!chunked && (length === undefined || length === "0")) return "";
  throw new Error("verifying a branch signature needs the raw request body: keep it as request.rawBody (see the SDK docs, Signed branch calls)");
}
