/**
 * The SQL barrier (docs/protocol.md#barrier-algorithm and docs/protocol.md#msg-check-back) over pg, mysql2/promise, Kysely, or any driver
 * wrapped as a {@link BarrierSqlTx}.
 */
import { createHash } from "node:crypto";
import { BarrierError, barrierDuplicated, barrierFailure } from "./errors.ts";
import type {
  BarrierResult,
  BarrierSqlTx,
  BranchInfo,
  KyselyExecutorLike,
  MysqlConnectionLike,
  MysqlPoolLike,
  PgPoolLike,
  PgQueryable,
  PgQueryResultLike,
  SqlDialect,
} from "./types.ts";

/** One statement at a time against the caller's connection. */
export interface SqlRunner {
  readonly dialect: SqlDialect;
  /** Runs a statement; resolves to the number of rows it changed. */
  exec(sql: string, params: readonly unknown[]): Promise<number>;
  /** Runs a query; resolves to its rows. */
  rows(sql: string, params: readonly unknown[]): Promise<readonly Record<string, unknown>[]>;
}

/** The row the msg check-back looks for (docs/protocol.md#msg-check-back). */
export const MSG_BRANCH_ID = "00";
export const MSG_OP = "msg";
export const MSG_BARRIER_ID = "01";
export const ROLLBACK_REASON = "rollback";

/** The op whose row a compensation inserts to block it (SQL: rollback too, for XA). */
const SQL_ORIGIN_OP: Readonly<Record<string, string>> = { cancel: "try", compensate: "action", rollback: "action" };

export function sqlOriginOp(op: string): string | undefined {
  return Object.hasOwn(SQL_ORIGIN_OP, op) ? SQL_ORIGIN_OP[op] : undefined;
}

// ---------------------------------------------------------------------------------------------
// Statements

const PG_INSERT_COLUMNS = "trans_type, gid, branch_id, op, barrier_id, reason, create_time, update_time";
const PG_ON_CONFLICT = "on conflict (gid, branch_id, op, barrier_id) do nothing";

function insertIgnoreSql(dialect: SqlDialect, table: string): string {
  return dialect === "mysql"
    ? `insert ignore into ${table}(trans_type, gid, branch_id, op, barrier_id, reason) values(?,?,?,?,?,?)`
    : // The conflict target is the unique key's columns rather than `ON CONSTRAINT uniq_barrier`,
      // so a table whose unique index has another name works too. Postgres has no column
      // defaults for the times in dtm's DDL, so they are set here.
      `insert into ${table}(${PG_INSERT_COLUMNS}) values($1,$2,$3,$4,$5,$6,now(),now()) ${PG_ON_CONFLICT}`;
}

function selectReasonSql(dialect: SqlDialect, table: string): string {
  return dialect === "mysql"
    ? `select reason from ${table} where gid=? and branch_id=? and op=? and barrier_id=?`
    : `select reason from ${table} where gid=$1 and branch_id=$2 and op=$3 and barrier_id=$4`;
}

export interface BarrierRowValues {
  transType: string;
  gid: string;
  branchId: string;
  op: string;
  barrierId: string;
  reason: string;
}

export function insertBarrier(runner: SqlRunner, table: string, row: BarrierRowValues): Promise<number> {
  return runner.exec(insertIgnoreSql(runner.dialect, table), [row.transType, row.gid, row.branchId, row.op, row.barrierId, row.reason]);
}

/** Values that may be written into SQL as literals: the coordinator's gid alphabet. */
const LITERAL_SAFE = /^[A-Za-z0-9_.:-]{1,128}$/;

/** The barrier INSERT as a server-side prepared statement, per table. */
interface PgPreparedInsert {
  /** `dtx_barrier_` + a hash of the statement: one name is always one statement text. */
  readonly name: string;
  readonly prepare: string;
}

const pgPreparedInserts = new Map<string, PgPreparedInsert>();

export function pgPreparedInsert(table: string): PgPreparedInsert {
  let p = pgPreparedInserts.get(table);
  if (!p) {
    const body = `insert into ${table}(${PG_INSERT_COLUMNS}) values($1,$2,$3,$4,$5,$6,now(),now()) ${PG_ON_CONFLICT}`;
    const name = `dtx_barrier_${createHash("sha256").update(body).digest("hex").slice(0, 20)}`;
    p = { name, prepare: `PREPARE ${name}(text,text,text,text,text,text) AS ${body}` };
    pgPreparedInserts.set(table, p);
  }
  return p;
}

/**
 * Per pg client object: the prepared statement names known to exist on its connection, or
 * `false` once the connection lost one (DISCARD ALL, DEALLOCATE, a pooler that moves sessions
 * between server connections): that client then uses plain statements.
 */
