/**
 * The SDK's error model (docs/architecture.md#errors): every error the SDK raises is a {@link DtxError} with a
 * stable {@link DtxErrorCode}. Branch on `code`, never on the message text or the class.
 *
 * Two codes are dtm's wire outcomes and have their own classes:
 * - `FAILURE` ({@link DtxFailure}): terminal. A participant or the coordinator said the work
 *   failed for good; a saga compensates, a TCC cancels, a msg is aborted. Never retry it.
 * - `ONGOING` ({@link DtxOngoing}): not finished yet; ask again later. From a `waitResult`
 *   submit or abort it means the transaction is still unfinished (a branch is being retried,
 *   a rollback is still running, a msg waits for its delay) and may yet succeed: it is not a
 *   failure, and must not be reported to a user as one. Query the transaction later.
 *
 * Everything else is retryable unless its code says otherwise (see {@link DtxError.retryable}).
 */

/**
 * Stable error codes.
 *
 * | code | meaning |
 * |---|---|
 * | `FAILURE` | dtm's FAILURE: HTTP 409 / gRPC ABORTED (or a body with the word FAILURE); terminal. From a `waitResult` submit: the transaction ended `failed` |
 * | `ONGOING` | dtm's ONGOING: HTTP 425 / gRPC FAILED_PRECONDITION; try again later. From a `waitResult` submit or abort: the transaction is still unfinished and may yet succeed |
 * | `DUPLICATED` | a msg barrier row already exists: the local transaction ran before, or was rolled back by the check-back; or an XA branch's barrier row exists: it ran before, or was rolled back |
 * | `INVALID_ARGUMENT` | the SDK was misused, or the coordinator refused the request as malformed (HTTP 400/413/415, gRPC INVALID_ARGUMENT / RESOURCE_EXHAUSTED) |
 * | `NOT_FOUND` | the coordinator has no such transaction (HTTP 404, gRPC NOT_FOUND), or no workflow of that name is registered |
 * | `TIMEOUT` | a request did not answer in time (gRPC DEADLINE_EXCEEDED) |
 * | `UNAVAILABLE` | the coordinator or participant could not be reached (connection refused, HTTP 503, gRPC UNAVAILABLE) |
 * | `HTTP_ERROR` | an HTTP answer with another unexpected status (e.g. 500) |
 * | `GRPC_ERROR` | a gRPC answer with another unexpected status (e.g. UNKNOWN, INTERNAL) |
 * | `PROTOCOL_ERROR` | an answer the SDK cannot decode |
 * | `UNSUPPORTED` | the operation is not available over the chosen transport (e.g. `query` over gRPC) |
 * | `UNAUTHENTICATED` | a branch request's signature is missing, malformed, made with an unknown key, wrong or stale (a participant's handler helpers answer it with HTTP 401 / gRPC UNAUTHENTICATED; the coordinator retries) |
 */
export type DtxErrorCode =
  | "FAILURE"
  | "ONGOING"
  | "DUPLICATED"
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "TIMEOUT"
  | "UNAVAILABLE"
  | "HTTP_ERROR"
  | "GRPC_ERROR"
  | "PROTOCOL_ERROR"
  | "UNSUPPORTED"
  | "UNAUTHENTICATED";

/** Every {@link DtxErrorCode}, for exhaustive checks and documentation. */
export const DTX_ERROR_CODES: readonly DtxErrorCode[] = [
  "FAILURE", "ONGOING", "DUPLICATED", "INVALID_ARGUMENT", "NOT_FOUND", "TIMEOUT", "UNAVAILABLE",
  "HTTP_ERROR", "GRPC_ERROR", "PROTOCOL_ERROR", "UNSUPPORTED", "UNAUTHENTICATED",
];

const NOT_RETRYABLE: ReadonlySet<DtxErrorCode> = new Set(["FAILURE", "DUPLICATED", "INVALID_ARGUMENT", "NOT_FOUND", "UNSUPPORTED"]);

/** Details attached to a {@link DtxError}. */
export interface DtxErrorDetails {
  /** The HTTP status of the answer that caused the error, when there was one. */
  readonly httpStatus?: number;
  /** The gRPC status code of the answer that caused the error, when there was one. */
  readonly grpcCode?: number;
  /**
   * The coordinator's own stable code (`INVALID_GID`, `TRANS_NOT_FOUND`, ...: the `code` field of
   * a dtx error body, or the `dtx-code` gRPC trailer), when it sent one. dtm sends none.
   */
  readonly serverCode?: string;
  /** The underlying error. */
  readonly cause?: unknown;
}

