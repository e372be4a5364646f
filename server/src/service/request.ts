import { clip, describeValue, quoteName } from "../core/echo.ts";
import { CoordinatorError } from "../core/errors.ts";
import { msgDelayProblem } from "../core/msg.ts";
import { DEFAULT_OPTIONS } from "../core/options.ts";
import { MAX_REQUEST_TIMEOUT_SECONDS, MAX_RETRY_COUNT, MAX_SECONDS } from "../core/time-limits.ts";
import { parseSagaCustomData } from "../core/saga-layout.ts";
import type { Protocol, TransOptions, TransType } from "../core/types.ts";
import { PROTOCOLS, TRANS_TYPES } from "../core/types.ts";
import { GID_PATTERN } from "../core/gid.ts";
import type { UrlPolicy } from "../driver/url-policy.ts";

/** Limits applied to every request before anything is written. */
export interface RequestLimits {
  maxBranches: number;
  maxPayloadBytes: number;
  /** The branch URL policy; absent = every URL allowed (dtm's behaviour). */
  urlPolicy?: UrlPolicy;
}

/** A global-transaction request body (prepare, submit, abort, ...), validated. */
export interface TransRequest {
  gid: string;
  transType: TransType;
  protocol: Protocol;
  steps: Record<string, string>[];
  payloads: Uint8Array[];
  customData: string;
  queryPrepared: string;
  options: TransOptions;
  rollbackReason: string;
  reqExtra: Record<string, string>;
}

const MAX_URL_LENGTH = 1024;
const MAX_HEADERS = 32;
const MAX_HEADER_BYTES = 8 * 1024;
/**
 * Headers a trans may not set on its branch calls: framing, hop-by-hop (RFC 9110 §7.6.1) and
 * `expect`, which the HTTP client refuses (every call would fail).
 */
const FORBIDDEN_HEADERS = new Set([
  "host", "content-length", "transfer-encoding", "connection", "content-type", "upgrade", "te", "trailer", "keep-alive",
  "expect", "proxy-connection", "proxy-authenticate", "proxy-authorization",
]);
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** A header value the HTTP client will send (field-vchar, SP, HTAB; the same rule as Node and undici). */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const GRPC_TARGET = /^[A-Za-z0-9_.:[\]-]+:\d{1,5}\/[A-Za-z0-9_.]+\/[A-Za-z0-9_]+$/;

function invalid(message: string): CoordinatorError {
  return new CoordinatorError("INVALID_REQUEST", message);
}

export function asObject(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw invalid("the request body must be a JSON object");
  return body as Record<string, unknown>;
}

function optionalString(o: Record<string, unknown>, key: string): string {
  const v = o[key];
  if (v === undefined || v === null) return "";
  if (typeof v !== "string") throw invalid(`${key} must be a string; got ${describeValue(v)}`);
  return v;
}

export function parseGid(value: unknown): string {
  if (value === undefined || value === null || value === "") throw new CoordinatorError("INVALID_GID", "gid is required");
  if (typeof value !== "string") throw new CoordinatorError("INVALID_GID", "gid must be a string");
  if (!GID_PATTERN.test(value)) {
    throw new CoordinatorError("INVALID_GID", "gid must be 1-128 characters from [A-Za-z0-9_.:-]");
  }
  return value;
}

export function parseTransType(value: unknown): TransType {
  if (typeof value !== "string" || !(TRANS_TYPES as readonly string[]).includes(value)) {
    throw new CoordinatorError("INVALID_TRANS_TYPE", `trans_type must be one of ${TRANS_TYPES.join(", ")}; got ${describeValue(value ?? null)}`);
  }
  return value as TransType;
}

function parseProtocol(value: unknown): Protocol {
  if (value === undefined || value === null || value === "") return "http";
  if (typeof value !== "string" || !(PROTOCOLS as readonly string[]).includes(value)) {
    throw invalid(`protocol must be one of ${PROTOCOLS.join(", ")}`);
  }
  return value as Protocol;
}

function seconds(o: Record<string, unknown>, key: string, max = MAX_SECONDS): number {
  const v = o[key];
  if (v === undefined || v === null) return 0;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > max) {
    throw new CoordinatorError("INVALID_OPTIONS", `${key} must be a number of seconds between 0 and ${max}; got ${describeValue(v)}`);
  }
  return Math.round(v * 1000);
}

