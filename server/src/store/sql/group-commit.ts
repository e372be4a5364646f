/**
 * What the two SQL stores' group commit shares: the queued operations, the limits, a base class
 * that queues saveNewTrans and updateTrans in batchers (./batcher.ts) and runs them with the
 * store's own SQL, and the mask that says which fields an updateTrans patch sets. Only the SQL
 * differs between the stores (Postgres in ./postgres-store.ts, MySQL/MariaDB in
 * ./mysql-batch.ts), so it stays with each store.
 */
import type { Kysely } from "kysely";
import type { GlobalStatus } from "../../core/types.ts";
import type { BranchUpdate, NewBranch, NewTrans, TransGuard, TransPatch } from "../store.ts";
import { guardParts } from "../store.ts";
import { patchSet } from "./convert.ts";
import { Batcher } from "./batcher.ts";
import type { BatcherStats } from "./batcher.ts";
import { SqlStore } from "./sql-store.ts";
import type { StoreDatabase } from "./tables.ts";

/** One queued saveNewTrans. */
export interface SaveOp {
  trans: NewTrans;
  branches: readonly NewBranch[];
}

/** One queued updateTrans. */
export interface UpdateOp {
  gid: string;
  expectedStatus: GlobalStatus;
  /** The fencing token `owner` must hold; undefined: not checked (see TransGuard). */
  expectedOwner: string | undefined;
  patch: TransPatch;
  branches: readonly BranchUpdate[];
}

/** Batch queries of one kind at once, at most (a second one only for a full batch or a call that waited START_ANOTHER_AFTER_MS); the rest of the pool is left for reads and other writes. */
export const MAX_BATCHES_IN_FLIGHT = 4;
/** Operations per batch query, at most. */
export const MAX_BATCH = 64;
/**
 * A call queued this long (ms) behind running batches gets a statement of its own if a slot is
 * free (BatcherOptions.startAfterMs, the floor; longer on a database whose statements are slow):
 * far above a healthy batch's few milliseconds, far below the store timeout.
 */
export const START_ANOTHER_AFTER_MS = 50;
/** Calls queued per kind of write, at most (BatcherOptions.maxQueued). */
export const MAX_QUEUED = 10_000;

/** What the group commit sent so far, per kind of write. */
export interface GroupCommitStats {
  saves: BatcherStats;
  updates: BatcherStats;
}

/** How a store's group commit is set up (see {@link GroupCommitSqlStore}). */
export interface GroupCommitOptions {
  /** The store's connections; one is always left free of batches. */
  poolSize: number;
  /** True when a failed batch certainly wrote nothing, so its calls may run again one by one (see BatcherOptions.retrySingly). */
  wroteNothing: (error: unknown) => boolean;
  /** The store timeout (ms): a call still queued after it fails unsent (BatcherOptions.maxQueueWaitMs). */
  timeoutMs: number;
}

/** What the trans row must hold for an updateTrans to write (TransGuard, unpacked). */
export interface ExpectedRow {
  expectedStatus: GlobalStatus;
  /** undefined: `owner` is not checked. */
  expectedOwner: string | undefined;
}

/**
 * A SQL store whose saveNewTrans and updateTrans are group-committed: calls that queue while
 * earlier batches run go out together (./batcher.ts). The subclass writes the SQL, batched and
 * for one call; the queueing, the stats and waiting for the batches at close are the same on
 * every database, so they live here.
 */
export abstract class GroupCommitSqlStore extends SqlStore {
  private readonly saves: Batcher<SaveOp, "created" | "exists"> | undefined;
  private readonly updates: Batcher<UpdateOp, boolean> | undefined;

  /** `groupCommit` undefined: one query per call (the store's `batchWrites: false`). */
  protected constructor(db: Kysely<StoreDatabase>, isConflict: (error: unknown) => boolean, groupCommit: GroupCommitOptions | undefined) {
    super(db, isConflict);
    if (groupCommit) {
      const maxInFlight = Math.max(1, Math.min(MAX_BATCHES_IN_FLIGHT, groupCommit.poolSize - 1));
      const limits = { maxInFlight, maxBatch: MAX_BATCH, startAfterMs: START_ANOTHER_AFTER_MS, maxQueued: MAX_QUEUED, maxQueueWaitMs: groupCommit.timeoutMs };
      this.saves = new Batcher<SaveOp, "created" | "exists">({
        ...limits, key: (op) => op.trans.gid, retrySingly: groupCommit.wroteNothing,
        runBatch: (ops) => this.saveNewTransBatch(ops),
        runOne: (op) => this.saveNewTransOne(op.trans, op.branches),
      });
      this.updates = new Batcher<UpdateOp, boolean>({
        ...limits, key: (op) => op.gid, retrySingly: groupCommit.wroteNothing,
        runBatch: (ops) => this.updateTransBatch(ops),
        runOne: (op) => this.updateTransOne(op.gid, op, op.patch, op.branches),
      });
    }
  }