/** An error raised by the SDK. Branch on {@link DtxError.code}. */
export class DtxError extends Error {
  /** The stable code; see {@link DtxErrorCode}. */
  readonly code: DtxErrorCode;
  /** HTTP status of the answer behind this error, if any. */
  readonly httpStatus: number | undefined;
  /** gRPC status code of the answer behind this error, if any. */
  readonly grpcCode: number | undefined;
  /** The coordinator's own error code, if it sent one (see {@link DtxErrorDetails.serverCode}). */
  readonly serverCode: string | undefined;

  /**
   * @param code the stable code
   * @param message a human-readable description (not for branching)
   * @param details status codes and the cause
   */
  constructor(code: DtxErrorCode, message: string, details: DtxErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "DtxError";
    this.code = code;
    this.httpStatus = details.httpStatus;
    this.grpcCode = details.grpcCode;
    this.serverCode = details.serverCode;
  }

  /** Whether retrying the same call later may succeed: false for FAILURE, DUPLICATED, INVALID_ARGUMENT, NOT_FOUND, UNSUPPORTED. */
  get retryable(): boolean {
    return !NOT_RETRYABLE.has(this.code);
  }
}

/**
 * dtm's FAILURE: the work failed for good. Throw it from a participant handler to make the
 * coordinator roll back (a saga action, a TCC try, a workflow step); the SDK throws it when a
 * participant or the coordinator answered FAILURE. A `waitResult` submit throws it only once the
 * transaction has ended `failed` (dtx never answers FAILURE for a transaction that may still
 * commit; dtm does, see the coordinator's `docs/deviations.md`, D11).
 */
export class DtxFailure extends DtxError {
  declare readonly code: "FAILURE";

  /**
   * @param message why it failed; becomes the rollback reason where one is recorded
   * @param details status codes and the cause
   */
  constructor(message = "FAILURE", details: DtxErrorDetails = {}) {
    super("FAILURE", message, details);
    this.name = "DtxFailure";
  }
}

/**
 * dtm's ONGOING: not finished yet. Throw it from a participant handler to make the coordinator
 * call again later at the same interval (no backoff); the SDK throws it when a participant or the
 * coordinator answered ONGOING.
 *
 * From a `waitResult` submit or abort (HTTP 425, gRPC FAILED_PRECONDITION, `serverCode`
 * `ONGOING`) it means: the request was accepted and the transaction is still unfinished. The
 * coordinator keeps driving it, and it may still succeed (or roll back); it is neither a success
 * nor a failure yet. Do not resubmit: query the transaction until it is `succeed` or `failed`.
 */
export class DtxOngoing extends DtxError {
  declare readonly code: "ONGOING";

  /**
   * @param message what is still in progress
   * @param details status codes and the cause
   */
  constructor(message = "ONGOING", details: DtxErrorDetails = {}) {
    super("ONGOING", message, details);
    this.name = "DtxOngoing";
  }
}

function codeOf(err: unknown): unknown {
  if (typeof err !== "object" || err === null) return undefined;
  const e = err as { code?: unknown; dtmResult?: unknown };
  return e.dtmResult ?? e.code;
}

/**
 * True when `err` means dtm's FAILURE: a {@link DtxFailure}, or any error object whose `code` or
 * `dtmResult` is `"FAILURE"` (so the barrier's errors and other libraries' are recognised too).
 */
export function isFailure(err: unknown): boolean {
  return err instanceof DtxFailure || codeOf(err) === "FAILURE";
}

/** True when `err` means dtm's ONGOING: a {@link DtxOngoing}, or any error object whose `code` or `dtmResult` is `"ONGOING"`. */
export function isOngoing(err: unknown): boolean {
  return err instanceof DtxOngoing || codeOf(err) === "ONGOING";
}

/** The {@link DtxErrorCode} of `err` when it is a {@link DtxError}, else undefined. */
export function dtxErrorCode(err: unknown): DtxErrorCode | undefined {
  return err instanceof DtxError ? err.code : undefined;
}

/** The message of any thrown value. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return typeof err === "string" ? err : String(err);
}

/** Shorthand for an INVALID_ARGUMENT error. */
export function invalidArgument(message: string): DtxError {
  return new DtxError("INVALID_ARGUMENT", message);
}
