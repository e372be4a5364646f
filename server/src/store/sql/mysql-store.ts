import { CompiledQuery, Kysely, MysqlDialect, sql } from "kysely";
import type { DatabaseConnection } from "kysely";
import { createPool } from "mysql2";
import type { TypeCast } from "mysql2";
import type { GlobalStatus } from "../../core/types.ts";
import type { TransRow } from "../rows.ts";
import { isSameBranch, transFromRow } from "../rows.ts";
import type { AppendResult, BranchUpdate, ClaimedTrans, NewBranch, NewTrans, RetentionBatch, TransPatch } from "../store.ts";
import { at, branchInsert, date, FINISHED_SQL, patchSet, transInsert } from "./convert.ts";
import { foundGids, rollbackAndFindQuery, saveBatchQuery, updateBatchQuery, updateBatchWins } from "./mysql-batch.ts";
import { migrateMysql } from "./mysql-migrate.ts";
import { GroupCommitSqlStore } from "./group-commit.ts";
import { timedPool } from "./mysql-pool.ts";
import type { ExpectedRow, SaveOp, UpdateOp } from "./group-commit.ts";
import type { StoreDatabase } from "./tables.ts";

export interface MysqlStoreOptions {
  /** `mysql://user:password@host:3306/database`; the database must exist. */
  url: string;
  /** Connections in the pool (default 10). */
  poolSize?: number;
  /**
   * Group commit (default true): saveNewTrans and updateTrans calls that arrive while earlier
   * ones are in flight go out together as one short transaction in one round trip
   * (./mysql-batch.ts). False runs one query per call.
   */
  batchWrites?: boolean;
  /**
   * Milliseconds a query, a connect or a lock wait may take (default 5000). A query that gets no
   * answer in time fails and its connection is destroyed (./mysql-pool.ts).
   */
  timeoutMs?: number;
}

/** Queued requests for a pooled connection, at most: past it a call fails at once instead of queueing. */
const MAX_CONNECTION_WAITERS = 1_000;
/** Idle time before the first TCP keepalive probe. */
const KEEPALIVE_DELAY_MS = 10_000;

/** datetime(3) columns hold UTC (see `timezone: "Z"`); read them back as epoch milliseconds. */
const typeCast: TypeCast = (field, next) => {
  if (field.type !== "DATETIME") return next();
  const text = field.string();
  return text === null ? null : Date.parse(`${text.replace(" ", "T")}Z`);
};

/**
 * The kysely instance over a mysql2 pool. `serve`: the store's pool, with every timeout
 * (docs/store-outages.md). `migrate`: one connection whose connect is bounded but whose queries
 * are not (see MysqlStore.migrate).
 */
