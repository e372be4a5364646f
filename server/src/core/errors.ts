/**
 * The catalogue of coordinator errors. Every error a client can see has a stable `code`;
 * callers branch on the code, never on the message text. `docs/errors.md` lists the same codes
 * (a unit test keeps the two in sync).
 */

import { clip, MAX_MESSAGE_CHARS } from "./echo.ts";

export interface ErrorSpec {
  readonly httpStatus: number;
  /** gRPC status code number (3 INVALID_ARGUMENT, 5 NOT_FOUND, 8 RESOURCE_EXHAUSTED, 10 ABORTED, 9 FAILED_PRECONDITION, 14 UNAVAILABLE); 10 exactly for the 409s, 9 exactly for the 425s. */
  readonly grpcCode: number;
  readonly description: string;
}

export const ERROR_CATALOGUE = {
  INVALID_JSON: { httpStatus: 400, grpcCode: 3, description: "The request body is not valid JSON." },
  INVALID_REQUEST: { httpStatus: 400, grpcCode: 3, description: "A field is missing, has the wrong type, or is out of range." },
  INVALID_GID: { httpStatus: 400, grpcCode: 3, description: "The gid is missing, longer than 128 characters, or has characters outside [A-Za-z0-9_.:-]." },
  INVALID_TRANS_TYPE: { httpStatus: 400, grpcCode: 3, description: "trans_type is missing or not one of saga, msg, tcc, xa, workflow." },
  UNSUPPORTED_TRANS_TYPE: { httpStatus: 400, grpcCode: 3, description: "This route does not accept that trans_type." },
  INVALID_URL: { httpStatus: 400, grpcCode: 3, description: "A branch URL is malformed, too long, or uses a scheme other than http(s) or a gRPC target." },
  URL_NOT_ALLOWED: { httpStatus: 400, grpcCode: 3, description: "A branch URL is outside the operator's branch URL policy (branchUrls.allow / branchUrls.denyPrivate)." },
  INVALID_PAYLOADS: { httpStatus: 400, grpcCode: 3, description: "payloads does not match steps, or a payload is not a string." },
  INVALID_ORDERS: { httpStatus: 400, grpcCode: 3, description: "custom_data.orders names an unknown step or forms a cycle." },
  INVALID_OPTIONS: { httpStatus: 400, grpcCode: 3, description: "A transaction option (timeouts, retry settings, branch_headers, a msg's delay) is invalid or out of range." },
  TOO_MANY_BRANCHES: { httpStatus: 400, grpcCode: 8, description: "The transaction has more branches than the configured limit." },
  PAYLOAD_TOO_LARGE: { httpStatus: 413, grpcCode: 8, description: "The request body or one branch payload is larger than the configured limit." },
  BAD_HTTP_REQUEST: { httpStatus: 400, grpcCode: 3, description: "Node's HTTP parser refused the request itself (request line, header syntax, framing)." },
  HEADERS_TOO_LARGE: { httpStatus: 431, grpcCode: 8, description: "The request's headers are larger than the HTTP server accepts." },
  URI_TOO_LONG: { httpStatus: 414, grpcCode: 3, description: "A path segment (a topic name in the URL) is longer than the router accepts." },
  REQUEST_TIMEOUT: { httpStatus: 408, grpcCode: 4, description: "The client did not send a whole request in time." },
  UNSUPPORTED_MEDIA_TYPE: { httpStatus: 415, grpcCode: 3, description: "The request's Content-Type is not application/json." },
  INVALID_BRANCH: { httpStatus: 400, grpcCode: 3, description: "A registerBranch field (branch_id, op, status, URLs) is missing or malformed." },
  BRANCH_CONFLICT: { httpStatus: 409, grpcCode: 10, description: "That (branch_id, op) is already registered with a different URL or payload (D4)." },
  TRANS_NOT_PREPARED: { httpStatus: 409, grpcCode: 10, description: "registerBranch names a gid with no prepared transaction: unknown, finished, or already submitted or aborting." },
  TOPIC_HAS_NO_SUBSCRIBERS: { httpStatus: 400, grpcCode: 3, description: "A msg step names a topic that has no subscriber." },
  TOPIC_NOT_FOUND: { httpStatus: 404, grpcCode: 5, description: "No topic has that name." },
  TOPIC_SUBSCRIBER_EXISTS: { httpStatus: 409, grpcCode: 10, description: "That URL already subscribes to the topic." },
  TOPIC_SUBSCRIBER_NOT_FOUND: { httpStatus: 404, grpcCode: 5, description: "That URL does not subscribe to the topic." },
  TRANS_NOT_FOUND: { httpStatus: 404, grpcCode: 5, description: "No transaction has that gid." },
  ROUTE_NOT_FOUND: { httpStatus: 404, grpcCode: 12, description: "No such route." },
  TEST_CONTROL_DISABLED: { httpStatus: 404, grpcCode: 12, description: "The test-control API is off (set DTX_TEST_CONTROL=1 outside production)." },
  STORE_UNAVAILABLE: { httpStatus: 503, grpcCode: 14, description: "The store cannot be reached; the request wrote nothing and may be retried." },
  OVERLOADED: { httpStatus: 503, grpcCode: 14, description: "The coordinator's pass cap and backlog are full; the request wrote nothing. Retry after the Retry-After seconds." },
  INTERNAL: { httpStatus: 500, grpcCode: 13, description: "An unexpected server fault. It is logged; please report it." },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/**
 * dtm's clients read an answer by its status alone: HTTP 409 / gRPC ABORTED is FAILURE, HTTP 425 /
 * gRPC FAILED_PRECONDITION is ONGOING. So every code answered 409 also carries
 * `"dtm_result":"FAILURE"` and is ABORTED on gRPC, every 425 carries `"dtm_result":"ONGOING"`,
 * and no other code uses those statuses (a unit test walks the catalogue). This is the one place
 * that says which `dtm_result` an HTTP status stands for.
 */
export function dtmResultForStatus(httpStatus: number): "FAILURE" | "ONGOING" | undefined {
  if (httpStatus === 409) return "FAILURE";
  if (httpStatus === 425) return "ONGOING";
  return undefined;
}

/** An error with a stable code, an HTTP status and a gRPC status. */
export class CoordinatorError extends Error {
  readonly code: ErrorCode;
  readonly httpStatus: number;
  readonly grpcCode: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    // Messages quote client input clipped at the source (core/echo.ts); this is the backstop.
    super(clip(message, MAX_MESSAGE_CHARS), options);
    this.name = "CoordinatorError";
    this.code = code;
    this.httpStatus = ERROR_CATALOGUE[code].httpStatus;
    this.grpcCode = ERROR_CATALOGUE[code].grpcCode;
  }
}

