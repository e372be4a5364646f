import { CompiledQuery, Kysely, PostgresDialect, sql } from "kysely";
import type { QueryResult } from "kysely";
import pg from "pg";
import type { GlobalStatus } from "../../core/types.ts";
import type { TransRow } from "../rows.ts";
import { transFromRow } from "../rows.ts";
import type { AppendResult, BranchUpdate, ClaimedTrans, NewBranch, NewTrans, RetentionBatch, TransPatch } from "../store.ts";
import { date, FINISHED_SQL, UNFINISHED_SQL } from "./convert.ts";
import { GroupCommitSqlStore } from "./group-commit.ts";
import type { ExpectedRow, SaveOp, UpdateOp } from "./group-commit.ts";
import type { BranchColumns } from "./pg-hot-writes.ts";
import { msToTimestamptz } from "./pg-array-literal.ts";
import {
  branchColumns, SAVE_NEW_TRANS, SAVE_NEW_TRANS_ONE, saveNewTransOneParams, saveNewTransParams, UPDATE_TRANS_BATCH, UPDATE_TRANS_ONE, updateTransBatchParams, updateTransOneParams,
} from "./pg-hot-writes.ts";
import { preparingPool, StatementNames } from "./pg-prepared.ts";
import { migratePostgres } from "./postgres-migrate.ts";
import type { StoreDatabase } from "./tables.ts";

export interface PostgresStoreOptions {
  /** `postgres://user:password@host:5432/database?sslmode=...` */
  url: string;
  /** Connections in the pool (default 10). */
  poolSize?: number;
  /** Schema holding dtx's tables (default `public`); created by migrate() if missing. */
  schema?: string;
  /** Errors of idle pooled connections (e.g. the server restarted); without a handler they would crash the process. */
  onPoolError?: (error: Error) => void;
  /**
   * Run the store's statements as named prepared statements (default true): about half the
   * Postgres CPU per operation. Turn off behind a pooler that moves sessions between server
   * connections without tracking prepared statements (PgBouncer in transaction mode before 1.21).
   */
  prepareStatements?: boolean;
  /**
   * Group commit (default true): saveNewTrans and updateTrans calls that arrive while earlier
   * ones are in flight go out together as one multi-row statement (./batcher.ts). False runs
   * one statement per call.
   */
  batchWrites?: boolean;
  /**
   * Milliseconds a statement, a connect or a wait for a pooled connection may take (default
   * 5000): the server cancels a statement after it (statement_timeout), and the client gives up
   * on a server that does not answer a little later (query_timeout) and destroys the connection.
   */
  timeoutMs?: number;
}

/** Default of {@link PostgresStoreOptions.timeoutMs}. */
export const DEFAULT_STORE_TIMEOUT_MS = 5_000;
/**
 * How much longer than statement_timeout the client waits for an answer: a server that is alive
 * cancels the statement itself and the connection stays usable; only a silent one costs a
 * connection.
 */
const CLIENT_GRACE_MS = 1_000;
/** Idle time before the first TCP keepalive probe: a dead peer is noticed on an idle connection too. */
export const KEEPALIVE_DELAY_MS = 10_000;

const INT8_OID = 20;
const TIMESTAMPTZ_OID = 1184;
const parseTimestamptz = pg.types.getTypeParser(TIMESTAMPTZ_OID, "text") as (text: string) => Date | number;

/**
 * A timestamptz as epoch ms. pg answers `infinity` / `-infinity` as a number, not a Date, and a
 * year past JS's range as an invalid Date (NaN); either must still read back (the API renders
 * them within years 0000-9999, docs/input-limits.md), not throw and fail the whole listing.
 */
function timestampMs(text: string): number {
  const parsed = parseTimestamptz(text);
  return typeof parsed === "number" ? parsed : parsed.getTime();
}

/**
 * This pool's own type parsers (pg's global ones are left alone for other users of pg in the
 * process): bigint ids, versions and counts as numbers (they stay far below 2^53), timestamps as
 * epoch milliseconds, so rows come back in the shape ../rows.ts maps.
 */
const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") => {
    if (oid === INT8_OID) return (text: string) => Number(text);
    if (oid === TIMESTAMPTZ_OID) return timestampMs;
    return format === "binary" ? pg.types.getTypeParser(oid, "binary") : pg.types.getTypeParser(oid, "text");
  }) as pg.CustomTypesConfig["getTypeParser"],
};

