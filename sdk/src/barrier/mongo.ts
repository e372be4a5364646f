/**
 * The Mongo barrier (docs/protocol.md#mongo-barrier): the SQL algorithm inside a session transaction, with
 * FindOne + InsertOne per barrier row and a unique index on {gid, branch_id, op, barrier_id}.
 * Mongo transactions need a replica set (or a sharded cluster).
 */
import { BarrierError, barrierDuplicated, barrierFailure } from "./errors.ts";
import { MSG_BARRIER_ID, MSG_BRANCH_ID, MSG_OP, ROLLBACK_REASON } from "./sql.ts";
import { checkTableName, getBarrierTableName, splitTableName } from "./table-name.ts";
import type { BarrierResult, BranchInfo, MongoClientLike, MongoCollectionLike, MongoSessionLike } from "./types.ts";

/** As dtm's MongoCall: no `rollback` here (Mongo has no XA). */
const MONGO_ORIGIN_OP: Readonly<Record<string, string>> = { cancel: "try", compensate: "action" };

export interface MongoCallOptions {
  /**
   * How many times to run the whole transaction again when Mongo labels the error
   * `TransientTransactionError` (a write conflict with a concurrent transaction, a primary step
   * down). Default 2. `fn` must therefore only write through the session.
   */
  readonly transientRetries?: number;
}

export function barrierCollection(client: MongoClientLike, tableName: string): MongoCollectionLike {
  const [db, coll] = splitTableName(tableName);
  if (db === undefined) throw new BarrierError("BARRIER_INVALID_TABLE_NAME", `the Mongo barrier needs database.collection, got ${JSON.stringify(tableName)}`);
  return client.db(db).collection(coll);
}

function hasErrorLabel(err: unknown, label: string): boolean {
  if (typeof err !== "object" || err === null) return false;
  const e = err as { hasErrorLabel?: unknown; errorLabels?: unknown };
  if (typeof e.hasErrorLabel === "function") return (e.hasErrorLabel as (l: string) => boolean).call(err, label);
  return Array.isArray(e.errorLabels) && e.errorLabels.includes(label);
}

export function isDuplicateKeyError(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === 11000;
}

async function insertBarrier(
  coll: MongoCollectionLike,
  session: MongoSessionLike | undefined,
  row: { transType: string; gid: string; branchId: string; op: string; barrierId: string; reason: string },
): Promise<number> {
  const key = { gid: row.gid, branch_id: row.branchId, op: row.op, barrier_id: row.barrierId };
  const options = session === undefined ? {} : { session };
  if ((await coll.findOne(key, options)) !== null) return 0;
  await coll.insertOne({ trans_type: row.transType, ...key, reason: row.reason }, options);
  return 1;
}

/**
 * Runs `attempt` in a transaction on `session`. On ANY error the transaction is aborted
 * explicitly: real Mongo aborts a transaction on a write error by itself, but not every
 * Mongo-compatible server does, and aborting twice is harmless.
 */
async function inTransaction<T>(session: MongoSessionLike, retries: number, attempt: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    session.startTransaction();
    let committing = false;
    try {
      const value = await attempt();
      committing = true;
      await session.commitTransaction();
      return value;
    } catch (err) {
      if (!committing || session.inTransaction()) {
        try {
          await session.abortTransaction();
        } catch {
          // already aborted by the server, or the commit outcome is unknown: nothing to undo here
        }
      }
      if (i < retries && hasErrorLabel(err, "TransientTransactionError")) continue;
      throw err;
    }
  }
}

export async function mongoBarrierCall<S extends MongoSessionLike, T>(
  info: BranchInfo,
  tableName: string,
  barrierId: string,
  client: MongoClientLike<S>,
  busi: (session: S) => Promise<T>,
  options: MongoCallOptions = {},
): Promise<BarrierResult<T>> {
  const coll = barrierCollection(client, tableName);
  const session = client.startSession();
  const originOp = Object.hasOwn(MONGO_ORIGIN_OP, info.op) ? MONGO_ORIGIN_OP[info.op] : undefined;
  const base = { transType: info.transType, gid: info.gid, branchId: info.branchId, barrierId, reason: info.op };
  try {
    return await inTransaction(session, options.transientRetries ?? 2, async (): Promise<BarrierResult<T>> => {
      const originAffected = originOp === undefined ? 0 : await insertBarrier(coll, session, { ...base, op: originOp });
      const currentAffected = await insertBarrier(coll, session, { ...base, op: info.op });
      if (info.op === MSG_OP && currentAffected === 0) {
        throw barrierDuplicated(`msg barrier for gid ${info.gid} already exists: the local transaction ran before or the check-back rolled it back`);
      }
      if (originOp !== undefined && originAffected > 0) return { executed: false, skipped: "null_compensation", barrierId };
      if (currentAffected === 0) return { executed: false, skipped: "duplicate_or_hanging", barrierId };
      return { executed: true, value: await busi(session), barrierId };
    });
  } finally {
    await session.endSession();
  }
}

/** docs/protocol.md#msg-check-back on Mongo, outside any transaction. */
export async function mongoQueryPrepared(info: BranchInfo, tableName: string, client: MongoClientLike): Promise<void> {
  const coll = barrierCollection(client, tableName);
  const key = { gid: info.gid, branch_id: MSG_BRANCH_ID, op: MSG_OP, barrier_id: MSG_BARRIER_ID };
  try {
    // Insert-if-absent without the FindOne first: the unique index decides, and a local
    // transaction still holding the row makes this insert wait for it.
    await coll.insertOne({ trans_type: info.transType, ...key, reason: ROLLBACK_REASON });
  } catch (err) {
    if (!isDuplicateKeyError(err)) throw err;
  }
  const row = (await coll.findOne(key)) as { reason?: unknown } | null;
  if (row === null) throw new Error(`msg barrier row for gid ${info.gid} is missing after the insert`);
  if (row.reason === ROLLBACK_REASON) throw barrierFailure(`msg ${info.gid} was rolled back FAILURE`);
}

/** Creates the barrier collection's unique index (and so the collection). Idempotent. */
export async function createMongoBarrierIndex(client: MongoClientLike, options: { tableName?: string } = {}): Promise<void> {
  const coll = barrierCollection(client, checkTableName(options.tableName ?? getBarrierTableName()));
  await coll.createIndex({ gid: 1, branch_id: 1, op: 1, barrier_id: 1 }, { unique: true, name: "uniq_barrier" });
}