function mysqlDb(options: MysqlStoreOptions, use: "serve" | "migrate"): { db: Kysely<StoreDatabase>; destroyConnections: () => void } {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const pool = createPool({
    uri: options.url,
    connectionLimit: use === "migrate" ? 1 : options.poolSize ?? 10,
    // Binary collation for every string the connection sends, like the tables' utf8mb4_bin:
    // comparisons are exact and never mix collations.
    charset: "UTF8MB4_BIN",
    timezone: "Z",
    typeCast,
    connectTimeout: timeoutMs,
    queueLimit: MAX_CONNECTION_WAITERS,
    enableKeepAlive: true,
    keepAliveInitialDelay: KEEPALIVE_DELAY_MS,
    // saveNewTrans sends START TRANSACTION, two INSERTs and COMMIT as one query, and the group
    // commit (./mysql-batch.ts) a whole transaction per batch. Every value still goes through
    // mysql2's escaping (no SQL is built from input).
    multipleStatements: true,
  });
  const connections = new Set<{ destroy(): void }>();
  pool.on("connection", (conn) => {
    connections.add(conn);
    // mysql2's socket (typed `any`); a closed connection is forgotten.
    (conn as unknown as { stream: NodeJS.EventEmitter }).stream.once("close", () => connections.delete(conn));
    // mysql2's pool listens for a connection's first "error" only (once); a broken connection can
    // emit more (a write after the fatal error), and an "error" with no listener is an uncaught
    // exception that kills the coordinator. The failed query already reports the fault to its caller.
    conn.on("error", () => undefined);
  });
  // A row lock wait ends with a clean error (1205) before the client-side timeout, which would cost the connection.
  const lockWaitSeconds = Math.max(1, Math.floor(timeoutMs / 1000));
  const idleTransactionSeconds = Math.ceil((2 * timeoutMs + 1_000) / 1000);
  const dialect = new MysqlDialect({
    pool: use === "migrate" ? pool : timedPool(pool, timeoutMs),
    onCreateConnection: async (connection) => {
      await connection.executeQuery(CompiledQuery.raw("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"));
      if (use === "serve") {
        await connection.executeQuery(CompiledQuery.raw(`SET SESSION innodb_lock_wait_timeout = ${lockWaitSeconds}`));
        await setIdleTransactionTimeout(connection, idleTransactionSeconds);
      }
      await connection.executeQuery(CompiledQuery.raw("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION', time_zone = '+00:00'"));
    },
  });
  const destroyConnections = (): void => {
    for (const conn of connections) conn.destroy();
    connections.clear();
  };
  return { db: new Kysely<StoreDatabase>({ dialect }), destroyConnections };
}

/**
 * MariaDB ends a session that sits idle inside a transaction this long, releasing its row locks:
 * a coordinator whose connection went silent between a `SELECT ... FOR UPDATE` and its COMMIT
 * would otherwise hold those rows, and stall their transactions, until the server's wait_timeout
 * (hours). MySQL has no such setting (ER_UNKNOWN_SYSTEM_VARIABLE, 1193, is ignored): there only
 * wait_timeout and TCP keepalive on the server end such a session (docs/store-outages.md).
 */
async function setIdleTransactionTimeout(connection: DatabaseConnection, seconds: number): Promise<void> {
  try {
    await connection.executeQuery(CompiledQuery.raw(`SET SESSION idle_transaction_timeout = ${seconds}`));
  } catch (error) {
    if (errno(error) !== 1193) throw error;
  }
}

/**
 * The MySQL 8 / MariaDB 10.6+ store: several coordinators can share one database. MySQL has no
 * UPDATE ... RETURNING and no data-modifying CTEs, so the multi-statement operations are short
 * transactions (the common single-statement cases skip BEGIN/COMMIT). Sessions run READ
 * COMMITTED, which avoids InnoDB's gap locks (a known deadlock source in dtm, #478); every read
 * that decides a write either locks (`FOR UPDATE`) or is the guarded UPDATE itself. claimDue
 * uses `FOR UPDATE SKIP LOCKED` (MySQL 8.0.1+, MariaDB 10.6+).
 *
 * The hot writes, saveNewTrans and updateTrans, are group-committed (batchWrites): calls that
 * queue while earlier ones run go out as one transaction in one round trip, with the same
 * per-call outcome, which saves most of the per-query and per-commit cost under load.
 */
export class MysqlStore extends GroupCommitSqlStore {
  constructor(private readonly options: MysqlStoreOptions) {
    const serving = mysqlDb(options, "serve");
    super(serving.db, isMysqlConflict,
      options.batchWrites === false ? undefined : { poolSize: options.poolSize ?? 10, wroteNothing, timeoutMs: options.timeoutMs ?? 5_000 });
    this.closeTimeoutMs = options.timeoutMs ?? 5_000;
    this.destroyConnections = serving.destroyConnections;
  }

  /**
   * On a connection of its own without the query timeout: a migration may wait for another
   * coordinator's (GET_LOCK) or alter a big table, which can take longer than any store call should.
   */
  async migrate(): Promise<void> {
    const { db } = mysqlDb(this.options, "migrate");
    try {
      await migrateMysql(db, Date.now());
    } finally {
      await db.destroy();
    }
  }