/**
 * dtm's wire outcomes for a request the coordinator answers: FAILURE is HTTP 409 / gRPC ABORTED,
 * ONGOING is HTTP 425 / gRPC FAILED_PRECONDITION. Messages of FAILURE results end in " FAILURE"
 * because dtm's Go SDK looks for that word.
 */
export class WireResult extends Error {
  readonly result: "FAILURE" | "ONGOING";
  constructor(result: "FAILURE" | "ONGOING", message: string) {
    super(message);
    this.name = "WireResult";
    this.result = result;
  }
}

/** Room for a rollback reason (up to 1,024 characters) and the text around it. */
const MAX_WIRE_MESSAGE_CHARS = 1200;

export function failure(text: string): WireResult {
  const message = clip(text, MAX_WIRE_MESSAGE_CHARS);
  return new WireResult("FAILURE", message.endsWith("FAILURE") ? message : `${message} FAILURE`);
}

export function ongoing(message: string): WireResult {
  return new WireResult("ONGOING", clip(message, MAX_WIRE_MESSAGE_CHARS));
}

/**
 * The `code` a client sees for dtm's two wire outcomes (a {@link WireResult}, not a
 * CoordinatorError). They are not errors of the request itself, so they stay out of
 * ERROR_CATALOGUE, but `docs/errors.md` documents them with the catalogue.
 */
export const WIRE_RESULT_CODES = {
  FAILURE: { httpStatus: 409, grpcCode: 10, description: "dtm's FAILURE: the trans cannot do what was asked in its current status, or (wait_result) it ended the other way." },
  ONGOING: { httpStatus: 425, grpcCode: 9, description: "dtm's ONGOING: (wait_result) the trans has not finished yet and may still go either way; ask again later (D11)." },
} as const satisfies Record<WireResult["result"], ErrorSpec>;