function count(o: Record<string, unknown>, key: string): number {
  const v = o[key];
  if (v === undefined || v === null) return 0;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > MAX_RETRY_COUNT) {
    throw new CoordinatorError("INVALID_OPTIONS", `${key} must be a whole number between 0 and ${MAX_RETRY_COUNT}; got ${describeValue(v)}`);
  }
  return v;
}

function bool(o: Record<string, unknown>, key: string): boolean {
  const v = o[key];
  if (v === undefined || v === null) return false;
  if (typeof v !== "boolean") throw new CoordinatorError("INVALID_OPTIONS", `${key} must be true or false`);
  return v;
}

export function parseBranchHeaders(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) throw new CoordinatorError("INVALID_OPTIONS", "branch_headers must be an object of strings");
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > MAX_HEADERS) throw new CoordinatorError("INVALID_OPTIONS", `branch_headers may have at most ${MAX_HEADERS} entries`);
  let size = 0;
  const out: [string, string][] = [];
  for (const [name, v] of entries) {
    if (typeof v !== "string") throw new CoordinatorError("INVALID_OPTIONS", `branch_headers.${clip(name)} must be a string`);
    if (!HEADER_NAME.test(name) || FORBIDDEN_HEADERS.has(name.toLowerCase())) {
      throw new CoordinatorError("INVALID_OPTIONS", `branch_headers may not set ${quoteName(name)}`);
    }
    if (/[\r\n\0]/.test(v)) throw new CoordinatorError("INVALID_OPTIONS", `branch_headers.${clip(name)} contains a line break`);
    if (!HEADER_VALUE.test(v)) {
      throw new CoordinatorError("INVALID_OPTIONS", `branch_headers.${clip(name)} may only hold visible ASCII, Latin-1, spaces and tabs`);
    }
    size += name.length + v.length;
    out.push([name, v]);
  }
  if (size > MAX_HEADER_BYTES) throw new CoordinatorError("INVALID_OPTIONS", `branch_headers may total at most ${MAX_HEADER_BYTES} bytes`);
  // fromEntries defines own properties, so even a header named "__proto__" stays a plain header.
  return Object.fromEntries(out);
}

export function parseOptions(o: Record<string, unknown>): TransOptions {
  return {
    ...DEFAULT_OPTIONS,
    waitResult: bool(o, "wait_result"),
    timeoutToFail: seconds(o, "timeout_to_fail"),
    requestTimeout: seconds(o, "request_timeout", MAX_REQUEST_TIMEOUT_SECONDS),
    retryInterval: seconds(o, "retry_interval"),
    branchHeaders: parseBranchHeaders(o["branch_headers"]),
    concurrent: bool(o, "concurrent"),
    retryLimit: count(o, "retry_limit"),
    retryCount: count(o, "retry_count"),
  };
}

/**
 * Checks a branch URL: "" (a no-op branch), an absolute http(s) URL, or for gRPC a
 * `host:port/package.Service/Method` target; then, when a policy is given, that the policy allows it
 * (URL_NOT_ALLOWED).
 */
export function checkBranchUrl(url: string, protocol: Protocol, field: string, policy?: UrlPolicy): void {
  checkUrlShape(url, protocol, field);
  policy?.check(url, field);
}

function checkUrlShape(url: string, protocol: Protocol, field: string): void {
  // Callers pass query parameters too, which arrive as arrays when repeated (`?url=a&url=b`).
  if (typeof url !== "string") throw new CoordinatorError("INVALID_URL", `${field} must be a single string`);
  if (url === "") return;
  if (url.length > MAX_URL_LENGTH) throw new CoordinatorError("INVALID_URL", `${field} is longer than ${MAX_URL_LENGTH} characters`);
  if (url.startsWith("http://") || url.startsWith("https://")) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new CoordinatorError("INVALID_URL", `${field} is not a valid URL: ${JSON.stringify(clip(url))}`);
    }
    if (!parsed.hostname) throw new CoordinatorError("INVALID_URL", `${field} has no host`);
    return;
  }
  if (protocol === "grpc" && GRPC_TARGET.test(url)) return;
  throw new CoordinatorError(
    "INVALID_URL",
    protocol === "grpc"
      ? `${field} must be an http(s) URL or a gRPC target host:port/package.Service/Method`
      : `${field} must be an absolute http:// or https:// URL`,
  );
}

function parseSteps(value: unknown): Record<string, string>[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalid("steps must be an array");
  return value.map((step, i) => {
    if (step === null || typeof step !== "object" || Array.isArray(step)) throw invalid(`steps[${i}] must be an object`);
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(step as Record<string, unknown>)) {
      if (typeof v !== "string") throw invalid(`steps[${i}].${clip(k)} must be a string; got ${describeValue(v)}`);
      out[k] = v;
    }
    return out;
  });
}

