import type { Branch, BranchStatus, GlobalStatus, TransGlobal, TransType } from "../core/types.ts";

/** A trans as claimDue returns it: claimed, with the owner it had before the claim. */
export interface ClaimedTrans extends TransGlobal {
  /** The token the claim replaced: "" if the last pass gave the trans up, else a pass that died or stalled. */
  readonly previousOwner: string;
}

/**
 * The store contract (docs/protocol.md#storage). Every implementation (SQLite, Postgres, MySQL, Redis)
 * passes the same conformance suite. Expected conditions come back as values; only faults
 * (the database is down, the disk is full) throw.
 *
 * Every status change is a compare-and-set on the stored status: a write that lost the race
 * returns `false` and changes nothing.
 *
 * Fencing (docs/fencing.md): `owner` holds the fencing token of the claim that drives the trans.
 * Every claim writes a fresh token (claimDue, a created trans whose pass runs at once, the
 * status CAS of resubmit/abort/forceStop through `TransPatch.owner`); every write of a pass is a
 * CAS on the status AND that token ({@link Fence}), and `next_cron_time` is the claim's lease,
 * extended with {@link Store.renewLease}. A pass whose write or renewal is refused has lost its
 * claim and stops.
 */
export interface Store {
  /** Creates or upgrades the schema. Safe to call from many coordinators at once. */
  migrate(): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;

  findTrans(gid: string): Promise<TransGlobal | null>;
  /** Branches in insertion order. */
  findBranches(gid: string): Promise<Branch[]>;
  scanTrans(query: ScanQuery): Promise<ScanPage>;

  /** Inserts the trans and its branches atomically, unless the gid exists. */
  saveNewTrans(trans: NewTrans, branches: readonly NewBranch[]): Promise<"created" | "exists">;

  /**
   * Appends branches if the trans has `expectedStatus`. `conflict` = a (branch_id, op) exists with
   * a different url, payload or status; an identical existing row is left alone and counts as saved.
   */
  appendBranches(gid: string, expectedStatus: GlobalStatus, branches: readonly NewBranch[], now: number): Promise<AppendResult>;

  /**
   * The one write the engine uses while processing: CAS the trans on `expected` (its status, and
   * for a {@link Fence} also its `owner`), patch its fields, and set branch statuses, all
   * atomically. Returns false (writing nothing) when the stored row no longer matches.
   */
  updateTrans(gid: string, expected: TransGuard, patch: TransPatch, branches: readonly BranchUpdate[]): Promise<boolean>;

  /**
   * Claims up to `limit` unfinished transactions whose next_cron_time <= now, pushing their
   * next_cron_time to `leaseUntil` (the lease) and setting `owner` to `token`. A row claimed by
   * another coordinator in the meantime is skipped. Callers pass a fresh token per call (every
   * claim of a gid gets a token no earlier claim of it had). Each row comes with the owner it had
   * before (`previousOwner`, "" when no pass held it).
   */
  claimDue(now: number, leaseUntil: number, limit: number, token: string): Promise<ClaimedTrans[]>;

  /**
   * Extends a held claim: sets next_cron_time to `leaseUntil` if `owner` still holds the token
   * `token` and the status is unfinished. False (writing nothing) once another claim took the
   * trans or it finished: the caller has lost it.
   */
  renewLease(gid: string, token: string, leaseUntil: number): Promise<boolean>;

  /** resetCronTime: pulls forward unfinished transactions scheduled after `after`. */
  resetCronTime(after: number, now: number, limit: number): Promise<{ count: number; hasRemaining: boolean }>;
  /** resetNextCronTime: makes one trans due now. False if the gid is unknown. */
  resetNextCronTime(gid: string, now: number): Promise<boolean>;

  /** KV (topics, docs/protocol.md#topics): versioned values; every update is a CAS on `version`. */
  findKV(cat: string, key: string): Promise<KvEntry | null>;
  /** Newest first; `position` is an exclusive upper bound on `id` ("" = from the newest). */
  scanKV(cat: string, position: string, limit: number): Promise<{ kv: KvEntry[]; nextPosition: string }>;
  createKV(cat: string, key: string, value: string, now: number): Promise<"created" | "exists">;
  /** Writes `value` and bumps the version if the stored version is `expectedVersion`. */
  updateKV(cat: string, key: string, value: string, expectedVersion: number, now: number): Promise<boolean>;
  deleteKV(cat: string, key: string): Promise<boolean>;

  /**
   * Retention (docs/retention.md): deletes up to `limit` finished transactions (status succeed or
   * failed, never an unfinished one) whose update_time is before `before`, with their branches, as
   * one short statement or transaction. Several coordinators may call it at once. Redis also
   * forgets, in the same bounded walk, index entries whose transaction has expired.
   */
  deleteFinished(before: number, limit: number): Promise<RetentionBatch>;
}

/** What one {@link Store.deleteFinished} call removed. */
export interface RetentionBatch {
  /** Finished transactions deleted (each with all its branches). */
  deleted: number;
  /** Redis only: entries of the id index whose transaction had already expired (TTL). */
  pruned: number;
  /** True when another call may find more to remove now; false when this round is done. */
  more: boolean;
}

export interface KvEntry {
  id: number;
  cat: string;
  k: string;
  v: string;
  version: number;
  createTime: number;
  updateTime: number;
}

export type NewTrans = Omit<TransGlobal, "id">;
export type NewBranch = Omit<Branch, "id">;

/**
 * What updateTrans expects to find. A bare status is for writes made outside a pass (a workflow's
 * final submit); a {@link Fence} for every write of a pass and for claims by status CAS.
 */
export type TransGuard = GlobalStatus | Fence;

/** The status and the fencing token in `owner` a write expects (docs/fencing.md). */
export interface Fence {
  status: GlobalStatus;
  owner: string;
}

/** A guard's expected status, and its expected owner (undefined: not checked). */
export function guardParts(guard: TransGuard): { status: GlobalStatus; owner: string | undefined } {
  return typeof guard === "string" ? { status: guard, owner: undefined } : guard;
}

export type AppendResult = "saved" | "status_mismatch" | "not_found" | "conflict";

export interface TransPatch {
  status?: GlobalStatus;
  updateTime: number;
  finishTime?: number;
  rollbackTime?: number;
  rollbackReason?: string;
  result?: string;
  nextCronTime?: number;
  nextCronInterval?: number;
  /** A new fencing token (a claim by status CAS) or "" (the pass is over and releases its claim). */
  owner?: string;
}

export interface BranchUpdate {
  branchId: string;
  op: string;
  status: BranchStatus;
  finishTime: number;
}

export interface ScanQuery {
  /** Exclusive upper bound on `id` ("" = from the newest). */
  position: string;
  limit: number;
  status?: GlobalStatus;
  transType?: TransType;
  createTimeStart?: number;
  createTimeEnd?: number;
}

export interface ScanPage {
  transactions: TransGlobal[];
  nextPosition: string;
}
