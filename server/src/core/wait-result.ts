import type { GlobalStatus, TransType } from "./types.ts";

/** What a `wait_result` request reports: 200 SUCCESS, 409 FAILURE or 425 ONGOING. */
export type WaitVerdict = "SUCCESS" | "FAILURE" | "ONGOING";

/** The request that waited: a submit wants the trans to commit, an abort wants it rolled back. */
export type WaitRequest = "submit" | "abort";

/**
 * The truthful answer to a `wait_result` submit or abort, from the status the trans has once
 * the request's pass ended (docs/deviations.md, D11). Only a final status is ever reported as
 * an outcome: a trans that is still unfinished (`prepared`, `submitted`, `aborting`) may yet go
 * either way, so it is ONGOING, whatever its type and whatever a branch answered in this pass.
 *
 * - submit: `succeed` is SUCCESS, `failed` is FAILURE (it rolled back, or was stopped).
 * - abort: `failed` is SUCCESS (the rollback the caller asked for is done, as dtm answers);
 *   `succeed` is FAILURE (the trans committed instead; not reachable through abort today, but
 *   the answer must not claim a rollback that did not happen).
 *
 * The type does not change the rule (a property test checks that); it is a parameter so the
 * call site states what it knows and a future type-specific rule has one place to go.
 */
export function waitVerdict(_transType: TransType, request: WaitRequest, status: GlobalStatus): WaitVerdict {
  const wanted: GlobalStatus = request === "submit" ? "succeed" : "failed";
  const opposite: GlobalStatus = request === "submit" ? "failed" : "succeed";
  if (status === wanted) return "SUCCESS";
  if (status === opposite) return "FAILURE";
  return "ONGOING";
}