  protected saveNewTransOne(trans: NewTrans, branches: readonly NewBranch[]): Promise<"created" | "exists"> {
    const insertTrans = async (db: Kysely<StoreDatabase>): Promise<boolean> => {
      try {
        await db.insertInto("trans_global").values(transInsert(trans)).execute();
        return true;
      } catch (error) {
        // Not INSERT IGNORE: that would also turn truncation and CHECK failures into warnings.
        if (isDuplicateKey(error)) return false;
        throw error;
      }
    };
    if (branches.length === 0) return this.write(async () => ((await insertTrans(this.db)) ? "created" : "exists"));
    // With branches: a batch of one (START TRANSACTION, both INSERTs and COMMIT in one round
    // trip, rolled back on the same connection after an error).
    return this.saveNewTransAsBatch(trans, branches);
  }

  appendBranches(gid: string, expectedStatus: GlobalStatus, branches: readonly NewBranch[], _now: number): Promise<AppendResult> {
    return this.write(() => this.db.transaction().execute(async (trx): Promise<AppendResult> => {
      // The row lock serialises appends (and updateTrans) per gid; under READ COMMITTED the next
      // read sees every branch committed before the lock was granted.
      const early = await this.lockForAppend(trx, gid, expectedStatus, branches.length);
      if (early) return early;
      const existing = await trx
        .selectFrom("trans_branch_op")
        .select(["branch_id", "op", "url", "status", "bin_data"])
        .where("gid", "=", gid)
        .where((eb) => eb.or(branches.map((b) => eb.and([eb("branch_id", "=", b.branchId), eb("op", "=", b.op)]))))
        .execute();
      const stored = new Map(existing.map((e) => [`${e.branch_id}\n${e.op}`, e]));
      const fresh: NewBranch[] = [];
      for (const b of branches) {
        const e = stored.get(`${b.branchId}\n${b.op}`);
        if (!e) fresh.push(b);
        else if (!isSameBranch(e, b)) return "conflict";
      }
      if (fresh.length > 0) await trx.insertInto("trans_branch_op").values(fresh.map(branchInsert)).execute();
      return "saved";
    }));
  }

  protected updateTransOne(gid: string, expected: ExpectedRow, patch: TransPatch, branches: readonly BranchUpdate[]): Promise<boolean> {
    const { expectedStatus, expectedOwner } = expected;
    const cas = async (db: Kysely<StoreDatabase>): Promise<boolean> => {
      // mysql2 connects with CLIENT_FOUND_ROWS: affected rows count matched rows, so a CAS that
      // writes values equal to the stored ones still reports its win.
      let q = db.updateTable("trans_global").set(patchSet(patch)).where("gid", "=", gid).where("status", "=", expectedStatus);
      if (expectedOwner !== undefined) q = q.where("owner", "=", expectedOwner);
      const r = await q.executeTakeFirst();
      return r.numUpdatedRows === 1n;
    };
    if (branches.length === 0) return this.write(() => cas(this.db));
    return this.write(async () => {
      const r = await casWithBranches(gid, expected, patch, branches).execute(this.db);
      // matched rows of both tables: the trans row is among them exactly when the CAS matched
      return (r.numAffectedRows ?? 0n) > 0n;
    });
  }

  /**
   * Many saveNewTrans in one transaction (./mysql-batch.ts saveBatchQuery), optimistically: the
   * gids are inserted as if all were new. A duplicate gid stops it; then the gids that exist are
   * looked up in the same round trip as the ROLLBACK, answered "exists", and the rest inserted
   * again. A failure that names no existing gid (a bad value, two equal branches in one call) is
   * thrown, and the batcher re-runs the calls one by one, so it fails only its own caller.
   */
  protected saveNewTransBatch(ops: readonly SaveOp[]): Promise<("created" | "exists")[]> {
    return this.write(() => this.db.connection().execute(async (conn) => {
      const exists = new Set<string>();
      for (;;) {
        const todo = ops.filter((op) => !exists.has(op.trans.gid));
        if (todo.length === 0) break;
        try {
          await conn.executeQuery(saveBatchQuery(conn, todo));
          break;
        } catch (error) {
          const found = await rollbackAfter(conn, error, todo.map((op) => op.trans.gid));
          const stored = todo.filter((op) => found.has(op.trans.gid));
          // Nothing to answer "exists" for: the error is not (only) a duplicate gid. Checked on the
          // ops, not on `found`, so every turn of the loop shrinks `todo`.
          if (stored.length === 0) throw error;
          for (const op of stored) exists.add(op.trans.gid);
        }
      }
      return ops.map((op) => (exists.has(op.trans.gid) ? "exists" : "created"));
    }));
  }

