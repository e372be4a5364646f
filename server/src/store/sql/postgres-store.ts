import { CompiledQuery, Kysely, PostgresDialect, sql } from "kysely";
import type { QueryCreator } from "kysely";
import pg from "pg";
import type { GlobalStatus } from "../../core/types.ts";
import type { TransRow } from "../rows.ts";
import { transFromRow } from "../rows.ts";
import type { AppendResult, BranchUpdate, ClaimedTrans, NewBranch, NewTrans, RetentionBatch, TransPatch } from "../store.ts";
import { branchInsert, date, FINISHED_SQL, patchSet, transInsert, UNFINISHED_SQL } from "./convert.ts";
import {
  GroupCommitSqlStore, patchFields, SET_FINISH_TIME, SET_NEXT_CRON_INTERVAL, SET_NEXT_CRON_TIME, SET_OWNER, SET_RESULT, SET_ROLLBACK_REASON,
  SET_ROLLBACK_TIME, SET_STATUS,
} from "./group-commit.ts";
import type { ExpectedRow, SaveOp, UpdateOp } from "./group-commit.ts";
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
 * outcome, which saves most of the per-statement CPU on both sides under load.
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
    const b = branchArrays(branches);
    // One statement: the branches are inserted only if the trans row was (ON CONFLICT DO NOTHING
    // returned it); an error in any branch rolls back the trans row too.
    const row = await this.write(() => this.db
      .with("t", (db) => db.insertInto("trans_global").values(transInsert(trans)).onConflict((oc) => oc.column("gid").doNothing()).returning("id"))
      .with("b", (db) => db
        .insertInto("trans_branch_op")
        .columns(["gid", "url", "bin_data", "branch_id", "op", "status", "finish_time", "create_time", "update_time"])
        .expression(sql`SELECT v.gid, v.url, v.bin_data, v.branch_id, v.op, v.status, v.finish_time, v.create_time, v.update_time
          FROM ${unnestBranches(b)}
          WHERE EXISTS (SELECT 1 FROM t) ORDER BY v.ord`))
      .selectFrom("t")
      .select((eb) => eb.fn.countAll<number>().as("created"))
      .executeTakeFirstOrThrow());
    return row.created > 0 ? "created" : "exists";
  }

  appendBranches(gid: string, expectedStatus: GlobalStatus, branches: readonly NewBranch[], _now: number): Promise<AppendResult> {
    return this.write(() => this.db.transaction().execute(async (trx): Promise<AppendResult> => {
      // The row lock serialises appends (and updateTrans) per gid; the next statement then runs on
      // a fresh snapshot that sees every branch committed before the lock was granted.
      const early = await this.lockForAppend(trx, gid, expectedStatus, branches.length);
      if (early) return early;
      const b = branchArrays(branches);
      const { rows } = await sql<{ conflicts: number }>`
        WITH v AS (SELECT * FROM ${unnestBranches(b)}),
        c AS (
          SELECT count(*) AS n FROM v JOIN trans_branch_op o ON o.gid = ${gid} AND o.branch_id = v.branch_id AND o.op = v.op
          WHERE o.url <> v.url OR o.status <> v.status OR coalesce(o.bin_data, ''::bytea) <> v.bin_data
        ),
        ins AS (
          INSERT INTO trans_branch_op (gid, url, bin_data, branch_id, op, status, finish_time, create_time, update_time)
          SELECT gid, url, bin_data, branch_id, op, status, finish_time, create_time, update_time
          FROM v WHERE (SELECT n FROM c) = 0 ORDER BY ord
          ON CONFLICT (gid, branch_id, op) DO NOTHING
        )
        SELECT n AS conflicts FROM c`.execute(trx);
      return (rows[0]?.conflicts ?? 0) > 0 ? "conflict" : "saved";
    }));
  }

  protected async updateTransOne(gid: string, expected: ExpectedRow, patch: TransPatch, branches: readonly BranchUpdate[]): Promise<boolean> {
    const { expectedStatus, expectedOwner } = expected;
    const cas = (db: QueryCreator<StoreDatabase>) => {
      const q = db.updateTable("trans_global").set(patchSet(patch)).where("gid", "=", gid).where("status", "=", expectedStatus);
      return expectedOwner === undefined ? q : q.where("owner", "=", expectedOwner);
    };
    if (branches.length === 0) {
      const r = await this.write(() => cas(this.db).executeTakeFirst());
      return r.numUpdatedRows === 1n;
    }
    // One statement: the branch UPDATE runs only if the CAS on the trans row matched (EXISTS
    // reads t, so it waits for t's row lock and sees its outcome).
    const row = await this.write(() => this.db
      .with("t", (db) => cas(db).returning("id"))
      // kysely does not parenthesise a raw CTE body.
      .with("b", () => sql`(
        UPDATE trans_branch_op AS o SET status = v.status, finish_time = v.finish_time, update_time = ${date(patch.updateTime)}
        FROM unnest(${branches.map((u) => u.branchId)}::text[], ${branches.map((u) => u.op)}::text[],
          ${branches.map((u) => u.status)}::text[], ${branches.map((u) => date(u.finishTime))}::timestamptz[])
          AS v(branch_id, op, status, finish_time)
        WHERE o.gid = ${gid} AND o.branch_id = v.branch_id AND o.op = v.op AND EXISTS (SELECT 1 FROM t))`)
      .selectFrom("t")
      .select((eb) => eb.fn.countAll<number>().as("won"))
      .executeTakeFirstOrThrow());
    return row.won === 1;
  }

  /**
   * Many saveNewTrans in one statement: trans rows in gid order (concurrent batches then wait for
   * each other's new gids in one order instead of deadlocking), and the branches of exactly the
   * trans rows that were inserted, in the callers' order so their ids ascend as inserted.
   */
  protected async saveNewTransBatch(ops: readonly SaveOp[]): Promise<("created" | "exists")[]> {
    const t = transArrays(ops.map((op) => op.trans));
    const owner: string[] = [];
    const all: NewBranch[] = [];
    for (const op of ops) {
      for (const branch of op.branches) {
        owner.push(op.trans.gid);
        all.push(branch);
      }
    }
    const b = branchArrays(all);
    const { rows } = await this.write(() => sql<{ gid: string }>`
      WITH t AS (
        INSERT INTO trans_global (gid, trans_type, status, query_prepared, protocol, create_time, update_time, finish_time,
          rollback_time, options, custom_data, next_cron_interval, next_cron_time, owner, ext_data, result, rollback_reason)
        SELECT v.gid, v.trans_type, v.status, v.query_prepared, v.protocol, v.create_time, v.update_time, v.finish_time,
          v.rollback_time, v.options, v.custom_data, v.next_cron_interval, v.next_cron_time, v.owner, v.ext_data, v.result, v.rollback_reason
        FROM unnest(${t.gid}::text[], ${t.transType}::text[], ${t.status}::text[], ${t.queryPrepared}::text[], ${t.protocol}::text[],
          ${t.createTime}::timestamptz[], ${t.updateTime}::timestamptz[], ${t.finishTime}::timestamptz[], ${t.rollbackTime}::timestamptz[],
          ${t.options}::text[], ${t.customData}::text[], ${t.nextCronInterval}::bigint[], ${t.nextCronTime}::timestamptz[],
          ${t.owner}::text[], ${t.extData}::text[], ${t.result}::text[], ${t.rollbackReason}::text[])
          AS v(gid, trans_type, status, query_prepared, protocol, create_time, update_time, finish_time, rollback_time, options,
            custom_data, next_cron_interval, next_cron_time, owner, ext_data, result, rollback_reason)
        ORDER BY v.gid
        ON CONFLICT (gid) DO NOTHING
        RETURNING gid
      ),
      b AS (
        INSERT INTO trans_branch_op (gid, url, bin_data, branch_id, op, status, finish_time, create_time, update_time)
        SELECT v.gid, v.url, v.bin_data, v.branch_id, v.op, v.status, v.finish_time, v.create_time, v.update_time
        FROM unnest(${owner}::text[], ${b.gid}::text[], ${b.url}::text[], ${b.binData}::bytea[], ${b.branchId}::text[], ${b.op}::text[],
          ${b.status}::text[], ${b.finishTime}::timestamptz[], ${b.createTime}::timestamptz[], ${b.updateTime}::timestamptz[])
          WITH ORDINALITY AS v(owner, gid, url, bin_data, branch_id, op, status, finish_time, create_time, update_time, ord)
        WHERE v.owner IN (SELECT gid FROM t)
        ORDER BY v.ord
      )
      SELECT gid FROM t`.execute(this.db));
    const created = new Set(rows.map((r) => r.gid));
    return ops.map((op) => (created.has(op.trans.gid) ? "created" : "exists"));
  }

  /**
   * Many updateTrans in one statement, each with its own expected status and patch. The trans
   * rows are locked in gid order first (concurrent batches cannot deadlock on them); the CAS is
   * (status, and the fencing token where the op has one) then the UPDATE's WHERE, re-checked on
   * the newest row version as in the single statement,
   * and only the branches of the trans rows it updated are written.
   */
  protected async updateTransBatch(ops: readonly UpdateOp[]): Promise<boolean[]> {
    const p = patchArrays(ops);
    const u = branchUpdateArrays(ops);
    const { rows } = await this.write(() => sql<{ gid: string }>`
      WITH v AS MATERIALIZED (
        SELECT * FROM unnest(${p.gid}::text[], ${p.expected}::text[], ${p.expectedOwner}::text[], ${p.mask}::int[], ${p.status}::text[],
          ${p.updateTime}::timestamptz[], ${p.finishTime}::timestamptz[], ${p.rollbackTime}::timestamptz[], ${p.rollbackReason}::text[],
          ${p.result}::text[], ${p.nextCronTime}::timestamptz[], ${p.nextCronInterval}::bigint[], ${p.owner}::text[])
          AS v(gid, expected, expected_owner, mask, status, update_time, finish_time, rollback_time, rollback_reason, result, next_cron_time,
            next_cron_interval, owner)
      ),
      l AS MATERIALIZED (
        SELECT g.id, v.* FROM trans_global AS g JOIN v ON g.gid = v.gid ORDER BY g.gid FOR UPDATE OF g
      ),
      t AS (
        UPDATE trans_global AS g SET
          status = CASE WHEN (l.mask & ${sql.lit(SET_STATUS)}) <> 0 THEN l.status ELSE g.status END,
          update_time = l.update_time,
          finish_time = CASE WHEN (l.mask & ${sql.lit(SET_FINISH_TIME)}) <> 0 THEN l.finish_time ELSE g.finish_time END,
          rollback_time = CASE WHEN (l.mask & ${sql.lit(SET_ROLLBACK_TIME)}) <> 0 THEN l.rollback_time ELSE g.rollback_time END,
          rollback_reason = CASE WHEN (l.mask & ${sql.lit(SET_ROLLBACK_REASON)}) <> 0 THEN l.rollback_reason ELSE g.rollback_reason END,
          result = CASE WHEN (l.mask & ${sql.lit(SET_RESULT)}) <> 0 THEN l.result ELSE g.result END,
          next_cron_time = CASE WHEN (l.mask & ${sql.lit(SET_NEXT_CRON_TIME)}) <> 0 THEN l.next_cron_time ELSE g.next_cron_time END,
          next_cron_interval = CASE WHEN (l.mask & ${sql.lit(SET_NEXT_CRON_INTERVAL)}) <> 0 THEN l.next_cron_interval ELSE g.next_cron_interval END,
          owner = CASE WHEN (l.mask & ${sql.lit(SET_OWNER)}) <> 0 THEN l.owner ELSE g.owner END
        FROM l
        WHERE g.id = l.id AND g.status = l.expected AND (l.expected_owner IS NULL OR g.owner = l.expected_owner)
        RETURNING g.gid, l.update_time
      ),
      b AS (
        UPDATE trans_branch_op AS o SET status = w.status, finish_time = w.finish_time, update_time = t.update_time
        FROM unnest(${u.gid}::text[], ${u.branchId}::text[], ${u.op}::text[], ${u.status}::text[], ${u.finishTime}::timestamptz[])
          AS w(gid, branch_id, op, status, finish_time)
          JOIN t ON t.gid = w.gid
        WHERE o.gid = w.gid AND o.branch_id = w.branch_id AND o.op = w.op
      )
      SELECT gid FROM t`.execute(this.db));
    const won = new Set(rows.map((r) => r.gid));
    return ops.map((op) => won.has(op.gid));
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

interface BranchArrays {
  gid: string[];
  url: string[];
  binData: Buffer[];
  branchId: string[];
  op: string[];
  status: string[];
  finishTime: (Date | null)[];
  createTime: Date[];
  updateTime: Date[];
}

/** Branches as one array per column: a fixed number of parameters whatever the branch count. */
function branchArrays(branches: readonly NewBranch[]): BranchArrays {
  const out: BranchArrays = { gid: [], url: [], binData: [], branchId: [], op: [], status: [], finishTime: [], createTime: [], updateTime: [] };
  for (const b of branches.map(branchInsert)) {
    out.gid.push(b.gid);
    out.url.push(b.url);
    out.binData.push(b.bin_data ?? Buffer.alloc(0));
    out.branchId.push(b.branch_id);
    out.op.push(b.op);
    out.status.push(b.status);
    out.finishTime.push(b.finish_time ?? null);
    out.createTime.push(b.create_time);
    out.updateTime.push(b.update_time);
  }
  return out;
}

/** `unnest(...) WITH ORDINALITY AS v(...)`: the branches as a relation, `ord` keeping their order. */
function unnestBranches(b: BranchArrays) {
  return sql`unnest(${b.gid}::text[], ${b.url}::text[], ${b.binData}::bytea[], ${b.branchId}::text[], ${b.op}::text[],
      ${b.status}::text[], ${b.finishTime}::timestamptz[], ${b.createTime}::timestamptz[], ${b.updateTime}::timestamptz[])
    WITH ORDINALITY AS v(gid, url, bin_data, branch_id, op, status, finish_time, create_time, update_time, ord)`;
}

/** Deadlock (40P01) and serialization failure (40001): the statement was rolled back whole. */
function isPostgresConflict(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "40P01" || code === "40001";
}

interface TransArrays {
  gid: string[];
  transType: string[];
  status: string[];
  queryPrepared: string[];
  protocol: string[];
  createTime: Date[];
  updateTime: Date[];
  finishTime: (Date | null)[];
  rollbackTime: (Date | null)[];
  options: string[];
  customData: string[];
  nextCronInterval: number[];
  nextCronTime: Date[];
  owner: string[];
  extData: string[];
  result: string[];
  rollbackReason: string[];
}

/** New trans rows as one array per column, converted exactly as the single insert converts them (transInsert). */
function transArrays(trans: readonly NewTrans[]): TransArrays {
  const out: TransArrays = {
    gid: [], transType: [], status: [], queryPrepared: [], protocol: [], createTime: [], updateTime: [], finishTime: [], rollbackTime: [],
    options: [], customData: [], nextCronInterval: [], nextCronTime: [], owner: [], extData: [], result: [], rollbackReason: [],
  };
  for (const r of trans.map(transInsert)) {
    out.gid.push(r.gid);
    out.transType.push(r.trans_type);
    out.status.push(r.status);
    out.queryPrepared.push(r.query_prepared ?? "");
    out.protocol.push(r.protocol);
    out.createTime.push(r.create_time);
    out.updateTime.push(r.update_time);
    out.finishTime.push(r.finish_time ?? null);
    out.rollbackTime.push(r.rollback_time ?? null);
    out.options.push(r.options ?? "");
    out.customData.push(r.custom_data ?? "");
    out.nextCronInterval.push(r.next_cron_interval);
    out.nextCronTime.push(r.next_cron_time);
    out.owner.push(r.owner ?? "");
    out.extData.push(r.ext_data ?? "");
    out.result.push(r.result ?? "");
    out.rollbackReason.push(r.rollback_reason ?? "");
  }
  return out;
}

interface PatchArrays {
  gid: string[];
  expected: string[];
  expectedOwner: (string | null)[];
  mask: number[];
  status: (string | null)[];
  updateTime: (Date | null)[];
  finishTime: (Date | null)[];
  rollbackTime: (Date | null)[];
  rollbackReason: (string | null)[];
  result: (string | null)[];
  nextCronTime: (Date | null)[];
  nextCronInterval: (number | null)[];
  owner: (string | null)[];
}

/** The CAS and patch of each updateTrans as one array per column plus the mask of set fields (patchFields). */
function patchArrays(ops: readonly UpdateOp[]): PatchArrays {
  const out: PatchArrays = {
    gid: [], expected: [], expectedOwner: [], mask: [], status: [], updateTime: [], finishTime: [], rollbackTime: [], rollbackReason: [],
    result: [], nextCronTime: [], nextCronInterval: [], owner: [],
  };
  for (const op of ops) {
    const { mask, values } = patchFields(op.patch);
    out.gid.push(op.gid);
    out.expected.push(op.expectedStatus);
    out.expectedOwner.push(op.expectedOwner ?? null);
    out.status.push(values.status);
    out.updateTime.push(date(op.patch.updateTime));
    out.finishTime.push(values.finish_time);
    out.rollbackTime.push(values.rollback_time);
    out.rollbackReason.push(values.rollback_reason);
    out.result.push(values.result);
    out.nextCronTime.push(values.next_cron_time);
    out.nextCronInterval.push(values.next_cron_interval);
    out.owner.push(values.owner);
    out.mask.push(mask);
  }
  return out;
}

interface BranchUpdateArrays {
  gid: string[];
  branchId: string[];
  op: string[];
  status: string[];
  finishTime: Date[];
}

/** The branch updates of all ops, each tagged with its op's gid. */
function branchUpdateArrays(ops: readonly UpdateOp[]): BranchUpdateArrays {
  const out: BranchUpdateArrays = { gid: [], branchId: [], op: [], status: [], finishTime: [] };
  for (const op of ops) {
    for (const u of op.branches) {
      out.gid.push(op.gid);
      out.branchId.push(u.branchId);
      out.op.push(u.op);
      out.status.push(u.status);
      out.finishTime.push(date(u.finishTime));
    }
  }
  return out;
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
