/**
 * Errors raised by the branch barrier. Every one has a stable `code`; branch on it, never on the
 * message text. `httpStatus` and `grpcCode` are what an RM handler should answer with, so that the
 * coordinator reads the outcome the way dtm does (docs/protocol.md#http-branch-calls, docs/protocol.md#grpc-branch-calls and docs/protocol.md#what-clients-send).
 */

export type BarrierErrorCode =
  /** A required branch parameter (trans_type, gid, branch_id, op) is missing or empty. */
  | "BARRIER_MISSING_PARAM"
  /** A branch parameter is present but unusable (repeated, not a string, too long). */
  | "BARRIER_INVALID_PARAM"
  /** The barrier table name is not `name` or `schema.name` made of [A-Za-z0-9_$]. */
  | "BARRIER_INVALID_TABLE_NAME"
  /** The object given as a transaction or database is not one the barrier knows how to drive. */
  | "BARRIER_UNSUPPORTED_DB"
  /** `call()` was given a pool or a Kysely instance instead of a connection inside a transaction. */
  | "BARRIER_NOT_IN_TRANSACTION"
  /** The Redis amount must be a safe integer. */
  | "BARRIER_INVALID_AMOUNT"
  /** dtm's FAILURE: a definite business failure (HTTP 409, gRPC ABORTED). Never retried. */
  | "FAILURE"
  /** dtm's DUPLICATED: the msg barrier row already exists (DoAndSubmit ran before, or the check-back rolled it back). */
  | "DUPLICATED";

const STATUS: Record<BarrierErrorCode, { httpStatus: number; grpcCode: number }> = {
  BARRIER_MISSING_PARAM: { httpStatus: 400, grpcCode: 3 },
  BARRIER_INVALID_PARAM: { httpStatus: 400, grpcCode: 3 },
  BARRIER_INVALID_TABLE_NAME: { httpStatus: 500, grpcCode: 13 },
  BARRIER_UNSUPPORTED_DB: { httpStatus: 500, grpcCode: 13 },
  BARRIER_NOT_IN_TRANSACTION: { httpStatus: 500, grpcCode: 13 },
  BARRIER_INVALID_AMOUNT: { httpStatus: 500, grpcCode: 13 },
  // 409 and the word FAILURE in the message: dtm (and dtx) classify the branch result as FAILURE.
  FAILURE: { httpStatus: 409, grpcCode: 10 },
  // Not a business failure: a handler that lets it escape answers 500 / ALREADY_EXISTS, which
  // the coordinator retries.
  DUPLICATED: { httpStatus: 500, grpcCode: 6 },
};

/** An error from the barrier, with a stable {@link BarrierErrorCode}. */
export class BarrierError extends Error {
  readonly code: BarrierErrorCode;
  /** What an HTTP RM handler should answer with. */
  readonly httpStatus: number;
  /** What a gRPC RM handler should answer with (10 ABORTED for FAILURE). */
  readonly grpcCode: number;
  /** dtm's result word, for `{"dtm_result": ...}` bodies: set for FAILURE only. */
  readonly dtmResult: "FAILURE" | undefined;

  constructor(code: BarrierErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "BarrierError";
    this.code = code;
    this.httpStatus = STATUS[code].httpStatus;
    this.grpcCode = STATUS[code].grpcCode;
    this.dtmResult = code === "FAILURE" ? "FAILURE" : undefined;
  }
}

/** A FAILURE error; its message ends in "FAILURE" because dtm's SDKs look for that word. */
export function barrierFailure(message = "FAILURE"): BarrierError {
  return new BarrierError("FAILURE", message.endsWith("FAILURE") ? message : `${message} FAILURE`);
}

export function barrierDuplicated(message = "DUPLICATED"): BarrierError {
  return new BarrierError("DUPLICATED", message);
}

/**
 * True for any error that means dtm's FAILURE: a {@link BarrierError} with code FAILURE, or any
 * other error object whose `code` or `dtmResult` is `"FAILURE"` (so a FAILURE thrown by the
 * builders or by the application is recognised without importing this class).
 */
export function isBarrierFailure(err: unknown): boolean {
  if (typeof err !== "object" || err === null) return false;
  const e = err as { code?: unknown; dtmResult?: unknown; result?: unknown };
  return e.code === "FAILURE" || e.dtmResult === "FAILURE" || e.result === "FAILURE";
}

/** True for the DUPLICATED error of a msg barrier. */
export function isBarrierDuplicated(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === "DUPLICATED";
}
