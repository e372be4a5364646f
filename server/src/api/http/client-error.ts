import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import type { ErrorCode } from "../../core/errors.ts";
import { ERROR_CATALOGUE } from "../../core/errors.ts";
import type { Logger } from "../../logger.ts";

/** Node's parser errors that have their own status; every other parser error is a 400. */
const CODE_BY_NODE_ERROR: Record<string, ErrorCode> = {
  HPE_HEADER_OVERFLOW: "HEADERS_TOO_LARGE",
  ERR_HTTP_REQUEST_TIMEOUT: "REQUEST_TIMEOUT",
};

const MESSAGES: Partial<Record<ErrorCode, string>> = {
  HEADERS_TOO_LARGE: "the request headers are larger than the server accepts",
  REQUEST_TIMEOUT: "the request was not received in time",
  BAD_HTTP_REQUEST: "the HTTP request is malformed",
};

/** The raw HTTP/1.1 answer to a request Node's parser refused: `{message, code}` like every other error. */
export function clientErrorResponse(nodeCode: string | undefined): string {
  const code: ErrorCode = (nodeCode !== undefined ? CODE_BY_NODE_ERROR[nodeCode] : undefined) ?? "BAD_HTTP_REQUEST";
  const status = ERROR_CATALOGUE[code].httpStatus;
  const body = JSON.stringify({ message: MESSAGES[code] ?? code, code });
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${body}`;
}

/**
 * fastify's `clientErrorHandler`: Node's HTTP parser refused the request before fastify saw it
 * (oversized headers, a malformed request line, bad chunked framing, a client too slow). Fastify's
 * default answers its own body shape; this answers ours (docs/errors.md) and closes the socket,
 * which is all Node allows after a parse error. The error's text is not echoed (it may quote raw
 * bytes of the request).
 */
export function clientErrorHandler(logger: Logger) {
  return (error: Error & { code?: string }, socket: Socket): void => {
    // A reset connection has nobody left to answer.
    if (error.code === "ECONNRESET" || socket.destroyed) return;
    logger.debug({ err: error }, "HTTP parser refused a request");
    if (socket.writable) socket.write(clientErrorResponse(error.code));
    socket.destroy(error);
  };
}
