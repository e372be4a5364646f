import { DtxError } from "../../../sdk/src/index.ts";
import type { ClientOp } from "../contracts.ts";
import type { Completion } from "./journal.ts";

/** What the classifier needs to know about the request that failed. */
export interface FailedRequest {
  readonly op: ClientOp;
  /** 1 for the first send; more for a re-send after an unknown outcome. */
  readonly attempt: number;
}

/** `CODE httpStatus|grpc N serverCode: message`, short, for the history's `error`. */
export function describeError(err: unknown): string {
  if (!(err instanceof DtxError)) return `ERROR: ${err instanceof Error ? err.message : String(err)}`.slice(0, 300);
  const where = err.httpStatus !== undefined ? ` http ${err.httpStatus}` : err.grpcCode !== undefined ? ` grpc ${err.grpcCode}` : "";
  const server = err.serverCode !== undefined && err.serverCode !== err.code ? ` ${err.serverCode}` : "";
  return `${err.code}${where}${server}: ${err.message}`.slice(0, 300);
}

/**
 * How the history records a request that did not simply succeed (docs/chaos.md, load generator):
 *
 * - `ok`: an ONGOING answer (HTTP 425, gRPC FAILED_PRECONDITION) to a `wait_result` submit or
 *   abort: the coordinator stored the request and is still driving the transaction.
 * - `fail`: a definite answer that this request did not and will not make its transfer happen,
 *   given on the FIRST send: a 4xx refusal with a stable code (404 not found, 409
 *   FAILURE / BRANCH_CONFLICT / TRANS_NOT_PREPARED), which writes nothing, or a `wait_result`
 *   submit answered FAILURE because the transaction ended `failed`. For a deliberate duplicate
 *   or conflicting copy it only says that this copy was refused; the original may have committed.
 * - `info` (unknown): a timeout, a connection error, 503 (OVERLOADED, STORE_UNAVAILABLE), 5xx,
 *   429, an answer the SDK cannot decode, and also a 404 or 409 on a RE-SEND: the earlier send,
 *   whose outcome was unknown, may have been stored and even finished (a submit of a finished
 *   transaction is refused with 409), so the refusal of the re-send says nothing definite.
 *   A 400 (invalid request) is `fail` on any send: it is checked before anything is written and
 *   every send carries the same body.
 */
export function classifyError(err: unknown, req: FailedRequest): Completion {
  const error = describeError(err);
  if (!(err instanceof DtxError)) return { type: "info", error };
  switch (err.code) {
    case "ONGOING":
      if (req.op === "submit") return { type: "ok", status: "submitted" };
      if (req.op === "abort") return { type: "ok", status: "aborting" };
      return { type: "info", error };
    case "INVALID_ARGUMENT":
      // Checked before anything is written, and the re-send carries the same body.
      return { type: "fail", error };
    case "FAILURE":
    case "NOT_FOUND":
      return { type: req.attempt === 1 ? "fail" : "info", error };
    default:
      return { type: "info", error };
  }
}

/** Whether a request with this completion is sent again (the same request, by gid: the server is idempotent). */
export function isUnknown(completion: Completion): boolean {
  return completion.type === "info";
}