function parsePayloads(value: unknown, steps: Record<string, string>[], transType: TransType, limits: RequestLimits): Uint8Array[] {
  let texts: (string | Uint8Array)[];
  if (value === undefined || value === null) {
    texts = steps.map((s) => s["data"] ?? "");
  } else {
    if (!Array.isArray(value) || value.some((p) => typeof p !== "string" && !(p instanceof Uint8Array))) {
      throw new CoordinatorError("INVALID_PAYLOADS", "payloads must be an array of strings");
    }
    texts = value as (string | Uint8Array)[];
    // saga and msg pair payload i with step i; tcc / xa / workflow without steps may carry any.
    const paired = steps.length > 0 || transType === "saga" || transType === "msg";
    if (paired && texts.length !== steps.length) {
      throw new CoordinatorError("INVALID_PAYLOADS", `payloads has ${texts.length} entries for ${steps.length} steps`);
    }
  }
  return texts.map((text, i) => {
    const bytes = typeof text === "string" ? Buffer.from(text, "utf8") : text;
    if (bytes.byteLength > limits.maxPayloadBytes) {
      throw new CoordinatorError("PAYLOAD_TOO_LARGE", `payloads[${i}] is ${bytes.byteLength} bytes; the limit is ${limits.maxPayloadBytes}`);
    }
    return bytes;
  });
}

function parseReqExtra(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) throw invalid("req_extra must be an object of strings");
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== "string") throw invalid(`req_extra.${clip(k)} must be a string; got ${describeValue(v)}`);
    out[k] = v;
  }
  return out;
}

/**
 * gRPC's `BinPayloads` (docs/protocol.md#grpc-api): raw bytes, stored exactly as given. Only the gRPC adapter
 * sets `bin_payloads`; a JSON body can never hold a Uint8Array, so HTTP ignores the key as before.
 */
function binPayloads(value: unknown): Uint8Array[] | undefined {
  if (!Array.isArray(value) || value.length === 0 || !value.every((p) => p instanceof Uint8Array)) return undefined;
  return value as Uint8Array[];
}

/** Parses and validates a trans body as dtm's clients send it (docs/protocol.md#response-envelope and docs/protocol.md#request-bodies). */
export function parseTransRequest(body: unknown, limits: RequestLimits): TransRequest {
  const o = asObject(body);
  const gid = parseGid(o["gid"]);
  const transType = parseTransType(o["trans_type"]);
  const protocol = parseProtocol(o["protocol"]);
  const steps = parseSteps(o["steps"]);
  const payloads = parsePayloads(binPayloads(o["bin_payloads"]) ?? o["payloads"], steps, transType, limits);
  const customData = optionalString(o, "custom_data");
  const queryPrepared = optionalString(o, "query_prepared");
  const options = parseOptions(o);
  const rollbackReason = optionalString(o, "rollback_reason").slice(0, 1024);
  const reqExtra = parseReqExtra(o["req_extra"]);
  if (queryPrepared) checkBranchUrl(queryPrepared, protocol, "query_prepared", limits.urlPolicy);
  if (transType === "saga") checkSagaShape(steps, customData, protocol, limits);
  if (transType === "msg") {
    const problem = msgDelayProblem(customData);
    if (problem) throw new CoordinatorError("INVALID_OPTIONS", problem);
  }
  return { gid, transType, protocol, steps, payloads, customData, queryPrepared, options, rollbackReason, reqExtra };
}

function checkSagaShape(steps: Record<string, string>[], customData: string, protocol: Protocol, limits: RequestLimits): void {
  if (steps.length * 2 > limits.maxBranches) {
    throw new CoordinatorError("TOO_MANY_BRANCHES", `a saga of ${steps.length} steps has ${steps.length * 2} branches; the limit is ${limits.maxBranches}`);
  }
  steps.forEach((step, i) => {
    checkBranchUrl(step["action"] ?? "", protocol, `steps[${i}].action`, limits.urlPolicy);
    checkBranchUrl(step["compensate"] ?? "", protocol, `steps[${i}].compensate`, limits.urlPolicy);
  });
  const custom = parseSagaCustomData(customData, steps.length);
  if ("problem" in custom) throw new CoordinatorError("INVALID_ORDERS", custom.problem);
}
