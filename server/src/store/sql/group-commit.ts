/**
 * What the two SQL stores' group commit shares: the queued operations, the limits, the pair of
 * batchers (./pg-batch.ts) each store builds from its own four run functions, and the mask that
 * says which fields an updateTrans patch sets. Only the SQL differs between the stores (Postgres
 * in ./postgres-store.ts, MySQL/MariaDB in ./mysql-batch.ts), so it stays with each store.
 */
import type { GlobalStatus } from "../../core/types.ts";
import type { BranchUpdate, NewBranch, NewTrans, TransPatch } from "../store.ts";
import { patchSet } from "./convert.ts";
import { Batcher } from "./pg-batch.ts";
import type { BatcherStats } from "./pg-batch.ts";

/** One queued saveNewTrans. */
export interface SaveOp {
  trans: NewTrans;
  branches: readonly NewBranch[];
}

/** One queued updateTrans. */
export interface UpdateOp {
  gid: string;
  expectedStatus: GlobalStatus;
  patch: TransPatch;
  branches: readonly BranchUpdate[];
}

/** Batch queries of one kind at once, at most (a second one only for a full batch); the rest of the pool is left for reads and other writes. */
export const MAX_BATCHES_IN_FLIGHT = 4;
/** Operations per batch query, at most. */
export const MAX_BATCH = 64;

/** How a store runs each kind of write, batched and alone. */
export interface GroupCommitRunners {
  /** Several saveNewTrans calls (distinct gids) as one batch; results in the order of `ops`. */
  saveBatch: (ops: readonly SaveOp[]) => Promise<("created" | "exists")[]>;
  /** One saveNewTrans on its own. */
  saveOne: (op: SaveOp) => Promise<"created" | "exists">;
  /** Several updateTrans calls (distinct gids) as one batch; each CAS outcome in the order of `ops`. */
  updateBatch: (ops: readonly UpdateOp[]) => Promise<boolean[]>;
  /** One updateTrans on its own. */
  updateOne: (op: UpdateOp) => Promise<boolean>;
  /** True when a failed batch certainly wrote nothing, so its calls may run again one by one (see BatcherOptions.retrySingly). */
  wroteNothing: (error: unknown) => boolean;
}

/** What the group commit sent so far, per kind of write. */
export interface GroupCommitStats {
  saves: BatcherStats;
  updates: BatcherStats;
}

/** The saveNewTrans and updateTrans batchers of one store, configured alike. */
export class GroupCommit {
  private readonly saves: Batcher<SaveOp, "created" | "exists">;
  private readonly updates: Batcher<UpdateOp, boolean>;

  /** `poolSize`: the store's connections; one is always left free of batches. */
  constructor(poolSize: number, run: GroupCommitRunners) {
    const maxInFlight = Math.max(1, Math.min(MAX_BATCHES_IN_FLIGHT, poolSize - 1));
    this.saves = new Batcher<SaveOp, "created" | "exists">({
      maxInFlight, maxBatch: MAX_BATCH, key: (op) => op.trans.gid, retrySingly: run.wroteNothing,
      runBatch: run.saveBatch, runOne: run.saveOne,
    });
    this.updates = new Batcher<UpdateOp, boolean>({
      maxInFlight, maxBatch: MAX_BATCH, key: (op) => op.gid, retrySingly: run.wroteNothing,
      runBatch: run.updateBatch, runOne: run.updateOne,
    });
  }

  /** Queues a saveNewTrans. */
  save(op: SaveOp): Promise<"created" | "exists"> {
    return this.saves.submit(op);
  }

  /** Queues an updateTrans. */
  update(op: UpdateOp): Promise<boolean> {
    return this.updates.submit(op);
  }

  /** Copies of the counters, so a caller's snapshot does not change under it. */
  stats(): GroupCommitStats {
    return { saves: { ...this.saves.stats }, updates: { ...this.updates.stats } };
  }

  /** Resolves once the queued and in-flight batches of both kinds have settled. */
  async drain(): Promise<void> {
    await Promise.all([this.saves.drain(), this.updates.drain()]);
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

/** The patched columns of trans_global and their mask bits, in the order the batch SQL lists them. */
export const PATCH_COLUMNS = [
  ["status", SET_STATUS],
  ["finish_time", SET_FINISH_TIME],
  ["rollback_time", SET_ROLLBACK_TIME],
  ["rollback_reason", SET_ROLLBACK_REASON],
  ["result", SET_RESULT],
  ["next_cron_time", SET_NEXT_CRON_TIME],
  ["next_cron_interval", SET_NEXT_CRON_INTERVAL],
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
  };
  return { mask, values };
}