  /** Many updateTrans (distinct gids) in one transaction and one round trip (./mysql-batch.ts updateBatchQuery). */
  protected updateTransBatch(ops: readonly UpdateOp[]): Promise<boolean[]> {
    return this.write(() => this.db.connection().execute(async (conn) => {
      try {
        return updateBatchWins(await conn.executeQuery(updateBatchQuery(conn, ops)), ops);
      } catch (error) {
        await rollbackAfter(conn, error, []);
        throw error;
      }
    }));
  }

  claimDue(now: number, leaseUntil: number, limit: number, token: string): Promise<ClaimedTrans[]> {
    return this.write(() => this.db.transaction().execute(async (trx) => {
      // The `due` index hands rows over in order, so only the rows returned get locked (see the
      // DDL); FORCE INDEX keeps the optimizer from a table scan + filesort on small tables.
      const { rows } = await sql<TransRow>`SELECT * FROM trans_global FORCE INDEX (due)
        WHERE due_time <= ${at(now)} ORDER BY due_time, id LIMIT ${limit}
        FOR UPDATE SKIP LOCKED`.execute(trx);
      if (rows.length === 0) return [];
      await trx
        .updateTable("trans_global")
        .set({ next_cron_time: date(leaseUntil), owner: token, update_time: date(now) })
        .where("id", "in", rows.map((r) => r.id))
        .execute();
      return rows.map((r) => ({ ...transFromRow({ ...r, next_cron_time: leaseUntil, owner: token, update_time: now }), previousOwner: r.owner ?? "" }));
    }));
  }

  resetCronTime(after: number, now: number, limit: number): Promise<{ count: number; hasRemaining: boolean }> {
    return this.write(async () => {
      // MySQL cannot UPDATE ... WHERE id IN (SELECT ... LIMIT), but a single-table UPDATE takes
      // ORDER BY and LIMIT itself; whether any remain is asked afterwards.
      // A row with an owner and a lease past `after` is held by a running pass (docs/fencing.md).
      const updated = await sql`UPDATE trans_global SET next_cron_time = ${date(now)}, update_time = ${date(now)}
        WHERE due_time > ${at(after)} AND owner = '' ORDER BY due_time, id LIMIT ${limit}`.execute(this.db);
      const remaining = await sql`SELECT id FROM trans_global WHERE due_time > ${at(after)} AND owner = '' LIMIT 1`.execute(this.db);
      return { count: Number(updated.numAffectedRows ?? 0n), hasRemaining: remaining.rows.length > 0 };
    });
  }

  /**
   * A short transaction: the batch's rows by the (status, update_time) index, locked with SKIP
   * LOCKED (two coordinators take disjoint batches), then their branches and themselves deleted.
   * No ORDER BY: the index holds the two statuses as two ranges, and any old rows will do.
   */
  deleteFinished(before: number, limit: number): Promise<RetentionBatch> {
    return this.write(() => this.db.transaction().execute(async (trx): Promise<RetentionBatch> => {
      const { rows } = await sql<{ id: number; gid: string }>`SELECT id, gid FROM trans_global FORCE INDEX (finished)
        WHERE status IN ${sql.raw(FINISHED_SQL)} AND update_time < ${at(before)} LIMIT ${limit}
        FOR UPDATE SKIP LOCKED`.execute(trx);
      if (rows.length === 0) return { deleted: 0, pruned: 0, more: false };
      await trx.deleteFrom("trans_branch_op").where("gid", "in", rows.map((r) => r.gid)).execute();
      await trx.deleteFrom("trans_global").where("id", "in", rows.map((r) => r.id)).execute();
      return { deleted: rows.length, pruned: 0, more: rows.length === limit };
    }));
  }

