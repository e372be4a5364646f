import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import type { ErrorCode } from "../../core/errors.ts";
import { clip } from "../../core/echo.ts";
import { CoordinatorError, dtmResultForStatus, ERROR_CATALOGUE, WIRE_RESULT_CODES, WireResult } from "../../core/errors.ts";
import type { Logger } from "../../logger.ts";
import { OVERLOADED_RETRY_AFTER_SECONDS } from "../../service/pass-admission.ts";
import type { AuthErrorCode } from "../auth.ts";
import { AUTH_ERROR_CODES } from "../auth.ts";

/** Fastify's own client-error codes, mapped to ours. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "UNSUPPORTED_MEDIA_TYPE",
  FST_ERR_CTP_BODY_TOO_LARGE: "PAYLOAD_TOO_LARGE",
  FST_ERR_CTP_EMPTY_JSON_BODY: "INVALID_JSON",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "INVALID_REQUEST",
  FST_ERR_CTP_INVALID_JSON_BODY: "INVALID_JSON",
  FST_ERR_BAD_URL: "INVALID_REQUEST",
  FST_ERR_NOT_FOUND: "ROUTE_NOT_FOUND",
  FST_ERR_MAX_PARAM_LENGTH: "URI_TOO_LONG",
};

/** Other client errors fastify or Node raise, by HTTP status; any other 4xx becomes 400 INVALID_REQUEST. */
const CODE_BY_STATUS: Partial<Record<number, ErrorCode>> = {
  404: "ROUTE_NOT_FOUND",
  413: "PAYLOAD_TOO_LARGE",
  415: "UNSUPPORTED_MEDIA_TYPE",
};

/**
 * `Retry-After` (seconds) of a 503 STORE_UNAVAILABLE: the request already waited up to the store
 * timeout, so a client may try again soon; a store that is back answers at once
 * (docs/store-outages.md).
 */
export const STORE_RETRY_AFTER_SECONDS = 1;

/** The body dtm's clients expect for an error, plus our stable code. */
export interface ErrorBody {
  message: string;
  code: string;
  dtm_result?: "FAILURE" | "ONGOING";
}

/**
 * The answer for anything a route threw. Every 409 body carries `"dtm_result":"FAILURE"` and
 * every 425 body `"dtm_result":"ONGOING"`, whatever raised it, because dtm's clients read them so.
 */
export function toErrorReply(error: unknown, logger: Logger): { status: number; body: ErrorBody } {
  const { status, body } = replyWithoutDtmResult(error, logger);
  const dtmResult = dtmResultForStatus(status);
  return { status, body: dtmResult ? { dtm_result: dtmResult, ...body } : body };
}

function replyWithoutDtmResult(error: unknown, logger: Logger): { status: number; body: ErrorBody } {
  if (error instanceof WireResult) {
    return { status: WIRE_RESULT_CODES[error.result].httpStatus, body: { message: error.message, code: error.result } };
  }
  if (error instanceof CoordinatorError) {
    // An outage fails every request: one warn line each, not an error with a stack per request.
    if (error.code === "STORE_UNAVAILABLE") logger.warn({ reason: error.message }, "request failed: the store is unavailable");
    // OVERLOADED is an expected answer under load, not a fault: logging each one would add to the load.
    else if (error.httpStatus >= 500 && error.code !== "OVERLOADED") logger.error({ err: error }, "request failed");
    return { status: error.httpStatus, body: { message: error.message, code: error.code } };
  }
  const fe = error as Partial<FastifyError>;
  const mapped = fe.code ? FASTIFY_CODES[fe.code] : undefined;
  // fastify's and V8's texts may quote the request (a content type, a piece of the body): clipped.
  if (mapped) return { status: ERROR_CATALOGUE[mapped].httpStatus, body: { message: clip(fe.message ?? mapped), code: mapped } };
  if (error instanceof SyntaxError) return { status: 400, body: { message: `invalid JSON: ${clip(error.message)}`, code: "INVALID_JSON" } };
  if (typeof fe.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500) {
    // The status always matches the code's (docs/errors.md), so an unmapped 4xx is answered 400.
    const code = CODE_BY_STATUS[fe.statusCode] ?? "INVALID_REQUEST";
    return { status: ERROR_CATALOGUE[code].httpStatus, body: { message: clip(fe.message ?? "bad request"), code } };
  }
  logger.error({ err: error }, "unexpected error while handling a request");
  return { status: 500, body: { message: "internal error; see the coordinator log", code: "INTERNAL" } };
}

export function errorHandler(logger: Logger) {
  return (error: unknown, _request: FastifyRequest, reply: FastifyReply): void => {
    const { status, body } = toErrorReply(error, logger);
    const retryAfter = retryAfterOf(error);
    if (retryAfter !== undefined) void reply.header("retry-after", String(retryAfter));
    void reply.status(status).send(body);
  };
}

/** Seconds a client should wait before retrying a refused request (`Retry-After`), if it should. */
export function retryAfterOf(error: unknown): number | undefined {
  if (!(error instanceof CoordinatorError)) return undefined;
  if (error.code === "OVERLOADED") return OVERLOADED_RETRY_AFTER_SECONDS;
  if (error.code === "STORE_UNAVAILABLE") return STORE_RETRY_AFTER_SECONDS;
  return undefined;
}

/** The answer to a request refused by authentication: 401 with a `WWW-Authenticate` challenge, or 403. */
export function authRefusal(code: AuthErrorCode, message: string): { status: number; headers: Record<string, string>; body: ErrorBody } {
  const headers: Record<string, string> = code === "UNAUTHENTICATED" ? { "www-authenticate": 'Bearer realm="dtx"' } : {};
  return { status: AUTH_ERROR_CODES[code].httpStatus, headers, body: { message, code } };
}
