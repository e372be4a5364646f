import { DtxError, DtxFailure, DtxOngoing, messageOf } from "../errors.ts";

/** A raw HTTP answer. */
export interface HttpAnswer {
  readonly status: number;
  readonly body: Buffer;
}

/** One HTTP request through the global `fetch`. */
export interface HttpRequest {
  readonly method: string;
  readonly url: string;
  readonly headers?: Record<string, string>;
  readonly body?: Uint8Array | string;
  readonly timeoutMs: number;
}

/**
 * Sends one request with the global `fetch`. Never throws for an HTTP status; a timeout is a
 * `TIMEOUT` error and any other transport fault (refused, reset, DNS) is `UNAVAILABLE`.
 */
export async function httpCall(req: HttpRequest): Promise<HttpAnswer> {
  try {
    const res = await fetch(req.url, {
      method: req.method,
      headers: req.headers ?? {},
      ...(req.body !== undefined ? { body: req.body } : {}),
      signal: AbortSignal.timeout(req.timeoutMs),
    });
    return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
  } catch (err) {
    const name = err instanceof Error ? err.name : "";
    if (name === "TimeoutError" || name === "AbortError") {
      throw new DtxError("TIMEOUT", `${req.method} ${req.url}: no answer within ${req.timeoutMs} ms`, { cause: err });
    }
    const cause = err instanceof Error && err.cause !== undefined ? `: ${messageOf(err.cause)}` : "";
    throw new DtxError("UNAVAILABLE", `${req.method} ${req.url}: ${messageOf(err)}${cause}`, { cause: err });
  }
}

/** `message` and `code` of a JSON error body, when it is one. */
export function errorBodyFields(text: string): { message?: string; code?: string; dtmResult?: string } {
  if (!text.startsWith("{")) return {};
  try {
    const o = JSON.parse(text) as Record<string, unknown>;
    return {
      ...(typeof o["message"] === "string" ? { message: o["message"] } : {}),
      ...(typeof o["code"] === "string" ? { code: o["code"] } : {}),
      ...(typeof o["dtm_result"] === "string" ? { dtmResult: o["dtm_result"] } : {}),
    };
  } catch {
    return {};
  }
}

/**
 * How dtm's SDK reads a participant's HTTP answer (`RespAsErrorCompatible`, docs/protocol.md#what-clients-send):
 * 425 or a body containing ONGOING is ONGOING; 409 or a body containing FAILURE is FAILURE; any
 * other non-200 is an error (`HTTP_ERROR`, `UNAVAILABLE` for 503). Returns normally for SUCCESS.
 */
export function throwForParticipantAnswer(what: string, status: number, text: string): void {
  const fields = errorBodyFields(text);
  const message = fields.message ?? text;
  if (status === 425 || text.includes("ONGOING")) throw new DtxOngoing(message || "ONGOING", { httpStatus: status });
  if (status === 409 || text.includes("FAILURE")) throw new DtxFailure(message || "FAILURE", { httpStatus: status });
  if (status !== 200) {
    throw new DtxError(status === 503 ? "UNAVAILABLE" : "HTTP_ERROR", `${what}: HTTP ${status} ${truncate(text)}`, { httpStatus: status });
  }
}

/**
 * How the SDK reads the coordinator's answer: 409 FAILURE, 425 ONGOING (from a `waitResult`
 * submit or abort: the transaction is unfinished, not failed), 400/413/415 invalid, 404
 * not found, 503 unavailable, other non-200 an HTTP error; the coordinator's stable `code` is
 * kept as `serverCode`. With `legacyFailureWord`, a 200 whose body contains FAILURE is FAILURE
 * too (dtm's `TransCallDtmExt` rule, for the routes that answer `{"dtm_result":"SUCCESS"}`).
 */
export function throwForCoordinatorAnswer(what: string, status: number, text: string, legacyFailureWord: boolean): void {
  const fields = errorBodyFields(text);
  const details = { httpStatus: status, ...(fields.code !== undefined ? { serverCode: fields.code } : {}) };
  const message = fields.message ?? truncate(text);
  if (status === 200) {
    if (legacyFailureWord && text.includes("FAILURE")) throw new DtxFailure(message || "FAILURE", details);
    return;
  }
  if (status === 409) throw new DtxFailure(message || "FAILURE", details);
  if (status === 425) throw new DtxOngoing(message || "ONGOING", details);
  const code = status === 400 || status === 413 || status === 415 ? "INVALID_ARGUMENT" : status === 404 ? "NOT_FOUND" : status === 503 ? "UNAVAILABLE" : "HTTP_ERROR";
  throw new DtxError(code, `${what}: HTTP ${status} ${message}`, details);
}

function truncate(text: string, max = 512): string {
  return text.length > max ? `${text.slice(0, max)}...` : text;
}