  createKV(cat: string, key: string, value: string, now: number): Promise<"created" | "exists"> {
    return this.write(async () => {
      try {
        await this.db.insertInto("kv").values({ cat, k: key, v: value, version: 1, create_time: date(now), update_time: date(now) }).execute();
        return "created";
      } catch (error) {
        if (isDuplicateKey(error)) return "exists";
        throw error;
      }
    });
  }
}

/**
 * updateTrans with branch statuses as ONE multi-table UPDATE (one round trip and one commit
 * instead of BEGIN, two UPDATEs and COMMIT): the trans row is the driving table and its branches
 * are LEFT JOINed, so nothing is written unless the CAS on the trans row matches, and the trans
 * row is written even if no branch row does. The new branch values are a derived table
 * (UNION ALL of one-row SELECTs, which MySQL and MariaDB both accept).
 */
function casWithBranches(gid: string, expected: ExpectedRow, patch: TransPatch, branches: readonly BranchUpdate[]) {
  const values = sql.join(
    branches.map((u) => sql`SELECT ${u.branchId} AS branch_id, ${u.op} AS op, ${u.status} AS status, ${date(u.finishTime)} AS finish_time`),
    sql` UNION ALL `,
  );
  const assignments = sql.join(Object.entries(patchSet(patch)).map(([column, value]) => sql`${sql.ref(`g.${column}`)} = ${value}`));
  return sql`UPDATE trans_global AS g
    LEFT JOIN (trans_branch_op AS o JOIN (${values}) AS v ON o.branch_id = v.branch_id AND o.op = v.op) ON o.gid = g.gid
    SET ${assignments}, o.status = v.status, o.finish_time = v.finish_time, o.update_time = ${date(patch.updateTime)}
    WHERE g.gid = ${gid} AND g.status = ${expected.expectedStatus}${expected.expectedOwner === undefined ? sql`` : sql` AND g.owner = ${expected.expectedOwner}`}`;
}

/**
 * Leaves no open transaction on `conn` after a batch query failed part way (the server stops at
 * the first failing statement of a multi-statement query). After a duplicate key it also
 * returns which of `gids` exist now, read in the same round trip; otherwise an empty set.
 */
async function rollbackAfter(conn: Kysely<StoreDatabase>, error: unknown, gids: readonly string[]): Promise<Set<string>> {
  try {
    if (isDuplicateKey(error) && gids.length > 0) return foundGids(await conn.executeQuery(rollbackAndFindQuery(conn, gids)));
    await conn.executeQuery(CompiledQuery.raw("ROLLBACK"));
  } catch {
    // A connection that cannot roll back is broken: mysql2 drops it from the pool, and the
    // server rolls the transaction back. The caller reports the batch's own error.
  }
  return new Set();
}

/**
 * An error the server answered a batch with, so the batch committed nothing (its COMMIT is the
 * last statement, and every failure is rolled back): its calls can run again one by one. Not a
 * broken connection (mysql2 marks it fatal): the COMMIT may have run before the answer was lost.
 */
function wroteNothing(error: unknown): boolean {
  const e = error as { sqlState?: unknown; fatal?: unknown } | null;
  return typeof e?.sqlState === "string" && e.fatal !== true;
}

function errno(error: unknown): unknown {
  return (error as { errno?: unknown } | null)?.errno;
}

/** ER_DUP_ENTRY */
function isDuplicateKey(error: unknown): boolean {
  return errno(error) === 1062;
}

/** ER_LOCK_DEADLOCK: InnoDB rolled the whole transaction back. */
function isMysqlConflict(error: unknown): boolean {
  return errno(error) === 1213;
}
