/**
 * Glossary (the words dtm uses on the wire, kept as they are):
 * - global transaction ("trans"): one saga / msg / tcc / xa / workflow, identified by its `gid`.
 * - branch: one call the coordinator makes to a participant (resource manager, "RM"),
 *   identified inside its trans by `(branch_id, op)`; a saga step is two branches
 *   (`action`, `compensate`), a TCC branch two (`confirm`, `cancel`), an XA branch two.
 * - pass: one run of a trans's processor over its stored state (dtm's `ProcessOnce`).
 * - cron: the loop that claims due, unfinished transactions and runs a pass on each.
 *
 * All instants and durations inside dtx are milliseconds; the wire speaks seconds.
 */

export const GLOBAL_STATUSES = ["prepared", "submitted", "aborting", "succeed", "failed"] as const;
export type GlobalStatus = (typeof GLOBAL_STATUSES)[number];

export const BRANCH_STATUSES = ["prepared", "succeed", "failed"] as const;
export type BranchStatus = (typeof BRANCH_STATUSES)[number];

export const TRANS_TYPES = ["saga", "msg", "tcc", "xa", "workflow"] as const;
export type TransType = (typeof TRANS_TYPES)[number];

export const PROTOCOLS = ["http", "grpc", "json-rpc"] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** Branch ops stored by the coordinator. `try` is only ever sent by the application, never stored. */
export type BranchOp = string;

export const FINAL_STATUSES: ReadonlySet<GlobalStatus> = new Set(["succeed", "failed"]);

export function isFinal(status: GlobalStatus): boolean {
  return FINAL_STATUSES.has(status);
}

/** Per-transaction options (dtm's TransOptions), durations in milliseconds; 0 = not set. */
export interface TransOptions {
  waitResult: boolean;
  timeoutToFail: number;
  requestTimeout: number;
  retryInterval: number;
  branchHeaders: Record<string, string>;
  concurrent: boolean;
  retryLimit: number;
  retryCount: number;
}

export interface TransGlobal {
  /** Store-assigned sequence number; orders `/all` paging. */
  id: number;
  gid: string;
  transType: TransType;
  status: GlobalStatus;
  protocol: Protocol;
  /** msg: check-back URL; workflow: resume callback URL. */
  queryPrepared: string;
  /** Type-specific JSON text (saga orders, msg delay, workflow name/data). */
  customData: string;
  options: TransOptions;
  extData: string;
  createTime: number;
  updateTime: number;
  finishTime: number | null;
  rollbackTime: number | null;
  rollbackReason: string;
  result: string;
  /** Current retry interval (ms); doubles on errors up to the configured cap. */
  nextCronInterval: number;
  /** When the cron may next claim this trans (ms since epoch). */
  nextCronTime: number;
  owner: string;
}

export interface Branch {
  id: number;
  gid: string;
  branchId: string;
  op: BranchOp;
  url: string;
  binData: Uint8Array;
  status: BranchStatus;
  createTime: number;
  updateTime: number;
  finishTime: number | null;
}

/** What a participant answered, after classification (docs/protocol.md#http-branch-calls, docs/deviations.md D9). */
export type Outcome =
  | { kind: "success" }
  | { kind: "failure"; message: string }
  | { kind: "ongoing" }
  /**
   * `unauthenticated`: the participant refused the call's credentials (HTTP 401, gRPC
   * UNAUTHENTICATED), e.g. a branch signature made with a key it does not hold; retried like any error.
   */
  | { kind: "error"; message: string; unauthenticated?: true };

/** A transaction that backs off again after errors: what the alert webhook is told. */
export interface BackoffEvent {
  gid: string;
  status: string;
  /** floor(log2(interval / base)): how many times the interval has doubled (dtm's retry_count). */
  retryCount: number;
  branchUrl: string;
  error: string;
}
