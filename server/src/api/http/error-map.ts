import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import type { ErrorCode } from "../../core/errors.ts";
import { clip } from "../../core/echo.ts";
import { CoordinatorError, ERROR_CATALOGUE, WireResult } from "../../core/errors.ts";
import type { Logger } from "../../logger.ts";
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

/** The body dtm's clients expect for an error, plus our stable code. */
export interface ErrorBody {
  message: string;
  code: string;
  dtm_result?: "FAILURE" | "ONGOING";
}

export function toErrorReply(error: unknown, logger: Logger): { status: number; body: ErrorBody } {
  if (error instanceof WireResult) {
    return { status: error.result === "FAILURE" ? 409 : 425, body: { dtm_result: error.result, message: error.message, code: error.result } };
  }
  if (error instanceof CoordinatorError) {
    if (error.httpStatus >= 500) logger.error({ err: error }, "request failed");
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
    void reply.status(status).send(body);
  };
}

/** The answer to a request refused by authentication: 401 with a `WWW-Authenticate` challenge, or 403. */
export function authRefusal(code: AuthErrorCode, message: string): { status: number; headers: Record<string, string>; body: ErrorBody } {
  const headers: Record<string, string> = code === "UNAUTHENTICATED" ? { "www-authenticate": 'Bearer realm="dtx"' } : {};
  return { status: AUTH_ERROR_CODES[code].httpStatus, headers, body: { message, code } };
}