/**
 * The kysely instance over a pg pool. `serve`: the store's pool, with every timeout
 * (docs/store-outages.md) and named prepared statements unless turned off. `migrate`: one
 * connection whose connect is bounded but whose statements are not (see PostgresStore.migrate).
 */
function postgresDb(options: PostgresStoreOptions, schema: string, use: "serve" | "migrate"): { db: Kysely<StoreDatabase>; destroyConnections: () => void } {
  const timeoutMs = options.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS;
  const statementTimeouts = use === "migrate" ? {} : {
    statement_timeout: timeoutMs,
    query_timeout: timeoutMs + CLIENT_GRACE_MS,
    // A coordinator that died inside a transaction must not hold its row locks for long.
    idle_in_transaction_session_timeout: 2 * timeoutMs + CLIENT_GRACE_MS,
  };
  const pool = new pg.Pool({
    connectionString: options.url,
    max: use === "migrate" ? 1 : options.poolSize ?? 10,
    // pg waits for ever by default. This bounds both a connect and a wait for a free client.
    connectionTimeoutMillis: timeoutMs,
    ...statementTimeouts,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
    types: TYPES,
  });
  pool.on("error", (error) => options.onPoolError?.(error));
  const clients = new Set<pg.PoolClient>();
  pool.on("connect", (client) => {
    clients.add(client);
    // pg emits "error" on a client whose connection ends while it is checked out between queries
    // (a failover, or our own destroy of a hung connection); pg-pool listens only while a client is
    // idle, and an "error" with no listener is an uncaught exception that kills the coordinator.
    // Nothing is lost by ignoring it here: the client's next query fails, its caller sees that,
    // and the failed client is destroyed on release (idle clients' errors still reach onPoolError).
    client.on("error", () => undefined);
  });
  pool.on("remove", (client) => clients.delete(client as pg.PoolClient));
  const names = use === "serve" && options.prepareStatements !== false ? new StatementNames() : undefined;
  const dialect = new PostgresDialect({
    pool: preparingPool(pool, names),
    onCreateConnection: async (connection) => {
      await connection.executeQuery(CompiledQuery.raw(`SET search_path TO ${quoteIdent(schema)}`));
    },
  });
  const destroyConnections = (): void => {
    // pg has no public way to drop a client without the goodbye; its socket is `connection.stream`.
    for (const client of clients) (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
    clients.clear();
  };
  return { db: new Kysely<StoreDatabase>({ dialect }), destroyConnections };
}

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * The PostgreSQL store: several coordinators can share one database. Each operation is one
 * statement where Postgres allows it (data-modifying CTEs: saveNewTrans, updateTrans, claimDue,
 * resetCronTime), so it costs one round trip and is atomic without BEGIN/COMMIT. claimDue locks
 * with `FOR UPDATE SKIP LOCKED`, so coordinators polling at once take disjoint rows.
 *
 * The hot writes, saveNewTrans and updateTrans, are group-committed (batchWrites): calls that
 * queue while earlier statements run go out as one multi-row statement with the same per-call
 * outcome, which saves most of the per-statement CPU on both sides under load. Their SQL is of
 * fixed text, built once (./pg-hot-writes.ts), not by kysely on every call.
 */
export class PostgresStore extends GroupCommitSqlStore {
  private readonly schema: string;

  constructor(private readonly options: PostgresStoreOptions) {
    const schema = options.schema ?? "public";
    const timeoutMs = options.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS;
    const serving = postgresDb(options, schema, "serve");
    super(serving.db, isPostgresConflict,
      options.batchWrites === false ? undefined : { poolSize: options.poolSize ?? 10, wroteNothing, timeoutMs });
    this.schema = schema;
    this.closeTimeoutMs = timeoutMs;
    this.destroyConnections = serving.destroyConnections;
  }

  /**
   * On a connection of its own without the statement timeouts: a migration may wait for another
   * coordinator's (the advisory lock) or build an index on a big table, which can take longer
   * than any store call should.
   */
  async migrate(): Promise<void> {
    const { db } = postgresDb(this.options, this.schema, "migrate");
    try {
      await migratePostgres(db, this.schema, Date.now());
    } finally {
      await db.destroy();
    }
  }

  protected async saveNewTransOne(trans: NewTrans, branches: readonly NewBranch[]): Promise<"created" | "exists"> {
    const { rows } = await this.run<{ gid: string }>(SAVE_NEW_TRANS_ONE.text, saveNewTransOneParams(trans, branches));
    return rows.length === 1 ? "created" : "exists";
  }

  appendBranches(gid: string, expectedStatus: GlobalStatus, branches: readonly NewBranch[], _now: number): Promise<AppendResult> {
    return this.write(() => this.db.transaction().execute(async (trx): Promise<AppendResult> => {
      // The row lock serialises appends (and updateTrans) per gid; the next statement then runs on
      // a fresh snapshot that sees every branch committed before the lock was granted.
      const early = await this.lockForAppend(trx, gid, expectedStatus, branches.length);
      if (early) return early;
      const b = branchColumns(branches);
      const { rows } = await sql<{ conflicts: number }>`
        WITH v AS (SELECT * FROM ${unnestBranches(b)}),
        c AS (
          SELECT count(*) AS n FROM v JOIN trans_branch_op o ON o.gid = ${gid} AND o.branch_id = v.branch_id AND o.op = v.op
          WHERE o.url <> v.url OR o.status <> v.status OR coalesce(o.bin_data, ''::bytea) <> v.bin_data
        ),
        ins AS (
          INSERT INTO trans_branch_op (gid, url, bin_data, branch_id, op, status, finish_time, create_time, update_time)
          SELECT gid, url, bin_data, branch_id, op, status, ${sql.raw(msToTimestamptz("finish_time"))}, ${sql.raw(msToTimestamptz("create_time"))},
            ${sql.raw(msToTimestamptz("update_time"))}
          FROM v WHERE (SELECT n FROM c) = 0 ORDER BY ord
          ON CONFLICT (gid, branch_id, op) DO NOTHING
        )
        SELECT n AS conflicts FROM c`.execute(trx);
      return (rows[0]?.conflicts ?? 0) > 0 ? "conflict" : "saved";
    }));
  }

  protected async updateTransOne(gid: string, expected: ExpectedRow, patch: TransPatch, branches: readonly BranchUpdate[]): Promise<boolean> {
    const { rows } = await this.run<{ id: number }>(UPDATE_TRANS_ONE.text, updateTransOneParams({ gid, ...expected, patch, branches }));
    return rows.length === 1;
  }

  protected async saveNewTransBatch(ops: readonly SaveOp[]): Promise<("created" | "exists")[]> {
    const { rows } = await this.run<{ gid: string }>(SAVE_NEW_TRANS.text, saveNewTransParams(ops));
    const created = new Set(rows.map((r) => r.gid));
    return ops.map((op) => (created.has(op.trans.gid) ? "created" : "exists"));
  }

  protected async updateTransBatch(ops: readonly UpdateOp[]): Promise<boolean[]> {
    const { rows } = await this.run<{ gid: string }>(UPDATE_TRANS_BATCH.text, updateTransBatchParams(ops));
    const won = new Set(rows.map((r) => r.gid));
    return ops.map((op) => won.has(op.gid));
  }

  /** A statement of fixed text (./pg-hot-writes.ts), without kysely building it; through write() like every write. */
  private run<R>(text: string, params: unknown[]): Promise<QueryResult<R>> {
    return this.write(() => this.db.executeQuery<R>(CompiledQuery.raw(text, params)));
  }

  async claimDue(now: number, leaseUntil: number, limit: number, token: string): Promise<ClaimedTrans[]> {
    // SKIP LOCKED: rows another coordinator is claiming right now are passed over, not waited
    // for; a row changed since this statement's snapshot is re-checked against the WHERE.
    const { rows } = await this.write(() => sql<TransRow & { due_time: number; previous_owner: string }>`
      UPDATE trans_global AS g SET next_cron_time = ${date(leaseUntil)}, owner = ${token}, update_time = ${date(now)}
      FROM (
        SELECT id, next_cron_time, owner FROM trans_global
        WHERE status IN ${sql.raw(UNFINISHED_SQL)} AND next_cron_time <= ${date(now)}
        ORDER BY next_cron_time, id LIMIT ${limit}
        FOR UPDATE SKIP LOCKED
      ) AS due
      WHERE g.id = due.id
      RETURNING g.*, due.next_cron_time AS due_time, due.owner AS previous_owner`.execute(this.db));
    // RETURNING has no order: restore the oldest-due-first order of the SELECT.
    rows.sort((a, b) => a.due_time - b.due_time || a.id - b.id);
    return rows.map(({ due_time: _due, previous_owner, ...row }) => ({ ...transFromRow(row), previousOwner: previous_owner ?? "" }));
  }

  async resetCronTime(after: number, now: number, limit: number): Promise<{ count: number; hasRemaining: boolean }> {
    const { rows } = await this.write(() => sql<{ count: number; found: number }>`
      WITH c AS (
        SELECT id FROM trans_global WHERE status IN ${sql.raw(UNFINISHED_SQL)} AND next_cron_time > ${date(after)} AND owner = ''
        ORDER BY id LIMIT ${limit + 1}
      ),
      u AS (
        UPDATE trans_global SET next_cron_time = ${date(now)}, update_time = ${date(now)}
        WHERE id IN (SELECT id FROM c ORDER BY id LIMIT ${limit})
          AND status IN ${sql.raw(UNFINISHED_SQL)} AND next_cron_time > ${date(after)} AND owner = ''
        RETURNING 1
      )
      SELECT (SELECT count(*) FROM u) AS count, (SELECT count(*) FROM c) AS found`.execute(this.db));
    const r = rows[0];
    return { count: r?.count ?? 0, hasRemaining: (r?.found ?? 0) > limit };
  }

  /**
   * One statement: the oldest finished rows by the partial index trans_global_finished, locked
   * with SKIP LOCKED (two coordinators take disjoint batches), deleted with their branches. FOR
   * UPDATE re-checks the WHERE on the newest row version. `= ANY (ARRAY(...))` makes both DELETEs
   * index lookups (primary key; the (gid, branch_id, op) key) whatever the planner thinks of the
   * CTE's size: a join may pick a hash join over a scan of the whole table.
   */
  async deleteFinished(before: number, limit: number): Promise<RetentionBatch> {
    const { rows } = await this.write(() => sql<{ deleted: number }>`
      WITH c AS (
        SELECT id, gid FROM trans_global
        WHERE status IN ${sql.raw(FINISHED_SQL)} AND update_time < ${date(before)}
        ORDER BY update_time LIMIT ${limit}
        FOR UPDATE SKIP LOCKED
      ),
      t AS (DELETE FROM trans_global WHERE id = ANY (ARRAY(SELECT id FROM c)) RETURNING 1),
      b AS (DELETE FROM trans_branch_op WHERE gid = ANY (ARRAY(SELECT gid FROM c)))
      SELECT count(*) AS deleted FROM t`.execute(this.db));
    const deleted = rows[0]?.deleted ?? 0;
    return { deleted, pruned: 0, more: deleted === limit };
  }

  async createKV(cat: string, key: string, value: string, now: number): Promise<"created" | "exists"> {
    const r = await this.write(() => this.db
      .insertInto("kv")
      .values({ cat, k: key, v: value, version: 1, create_time: date(now), update_time: date(now) })
      .onConflict((oc) => oc.columns(["cat", "k"]).doNothing())
      .executeTakeFirst());
    return r.numInsertedOrUpdatedRows === 1n ? "created" : "exists";
  }
}

/** `unnest(...) WITH ORDINALITY AS v(...)`: the branches as a relation (times in epoch ms), `ord` keeping their order. */
function unnestBranches(b: BranchColumns) {
  return sql`unnest(${b.gid}::text[], ${b.url}::text[], ${b.binData}::bytea[], ${b.branchId}::text[], ${b.op}::text[],
      ${b.status}::text[], ${b.finishTime}::bigint[], ${b.createTime}::bigint[], ${b.updateTime}::bigint[])
    WITH ORDINALITY AS v(gid, url, bin_data, branch_id, op, status, finish_time, create_time, update_time, ord)`;
}

/** Deadlock (40P01) and serialization failure (40001): the statement was rolled back whole. */
function isPostgresConflict(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "40P01" || code === "40001";
}

/**
 * An error Postgres answered a statement with: it was rolled back (one statement, autocommit),
 * so its operations can run again one by one. A broken connection is not: the batch may have
 * committed before the answer was lost, and re-running it would report a lost CAS for a won one.
 */
function wroteNothing(error: unknown): boolean {
  // Not a statement_timeout (57014 query_canceled): the batch failed for time, not for one bad
  // value, and running its calls one by one would only load a server that is already slow.
  return error instanceof pg.DatabaseError && error.code !== "57014";
}