const pgPreparedOn = new WeakMap<object, Set<string> | false>();

function pgErrorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function pgCounts(results: unknown, statements: number, rows: number): number[] {
  if (!Array.isArray(results) || results.length !== statements) {
    throw new Error("the pg client did not answer a multi-statement query with one result per statement; pass { pgBatchBegin: false }");
  }
  return (results as PgQueryResultLike[]).slice(statements - rows).map((r) => r.rowCount ?? 0);
}

/**
 * Postgres: sends `BEGIN` and the barrier INSERTs for `rows` (origin first) in one round trip
 * (one simple-protocol query with several statements) and resolves to the rows each INSERT
 * inserted; when every value is in {@link LITERAL_SAFE}, so that no escaping is needed. Returns
 * undefined, having sent nothing, when a value is outside it: then the caller sends BEGIN alone
 * and the INSERTs with parameters.
 *
 * With `prepare`, the INSERT is a prepared statement on the connection (`PREPARE` sent with the
 * first batch on each client, then `BEGIN;EXECUTE name(...)`): the server then skips parsing and
 * planning it, about a third of what the INSERT costs Postgres. A client whose connection lost
 * the statement falls back to plain INSERTs for good (one extra ROLLBACK, once).
 */
export function pgBeginWithInserts(client: PgQueryable, table: string, rows: readonly BarrierRowValues[], prepare = true): Promise<number[]> | undefined {
  const values: string[] = [];
  for (const r of rows) {
    if (!LITERAL_SAFE.test(r.transType) || !LITERAL_SAFE.test(r.gid) || !LITERAL_SAFE.test(r.branchId) || !LITERAL_SAFE.test(r.op) || !LITERAL_SAFE.test(r.barrierId) || !LITERAL_SAFE.test(r.reason)) {
      return undefined;
    }
    values.push(`'${r.transType}','${r.gid}','${r.branchId}','${r.op}','${r.barrierId}','${r.reason}'`);
  }
  const n = rows.length;
  // No values argument: node-postgres then uses the simple query protocol, which allows
  // several statements and answers with one result per statement.
  const known = prepare ? pgPreparedOn.get(client) : false;
  if (known === false) return pgPlainBatch(client, table, values);
  const p = pgPreparedInsert(table);
  const executes = values.map((v) => `EXECUTE ${p.name}(${v})`).join(";");
  if (known?.has(p.name)) {
    return client.query(`BEGIN;${executes}`).then(
      (results) => pgCounts(results, n + 1, n),
      (err: unknown) => pgLostStatement(client, table, values, err),
    );
  }
  return client.query(`${p.prepare};BEGIN;${executes}`).then(
    (results) => {
      pgMarkPrepared(client, p.name);
      return pgCounts(results, n + 2, n);
    },
    async (err: unknown) => {
      // 42P05: the connection has it already (a new client object on an old connection).
      // PREPARE was the first statement, so nothing else ran and no transaction is open.
      if (pgErrorCode(err) !== "42P05") throw err;
      pgMarkPrepared(client, p.name);
      return pgCounts(await client.query(`BEGIN;${executes}`).catch((e: unknown) => pgLostStatement(client, table, values, e)), n + 1, n);
    },
  );
}

function pgMarkPrepared(client: PgQueryable, name: string): void {
  let known = pgPreparedOn.get(client);
  if (!known) pgPreparedOn.set(client, (known = new Set()));
  known.add(name);
}

/** 26000: the connection does not have the statement (any more). BEGIN ran: roll back, go plain. */
async function pgLostStatement(client: PgQueryable, table: string, values: string[], err: unknown): Promise<number[]> {
  if (pgErrorCode(err) !== "26000") throw err;
  pgPreparedOn.set(client, false);
  await client.query("ROLLBACK");
  return pgPlainBatch(client, table, values);
}

async function pgPlainBatch(client: PgQueryable, table: string, values: string[]): Promise<number[]> {
  const inserts = values.map((v) => `insert into ${table}(${PG_INSERT_COLUMNS}) values(${v},now(),now()) ${PG_ON_CONFLICT}`);
  return pgCounts(await client.query(`BEGIN;${inserts.join(";")}`), values.length + 1, values.length);
}

// ---------------------------------------------------------------------------------------------
// The algorithm

/** The barrier rows a call inserts, the origin op's first (docs/protocol.md#barrier-algorithm). */
export function barrierRows(info: BranchInfo, barrierId: string): BarrierRowValues[] {
  const originOp = sqlOriginOp(info.op);
  const row = (op: string): BarrierRowValues => ({ transType: info.transType, gid: info.gid, branchId: info.branchId, op, barrierId, reason: info.op });
  return originOp === undefined ? [row(info.op)] : [row(originOp), row(info.op)];
}