  /** One saveNewTrans on its own: a lone call, a re-run from a failed batch, or every call with group commit off. */
  protected abstract saveNewTransOne(trans: NewTrans, branches: readonly NewBranch[]): Promise<"created" | "exists">;
  /** Several saveNewTrans calls (distinct gids) as one batch; results in the order of `ops`. */
  protected abstract saveNewTransBatch(ops: readonly SaveOp[]): Promise<("created" | "exists")[]>;
  /** One updateTrans on its own (see saveNewTransOne). */
  protected abstract updateTransOne(gid: string, expected: ExpectedRow, patch: TransPatch, branches: readonly BranchUpdate[]): Promise<boolean>;
  /** Several updateTrans calls (distinct gids) as one batch; each CAS outcome in the order of `ops`. */
  protected abstract updateTransBatch(ops: readonly UpdateOp[]): Promise<boolean[]>;

  /** One saveNewTrans as a batch of one: the batch statement, whose text is fixed, serves a lone call too. */
  protected async saveNewTransAsBatch(trans: NewTrans, branches: readonly NewBranch[]): Promise<"created" | "exists"> {
    const [result] = await this.saveNewTransBatch([{ trans, branches }]);
    if (result === undefined) throw new Error("saveNewTransBatch answered no result for its one call");
    return result;
  }

  saveNewTrans(trans: NewTrans, branches: readonly NewBranch[]): Promise<"created" | "exists"> {
    return this.saves ? this.saves.submit({ trans, branches }) : this.saveNewTransOne(trans, branches);
  }

  updateTrans(gid: string, expected: TransGuard, patch: TransPatch, branches: readonly BranchUpdate[]): Promise<boolean> {
    const guard = guardParts(expected);
    const row: ExpectedRow = { expectedStatus: guard.status, expectedOwner: guard.owner };
    return this.updates
      ? this.updates.submit({ gid, ...row, patch, branches })
      : this.updateTransOne(gid, row, patch, branches);
  }

  /** What the group commit sent so far (undefined with batchWrites: false). */
  batchStats(): GroupCommitStats | undefined {
    return this.saves && this.updates ? { saves: { ...this.saves.stats }, updates: { ...this.updates.stats } } : undefined;
  }

  /** Waits for the queued and in-flight batches too: their callers were told the write is under way. */
  override async close(): Promise<void> {
    await Promise.all([this.saves?.drain(), this.updates?.drain()]);
    await super.close();
  }
}

/**
 * Bits of an updateTrans batch's `mask` column: which fields each patch sets. A value column
 * alone could not tell "not set" from a value (NULL is a value of some columns), so a field is
 * written only where its bit is on.
 */
export const SET_STATUS = 1;
/** See {@link SET_STATUS}. */
export const SET_FINISH_TIME = 2;
/** See {@link SET_STATUS}. */
export const SET_ROLLBACK_TIME = 4;
/** See {@link SET_STATUS}. */
export const SET_ROLLBACK_REASON = 8;
/** See {@link SET_STATUS}. */
export const SET_RESULT = 16;
/** See {@link SET_STATUS}. */
export const SET_NEXT_CRON_TIME = 32;
/** See {@link SET_STATUS}. */
export const SET_NEXT_CRON_INTERVAL = 64;
/** See {@link SET_STATUS}. */
export const SET_OWNER = 128;

/** The patched columns of trans_global and their mask bits, in the order the batch SQL lists them. */
export const PATCH_COLUMNS = [
  ["status", SET_STATUS],
  ["finish_time", SET_FINISH_TIME],
  ["rollback_time", SET_ROLLBACK_TIME],
  ["rollback_reason", SET_ROLLBACK_REASON],
  ["result", SET_RESULT],
  ["next_cron_time", SET_NEXT_CRON_TIME],
  ["next_cron_interval", SET_NEXT_CRON_INTERVAL],
  ["owner", SET_OWNER],
] as const;

/** The value of each patched column, NULL where the patch does not set it. */
export interface PatchValues {
  status: string | null;
  finish_time: Date | null;
  rollback_time: Date | null;
  rollback_reason: string | null;
  result: string | null;
  next_cron_time: Date | null;
  next_cron_interval: number | null;
  owner: string | null;
}

/**
 * The fields one updateTrans patch sets, as a mask of SET_* bits and a value per column. Built
 * from patchSet, the single statement's SET list, so the batched and single paths write the
 * same values.
 */
export function patchFields(patch: TransPatch): { mask: number; values: PatchValues } {
  const set = patchSet(patch);
  let mask = 0;
  const field = <T>(value: T | undefined, bit: number): T | null => {
    if (value === undefined) return null;
    mask |= bit;
    return value;
  };
  const values: PatchValues = {
    status: field(set.status, SET_STATUS),
    finish_time: field(set.finish_time, SET_FINISH_TIME),
    rollback_time: field(set.rollback_time, SET_ROLLBACK_TIME),
    rollback_reason: field(set.rollback_reason, SET_ROLLBACK_REASON),
    result: field(set.result, SET_RESULT),
    next_cron_time: field(set.next_cron_time, SET_NEXT_CRON_TIME),
    next_cron_interval: field(set.next_cron_interval, SET_NEXT_CRON_INTERVAL),
    owner: field(set.owner, SET_OWNER),
  };
  return { mask, values };
}
