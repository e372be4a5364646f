import type { Branch, BranchStatus, GlobalStatus, TransGlobal, TransType } from "../core/types.ts";

/**
 * The store contract (PROTOCOL §10.1). Every implementation (SQLite, Postgres, MySQL, Redis)
 * passes the same conformance suite. Expected conditions come back as values; only faults
 * (the database is down, the disk is full) throw.
 *
 * Every status change is a compare-and-set on the stored status: a write that lost the race
 * returns `false` and changes nothing.
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
   * The one write the engine uses while processing: CAS the trans from `expectedStatus`, patch
   * its fields, and set branch statuses, all atomically. Returns false (writing nothing) when
   * the stored status is no longer `expectedStatus`.
   */
  updateTrans(gid: string, expectedStatus: GlobalStatus, patch: TransPatch, branches: readonly BranchUpdate[]): Promise<boolean>;

  /**
   * Claims up to `limit` unfinished transactions whose next_cron_time <= now, pushing their
   * next_cron_time to `leaseUntil` (the lease) and setting `owner`. A row claimed by another
   * coordinator in the meantime is skipped.
   */
  claimDue(now: number, leaseUntil: number, limit: number, owner: string): Promise<TransGlobal[]>;

  /** resetCronTime: pulls forward unfinished transactions scheduled after `after`. */
  resetCronTime(after: number, now: number, limit: number): Promise<{ count: number; hasRemaining: boolean }>;
  /** resetNextCronTime: makes one trans due now. False if the gid is unknown. */
  resetNextCronTime(gid: string, now: number): Promise<boolean>;

  /** KV (topics, PROTOCOL §2.3): versioned values; every update is a CAS on `version`. */
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