/**
 * What the INSERTs' counts (one per row of {@link barrierRows}) mean: a skip, or undefined when
 * the business is to run. Throws DUPLICATED for a msg whose row was there.
 */
export function barrierSkip(info: BranchInfo, barrierId: string, counts: readonly number[]): BarrierResult<never> | undefined {
  const originAffected = counts.length === 2 ? (counts[0] ?? 0) : 0;
  const currentAffected = counts[counts.length - 1] ?? 0;
  if (info.op === MSG_OP && currentAffected === 0) {
    throw barrierDuplicated(`msg barrier for gid ${info.gid} already exists: the local transaction ran before or the check-back rolled it back`);
  }
  if (originAffected > 0) return { executed: false, skipped: "null_compensation", barrierId };
  if (currentAffected === 0) return { executed: false, skipped: "duplicate_or_hanging", barrierId };
  return undefined;
}

/**
 * docs/protocol.md#barrier-algorithm, inside the caller's transaction. The caller commits when this resolves and
 * rolls back when it rejects.
 */
export async function sqlBarrierCall<T>(info: BranchInfo, table: string, barrierId: string, runner: SqlRunner, busi: () => Promise<T>): Promise<BarrierResult<T>> {
  const counts: number[] = [];
  for (const row of barrierRows(info, barrierId)) counts.push(await insertBarrier(runner, table, row));
  return barrierSkip(info, barrierId, counts) ?? { executed: true, value: await busi(), barrierId };
}

/**
 * docs/protocol.md#msg-check-back: insert the rollback marker if the msg row is absent (waiting while a local
 * transaction holds it), then read the reason. `rollback` -> FAILURE; anything else -> success.
 */
export async function sqlQueryPrepared(info: BranchInfo, table: string, runner: SqlRunner): Promise<void> {
  await insertBarrier(runner, table, {
    transType: info.transType,
    gid: info.gid,
    branchId: MSG_BRANCH_ID,
    op: MSG_OP,
    barrierId: MSG_BARRIER_ID,
    reason: ROLLBACK_REASON,
  });
  const rows = await runner.rows(selectReasonSql(runner.dialect, table), [info.gid, MSG_BRANCH_ID, MSG_OP, MSG_BARRIER_ID]);
  const reason = rows[0]?.["reason"];
  if (reason === ROLLBACK_REASON) throw barrierFailure(`msg ${info.gid} was rolled back FAILURE`);
  if (rows.length === 0) throw new Error(`msg barrier row for gid ${info.gid} is missing after the insert`);
}

// ---------------------------------------------------------------------------------------------
// Drivers

function isObject(x: unknown): x is Record<string, unknown> {
  return (typeof x === "object" || typeof x === "function") && x !== null;
}

function hasFn(x: Record<string, unknown>, name: string): boolean {
  return typeof x[name] === "function";
}

export type SqlKind = "custom" | "kysely" | "mysql-pool" | "mysql" | "pg-pool" | "pg";

/** Tells the driver object apart by its methods. */
export function sqlKind(db: unknown): SqlKind | undefined {
  if (!isObject(db)) return undefined;
  if (db["barrierDialect"] === "postgres" || db["barrierDialect"] === "mysql") {
    if (hasFn(db, "execute")) return "custom";
  }
  if (hasFn(db, "executeQuery") && "isTransaction" in db) return "kysely";
  if (hasFn(db, "getConnection") && hasFn(db, "query")) return "mysql-pool";
  if (hasFn(db, "beginTransaction") && hasFn(db, "query")) return "mysql";
  if (hasFn(db, "query") && hasFn(db, "connect") && "totalCount" in db && "idleCount" in db) return "pg-pool";
  if (hasFn(db, "query")) return "pg";
  return undefined;
}

export function pgRunner(client: PgQueryable): SqlRunner {
  return {
    dialect: "postgres",
    async exec(sql, params) {
      return (await client.query(sql, [...params])).rowCount ?? 0;
    },
    async rows(sql, params) {
      return (await client.query(sql, [...params])).rows as Record<string, unknown>[];
    },
  };
}

function mysqlRunner(conn: Pick<MysqlConnectionLike, "query">): SqlRunner {
  return {
    dialect: "mysql",
    async exec(sql, params) {
      const [result] = await conn.query(sql, [...params]);
      const affected = isObject(result) ? result["affectedRows"] : undefined;
      return typeof affected === "number" ? affected : 0;
    },
    async rows(sql, params) {
      const [rows] = await conn.query(sql, [...params]);
      return Array.isArray(rows) ? (rows as Record<string, unknown>[]) : [];
    },
  };
}

