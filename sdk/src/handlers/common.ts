import { dtxErrorCode, invalidArgument, isFailure, isOngoing, messageOf } from "../errors.ts";
import type { BranchRequestInfo } from "../types.ts";

/** What a participant handler answers over HTTP. */
export interface HandlerReply {
  /** 200, 409, 425 or 500. */
  readonly status: number;
  /** The JSON body. */
  readonly body: unknown;
}

/**
 * dtm's result words are matched as substrings by dtm's coordinator and SDKs (docs/protocol.md#http-branch-calls), so
 * the message of an ordinary error must not contain them: an error saying "FAILURE" would roll
 * a saga back. They are lower-cased in 500 bodies.
 */
function defuse(text: string): string {
  return text.replace(/FAILURE|ONGOING/g, (word) => word.toLowerCase());
}

/**
 * The HTTP answer for a handler's outcome (dtm's `WrapHandler`, docs/protocol.md#response-envelope):
 * - resolved with `undefined`/`null`: 200 `{"dtm_result":"SUCCESS"}`; with a value: 200 and the value as JSON;
 * - threw FAILURE ({@link DtxFailure}, or any error whose `code` is `"FAILURE"`): 409 `{"dtm_result":"FAILURE","message":...}`;
 * - threw ONGOING: 425 `{"dtm_result":"ONGOING","message":...}`;
 * - threw an `UNAUTHENTICATED` {@link DtxError} (a refused branch signature): 401 `{"message":...}`;
 * - threw anything else: 500 `{"message":...}` (the words FAILURE/ONGOING lower-cased).
 */
export function replyFor(outcome: { ok: true; value: unknown } | { ok: false; error: unknown }): HandlerReply {
  if (outcome.ok) {
    return { status: 200, body: outcome.value === undefined || outcome.value === null ? { dtm_result: "SUCCESS" } : outcome.value };
  }
  const { error } = outcome;
  if (isFailure(error)) return { status: 409, body: { dtm_result: "FAILURE", message: messageOf(error) } };
  if (isOngoing(error)) return { status: 425, body: { dtm_result: "ONGOING", message: messageOf(error) } };
  if (dtxErrorCode(error) === "UNAUTHENTICATED") return { status: 401, body: { message: defuse(messageOf(error)) } };
  return { status: 500, body: { message: defuse(messageOf(error)) } };
}

/** Runs `fn` and maps its outcome with {@link replyFor}. */
export async function runHandler(fn: () => unknown): Promise<HandlerReply> {
  try {
    return replyFor({ ok: true, value: await fn() });
  } catch (error) {
    return replyFor({ ok: false, error });
  }
}

/** A parsed query string: `URLSearchParams`, or an object of values (repeated keys as arrays), as web frameworks give it. */
export type QueryLike = URLSearchParams | Readonly<Record<string, unknown>>;

function queryValue(query: QueryLike, key: string): string {
  const raw: unknown = query instanceof URLSearchParams ? query.get(key) : query[key];
  const value = Array.isArray(raw) ? (raw as unknown[])[0] : raw;
  return typeof value === "string" ? value : "";
}

const WIRE_NAMES = { transType: "trans_type", gid: "gid", branchId: "branch_id", op: "op" } as const;

function required(info: BranchRequestInfo, where: "query" | "metadata"): BranchRequestInfo {
  const prefix = where === "metadata" ? "dtm-" : "";
  const missing = (Object.keys(WIRE_NAMES) as (keyof typeof WIRE_NAMES)[]).filter((k) => info[k] === "").map((k) => `${prefix}${WIRE_NAMES[k]}`);
  if (missing.length > 0) throw invalidArgument(`the branch request has no ${missing.join(", ")} in its ${where}`);
  return info;
}

/**
 * The branch identity of an HTTP branch request, from its query parameters `trans_type`, `gid`,
 * `branch_id`, `op` (all required: INVALID_ARGUMENT otherwise) plus `dtm` and `phase2_url` ("" when
 * absent). Accepts `URLSearchParams`, fastify's / express's `req.query`, or a full URL string.
 */
export function branchInfoFromQuery(query: QueryLike | string): BranchRequestInfo {
  const q = typeof query === "string" ? new URL(query, "http://localhost").searchParams : query;
  return required(
    {
      transType: queryValue(q, "trans_type"),
      gid: queryValue(q, "gid"),
      branchId: queryValue(q, "branch_id"),
      op: queryValue(q, "op"),
      dtm: queryValue(q, "dtm"),
      phase2Url: queryValue(q, "phase2_url"),
    },
    "query",
  );
}

/** The part of grpc-js `Metadata` read here. */
export interface MetadataLike {
  /** The values of `key` (strings, or Buffers for `-bin` keys). */
  get(key: string): unknown[];
}

function metadataValue(md: MetadataLike | Readonly<Record<string, unknown>>, key: string): string {
  const raw: unknown = typeof (md as MetadataLike).get === "function" ? (md as MetadataLike).get(key)[0] : (md as Record<string, unknown>)[key];
  const value = Array.isArray(raw) ? (raw as unknown[])[0] : raw;
  if (typeof value === "string") return value;
  return Buffer.isBuffer(value) ? value.toString("utf8") : "";
}

/**
 * The branch identity of a gRPC branch call, from metadata `dtm-trans_type`, `dtm-gid`,
 * `dtm-branch_id`, `dtm-op` (all required) plus `dtm-dtm` and `dtm-phase2_url`. Accepts a grpc-js
 * `Metadata` or a plain object.
 */
export function branchInfoFromMetadata(md: MetadataLike | Readonly<Record<string, unknown>>): BranchRequestInfo {
  return required(
    {
      transType: metadataValue(md, "dtm-trans_type"),
      gid: metadataValue(md, "dtm-gid"),
      branchId: metadataValue(md, "dtm-branch_id"),
      op: metadataValue(md, "dtm-op"),
      dtm: metadataValue(md, "dtm-dtm"),
      phase2Url: metadataValue(md, "dtm-phase2_url"),
    },
    "metadata",
  );
}
