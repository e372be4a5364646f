import type { RetryKind } from "./retry.ts";
import type { BranchStatus, GlobalStatus, Outcome, TransGlobal } from "./types.ts";

/**
 * The state a processor decides on during one pass: the stored trans and branches as they were
 * read, plus what happened in this pass so far. Processors never do I/O; the executor
 * (service/executor.ts) carries out their decisions and folds the results back in with
 * {@link recordOutcome}.
 */
export interface Pass {
  readonly trans: PassTrans;
  readonly branches: PassBranch[];
  /** Branch indexes invoked at least once in this pass (saga compensates these; docs/protocol.md#saga). */
  readonly started: Set<number>;
  /** Branch indexes whose call has not answered yet. */
  readonly inFlight: Set<number>;
  /** Branch indexes that answered ONGOING or an error in this pass and are not to be re-invoked in it. */
  readonly parked: Set<number>;
  /** In-pass retry counter for `retry_limit` (not persisted, as in dtm). */
  retryCount: number;
  /** The worst non-terminal outcome seen in this pass; decides how the retry is scheduled. */
  worst: "none" | "ongoing" | "error";
  /** The answer of this pass's check-back / workflow-resume call, once it came. */
  checkBack: Outcome | undefined;
  /** Why the pass decided to roll back (the first terminal failure's message). */
  failureReason: string | undefined;
  /** Branch status changes not yet written to the store. */
  readonly dirty: Map<number, BranchStatus>;
  /**
   * True when an earlier pass may have called branches whose results it never wrote: it deferred
   * them (`deferBranchResults`, docs/deviations.md D14) and then died or lost its claim. The
   * stored branch statuses then understate what has run, and a saga that rolls back counts every
   * prepared action as possibly started.
   */
  readonly resultsMayBeMissing: boolean;
}

export type PassTrans = Pick<
  TransGlobal,
  "gid" | "transType" | "status" | "rollbackReason" | "createTime" | "options" | "customData" | "queryPrepared" | "protocol"
>;

export interface PassBranch {
  readonly branchId: string;
  readonly op: string;
  readonly url: string;
  status: BranchStatus;
}

/** What the executor should do next. */
export type Decision =
  /** Call these branches now (concurrently). */
  | { kind: "invoke"; indexes: number[]; retry?: boolean }
  /** CAS the global status; the executor writes dirty branches in the same atomic write. */
  | { kind: "transition"; to: GlobalStatus; reason?: string }
  /** Wait for one in-flight call to answer. */
  | { kind: "await" }
  /**
   * Call the trans's `query_prepared` URL (msg check-back, workflow resume) with branch_id "00",
   * this op and body; the answer lands in `pass.checkBack`.
   */
  | { kind: "checkBack"; op: string; body: Uint8Array }
  /** End the pass unfinished; schedule the next cron attempt (at `at` when given). */
  | { kind: "stop"; retry: RetryKind; at?: number }
  /** The trans is final (or needs nothing now); end the pass. */
  | { kind: "done" };

export interface Processor {
  decide(pass: Pass, now: number): Decision;
  /** Whether a FAILURE from this branch means "roll back" (saga action, ...) rather than "retry". */
  failureIsTerminal(branch: PassBranch): boolean;
}

export function newPass(trans: PassTrans, branches: readonly PassBranch[], resultsMayBeMissing = false): Pass {
  return {
    trans: { ...trans },
    branches: branches.map((b) => ({ branchId: b.branchId, op: b.op, url: b.url, status: b.status })),
    started: new Set(),
    inFlight: new Set(),
    parked: new Set(),
    retryCount: trans.options.retryCount,
    worst: "none",
    checkBack: undefined,
    failureReason: undefined,
    dirty: new Map(),
    resultsMayBeMissing,
  };
}

export function markInvoked(pass: Pass, index: number, isRetry = false): void {
  if (isRetry) pass.retryCount += 1;
  pass.started.add(index);
  pass.inFlight.add(index);
  pass.parked.delete(index);
}

/**
 * Folds a branch's answer into the pass. `failureIsTerminal` is true only for ops whose FAILURE
 * means "roll back" (saga actions); for every other op a FAILURE is retried like an error
 * (docs/protocol.md#result-mapping).
 */
export function recordOutcome(pass: Pass, index: number, outcome: Outcome, failureIsTerminal: boolean): void {
  pass.inFlight.delete(index);
  const branch = pass.branches[index];
  if (!branch) return;
  if (outcome.kind === "success") {
    setBranchStatus(pass, index, "succeed");
  } else if (outcome.kind === "failure" && failureIsTerminal) {
    setBranchStatus(pass, index, "failed");
    pass.failureReason ??= outcome.message;
  } else {
    pass.parked.add(index);
    pass.worst = outcome.kind === "ongoing" && pass.worst !== "error" ? "ongoing" : "error";
  }
}

export function setBranchStatus(pass: Pass, index: number, status: BranchStatus): void {
  const branch = pass.branches[index];
  if (!branch || branch.status === status) return;
  branch.status = status;
  pass.dirty.set(index, status);
}

/** The retry schedule that follows from the worst outcome of a pass (docs/protocol.md#result-mapping). */
export function retryKindOf(pass: Pass): RetryKind {
  if (pass.worst === "error") return "backoff";
  if (pass.worst === "ongoing") return "keep";
  return "reset";
}