interface KyselyModule {
  CompiledQuery: { raw(sql: string, parameters?: unknown[]): unknown };
  sql: {
    (strings: TemplateStringsArray, ...values: unknown[]): { compile(executor: unknown): { sql: string } };
    id(name: string): unknown;
  };
}

let kyselyModule: Promise<KyselyModule> | undefined;

function loadKysely(): Promise<KyselyModule> {
  // Loaded on first use only: kysely is an optional peer dependency.
  kyselyModule ??= import("kysely") as Promise<KyselyModule>;
  return kyselyModule;
}

/**
 * The dialect of a Kysely instance, told from how it compiles a parameter and an identifier
 * (public API only): `$1` + `"x"` is Postgres, `?` + `` `x` `` is MySQL.
 */
async function kyselyDialect(db: KyselyExecutorLike, explicit: SqlDialect | undefined): Promise<SqlDialect> {
  if (explicit) return explicit;
  const { sql } = await loadKysely();
  const compiled = sql`select ${sql.id("x")} where ${1}`.compile(db).sql;
  if (compiled.includes("$1") && compiled.includes('"x"')) return "postgres";
  if (compiled.includes("?") && compiled.includes("`x`")) return "mysql";
  throw new BarrierError("BARRIER_UNSUPPORTED_DB", `the barrier supports Kysely on Postgres and MySQL only (compiled SQL: ${compiled}); pass options.dialect if this is one of them`);
}

async function kyselyRunner(db: KyselyExecutorLike, explicit: SqlDialect | undefined): Promise<SqlRunner> {
  const [{ CompiledQuery }, dialect] = await Promise.all([loadKysely(), kyselyDialect(db, explicit)]);
  return {
    dialect,
    async exec(sql, params) {
      const r = await db.executeQuery(CompiledQuery.raw(sql, [...params]));
      return Number(r.numAffectedRows ?? 0n);
    },
    async rows(sql, params) {
      return (await db.executeQuery(CompiledQuery.raw(sql, [...params]))).rows as Record<string, unknown>[];
    },
  };
}

function customRunner(tx: BarrierSqlTx): SqlRunner {
  return {
    dialect: tx.barrierDialect,
    async exec(sql, params) {
      return (await tx.execute(sql, params)).affectedRows;
    },
    async rows(sql, params) {
      return (await tx.execute(sql, params)).rows;
    },
  };
}

/**
 * A runner for a connection that is inside the caller's transaction. Pools and a non-transaction
 * Kysely are refused: their statements could run on different connections.
 */
export async function txRunner(tx: unknown, dialect: SqlDialect | undefined): Promise<SqlRunner> {
  const kind = sqlKind(tx);
  switch (kind) {
    case "custom":
      return customRunner(tx as BarrierSqlTx);
    case "kysely":
      if (!(tx as KyselyExecutorLike).isTransaction) {
        throw new BarrierError("BARRIER_NOT_IN_TRANSACTION", "call() needs a Kysely Transaction (db.transaction().execute(trx => bb.call(trx, fn))), or use callWithKysely(db, fn)");
      }
      return kyselyRunner(tx as KyselyExecutorLike, dialect);
    case "mysql":
      return mysqlRunner(tx as MysqlConnectionLike);
    case "pg":
      return pgRunner(tx as PgQueryable);
    case "mysql-pool":
    case "pg-pool":
      throw new BarrierError("BARRIER_NOT_IN_TRANSACTION", "call() needs one connection inside a transaction, not a pool: use callWithPg(pool, fn) / callWithMysql(pool, fn), or check out a connection and BEGIN");
    default:
      throw new BarrierError("BARRIER_UNSUPPORTED_DB", "call() supports pg clients, mysql2/promise connections, Kysely transactions and BarrierSqlTx adapters");
  }
}

/** A runner for autocommit statements (the check-back): pools are fine here. */
export async function autocommitRunner(db: unknown, dialect: SqlDialect | undefined): Promise<SqlRunner> {
  const kind = sqlKind(db);
  switch (kind) {
    case "custom":
      return customRunner(db as BarrierSqlTx);
    case "kysely":
      return kyselyRunner(db as KyselyExecutorLike, dialect);
    case "mysql":
    case "mysql-pool":
      return mysqlRunner(db as MysqlPoolLike);
    case "pg":
    case "pg-pool":
      return pgRunner(db as PgPoolLike);
    default:
      throw new BarrierError("BARRIER_UNSUPPORTED_DB", "queryPrepared() supports pg pools/clients, mysql2/promise pools/connections, Kysely and BarrierSqlTx adapters");
  }
}
