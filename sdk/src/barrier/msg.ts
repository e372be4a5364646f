/**
 * The two-phase message's DoAndSubmit (docs/protocol.md#msg and docs/protocol.md#msg-check-back): prepare, run the local
 * transaction with the msg barrier row in it, then submit, or abort when the local transaction
 * definitely did not commit.
 */
import { BranchBarrier, type BarrierDb, type MysqlPoolOf, type PgPoolOf } from "./branch-barrier.ts";
import { isBarrierFailure } from "./errors.ts";
import { MSG_BRANCH_ID, MSG_OP } from "./sql.ts";
import type {
  BarrierOptions,
  BranchInfo,
  KyselyExecutorLike,
  KyselyLike,
  MongoClientLike,
  MongoSessionLike,
  MysqlConnectionLike,
  MysqlPoolConnectionLike,
  PgPoolClientLike,
  PgQueryable,
} from "./types.ts";

/** What DoAndSubmit needs from a msg: the builders' `Msg` satisfies it. */
export interface DoAndSubmitMsg {
  readonly gid: string;
  /** POST /api/dtmsvr/prepare with the msg and its query_prepared URL. */
  prepare(queryPrepared: string): Promise<void>;
  /** POST /api/dtmsvr/submit. */
  submit(): Promise<void>;
  /** POST /api/dtmsvr/abort. */
  abort(): Promise<void>;
}

/** The barrier of a msg's local transaction: (msg, gid, "00", "msg"), barrier_id "01". */
export function msgBarrier(gid: string, options?: BarrierOptions): BranchBarrier {
  return new BranchBarrier({ transType: "msg", gid, branchId: MSG_BRANCH_ID, op: MSG_OP }, options);
}

/**
 * The store-independent core. `busi` runs the local transaction through the barrier it is given
 * (`bb.callWithDB`, `bb.redisCheckAdjustAmount`, ...); `checkBack` runs the check-back logic
 * against the same store (`bb.queryPrepared(db)`, `bb.redisQueryPrepared(redis)`).
 *
 * - `busi` resolves: submit, and resolve with its value.
 * - `busi` rejects with FAILURE: abort, and reject with that error.
 * - `busi` rejects otherwise (the commit's outcome may be unknown): run `checkBack`; if it says
 *   FAILURE (the rollback marker is now in place, so the transaction can never commit) abort, if
 *   it says committed submit; if it fails too, do neither and leave it to the coordinator's own
 *   check-back. Reject with `busi`'s error in every case.
 */
export async function doAndSubmit<T>(
  msg: DoAndSubmitMsg,
  queryPrepared: string,
  busi: (bb: BranchBarrier) => Promise<T>,
  checkBack: (bb: BranchBarrier) => Promise<void>,
  options?: BarrierOptions,
): Promise<T> {
  const bb = msgBarrier(msg.gid, options);
  await msg.prepare(queryPrepared);
  let value: T;
  try {
    value = await busi(bb);
  } catch (busiError) {
    let outcome: "abort" | "submit" | "unknown" = "abort";
    if (!isBarrierFailure(busiError)) {
      try {
        await checkBack(bb);
        outcome = "submit";
      } catch (checkError) {
        outcome = isBarrierFailure(checkError) ? "abort" : "unknown";
      }
    }
    try {
      if (outcome === "abort") await msg.abort();
      else if (outcome === "submit") await msg.submit();
    } catch {
      // As dtm's DoAndSubmit: the business error is what the caller needs; the coordinator's
      // check-back settles a msg left prepared.
    }
    throw busiError;
  }
  await msg.submit();
  return value;
}

/**
 * DoAndSubmit with a database: the local transaction is opened on `db` (pg Pool, mysql2/promise
 * Pool, Kysely, MongoClient) with the msg barrier row in it, and `busi` runs inside it; the
 * check-back on failure is {@link BranchBarrier.queryPrepared} against the same `db`.
 * A repeated run for the same gid rejects with DUPLICATED.
 */
export function doAndSubmitDB<T, C extends PgQueryable = PgPoolClientLike>(msg: DoAndSubmitMsg, queryPrepared: string, db: PgPoolOf<C>, busi: (client: C) => Promise<T>, options?: BarrierOptions): Promise<T>;
export function doAndSubmitDB<T, C extends MysqlConnectionLike = MysqlPoolConnectionLike>(msg: DoAndSubmitMsg, queryPrepared: string, db: MysqlPoolOf<C>, busi: (conn: C) => Promise<T>, options?: BarrierOptions): Promise<T>;
export function doAndSubmitDB<T, Trx extends KyselyExecutorLike>(msg: DoAndSubmitMsg, queryPrepared: string, db: KyselyLike<Trx>, busi: (trx: Trx) => Promise<T>, options?: BarrierOptions): Promise<T>;
export function doAndSubmitDB<T, S extends MongoSessionLike>(msg: DoAndSubmitMsg, queryPrepared: string, db: MongoClientLike<S>, busi: (session: S) => Promise<T>, options?: BarrierOptions): Promise<T>;
export function doAndSubmitDB<T>(msg: DoAndSubmitMsg, queryPrepared: string, db: BarrierDb, busi: (tx: never) => Promise<T>, options?: BarrierOptions): Promise<T> {
  return doAndSubmit(
    msg,
    queryPrepared,
    async (bb) => {
      const result = await bb.callWithDB(db, busi);
      // The msg op never skips: a second run is DUPLICATED (thrown by the barrier).
      if (!result.executed) throw new Error(`msg barrier for gid ${msg.gid} skipped the local transaction (${result.skipped})`);
      return result.value;
    },
    (bb) => bb.queryPrepared(db),
    options,
  );
}

/**
 * The builders' `MsgBarrierDb` hook over a database: `new Msg(...).doAndSubmitDB(queryPrepared,
 * msgBarrierDb(pool), busi)` runs `busi` in a local transaction on `db` with the msg barrier row.
 */
export interface MsgBarrierDbAdapter<Tx> {
  callMsgBarrier(barrier: BranchInfo, busi: (tx: Tx) => Promise<void>): Promise<void>;
}

export function msgBarrierDb<C extends PgQueryable = PgPoolClientLike>(db: PgPoolOf<C>, options?: BarrierOptions): MsgBarrierDbAdapter<C>;
export function msgBarrierDb<C extends MysqlConnectionLike = MysqlPoolConnectionLike>(db: MysqlPoolOf<C>, options?: BarrierOptions): MsgBarrierDbAdapter<C>;
export function msgBarrierDb<Trx extends KyselyExecutorLike>(db: KyselyLike<Trx>, options?: BarrierOptions): MsgBarrierDbAdapter<Trx>;
export function msgBarrierDb<S extends MongoSessionLike>(db: MongoClientLike<S>, options?: BarrierOptions): MsgBarrierDbAdapter<S>;
export function msgBarrierDb(db: BarrierDb, options?: BarrierOptions): MsgBarrierDbAdapter<never> {
  return {
    async callMsgBarrier(barrier, busi) {
      const result = await new BranchBarrier(barrier, options).callWithDB(db, busi);
      if (!result.executed) throw new Error(`msg barrier for gid ${barrier.gid} skipped the local transaction (${result.skipped})`);
    },
  };
}
