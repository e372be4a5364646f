/**
 * The participant (RM) side of XA (docs/protocol.md#xa and docs/protocol.md#xa-barrier): the local XA transaction of a branch
 * and its phase 2, for MySQL/MariaDB (`XA START/END/PREPARE/COMMIT/ROLLBACK`) and PostgreSQL
 * (`BEGIN` / `PREPARE TRANSACTION` / `COMMIT PREPARED` / `ROLLBACK PREPARED`).
 */
import type { DtxClient } from "./client.ts";
import { clientForServer } from "./client.ts";
import { DtxError, invalidArgument, messageOf } from "./errors.ts";
import type { BranchInfo, BranchRequestInfo } from "./types.ts";

/** The SQL dialects XA supports. */
export type XaDialect = "mysql" | "postgres";

/**
 * A database connection XA can drive: one session (not a pool) in autocommit mode. Build it with
 * {@link mysqlXa} or {@link postgresXa}; `raw` is handed back to the business function.
 */
export interface XaConnection<C = unknown> {
  readonly dialect: XaDialect;
  /** The driver's connection, as given. */
  readonly raw: C;
  /** Runs one statement (`?` placeholders for mysql, `$1` for postgres) and returns its rows (mysql) or result. */
  exec(sql: string, params?: readonly unknown[]): Promise<unknown>;
  /**
   * Ends the session after `XA PREPARE` (mysql): a MySQL/MariaDB XA transaction stays attached to
   * the session that prepared it (which can then start no other transaction, and whose prepared
   * transaction no other session can commit) until that session closes.
   */
  endSession?(): Promise<void>;
}

/** The part of a `mysql2/promise` Connection / PoolConnection XA uses. */
export interface MysqlXaLike {
  query(sql: string, values?: unknown): Promise<unknown>;
  /** mysql2 `destroy()`: closes the socket (a PoolConnection also leaves its pool; a later `release()` is harmless). */
  destroy?(): void;
  /** mysql2 `end()`: a graceful close (COM_QUIT), used for a dedicated Connection. */
  end?(): Promise<void>;
  /** Present on a PoolConnection, whose `end()` would only release it to the pool. */
  release?(): void;
}

/** The part of a `pg` Client / PoolClient XA uses. */
export interface PgXaLike {
  query(text: string, values?: unknown[]): Promise<unknown>;
}

/**
 * Wraps a `mysql2/promise` connection: one session, a Connection or a PoolConnection, never a
 * Pool. After a successful `XA PREPARE`, {@link xaLocalTransaction} closes the session (see
 * {@link XaConnection.endSession}): a dedicated Connection gracefully with `end()`, which hands
 * the prepared transaction over to the server before the branch answers (preferred); a
 * PoolConnection with `destroy()` (it leaves the pool; releasing it afterwards is harmless), where
 * the server detaches the transaction a moment later. For phase 2 any session works and is left open.
 */
export function mysqlXa<C extends MysqlXaLike>(conn: C): XaConnection<C> {
  return {
    dialect: "mysql",
    raw: conn,
    exec: async (sql, params) => {
      const result = await conn.query(sql, params === undefined ? undefined : [...params]);
      return Array.isArray(result) ? (result as unknown[])[0] : result;
    },
    endSession: async () => {
      if (conn.end && !conn.release) await conn.end();
      else conn.destroy?.();
    },
  };
}

/** Wraps a `pg` Client or PoolClient (one session, never a Pool). `PREPARE TRANSACTION` detaches the transaction, so the session stays usable. */
export function postgresXa<C extends PgXaLike>(client: C): XaConnection<C> {
  return { dialect: "postgres", raw: client, exec: (sql, params) => client.query(sql, params === undefined ? undefined : [...params]) };
}

/** Options of {@link xaLocalTransaction} and {@link xaPhase2}. */
export interface XaOptions {
  /** The coordinator connection used to register the branch (default: one for the request's `dtm`). */
  readonly client?: DtxClient;
  /**
   * The barrier table (`database.table` / `schema.table`, dtm's DDL) that receives the XA barrier
   * rows (docs/protocol.md#xa-barrier); `false` to skip them. Default `dtm_barrier.barrier`.
   */
  readonly barrierTable?: string | false;
}

/** dtm's default barrier table. */
export const DEFAULT_XA_BARRIER_TABLE = "dtm_barrier.barrier";
const SAFE_ID = /^[A-Za-z0-9_.:-]+$/;
const TABLE_NAME = /^[A-Za-z0-9_$]+(\.[A-Za-z0-9_$]+)?$/;

/** The XA transaction id of a branch: `<gid>-<branch_id>` (validated: it is spliced into SQL). */
export function xaId(gid: string, branchId: string, dialect: XaDialect): string {
  if (!SAFE_ID.test(gid) || !SAFE_ID.test(branchId)) throw invalidArgument(`gid and branch_id must match [A-Za-z0-9_.:-]+ for XA; got ${JSON.stringify(gid)}, ${JSON.stringify(branchId)}`);
  const xid = `${gid}-${branchId}`;
  const max = dialect === "mysql" ? 64 : 200;
  if (xid.length > max) throw invalidArgument(`the XA id ${xid} is longer than ${dialect}'s limit of ${max} characters`);
  return xid;
}

/** The XA statements of a dialect (Go `GetXaSQL`); "" when the dialect needs none. */
export function xaSql(dialect: XaDialect, op: "start" | "end" | "prepare" | "commit" | "rollback" | "abandon", xid: string): string {
  if (dialect === "mysql") {
    if (op === "abandon") return `XA ROLLBACK '${xid}'`;
    return `XA ${op.toUpperCase()} '${xid}'`;
  }
  switch (op) {
    case "start":
      return "BEGIN";
    case "end":
      return "";
    case "prepare":
      return `PREPARE TRANSACTION '${xid}'`;
    case "commit":
      return `COMMIT PREPARED '${xid}'`;
    case "rollback":
      return `ROLLBACK PREPARED '${xid}'`;
    case "abandon":
      return "ROLLBACK";
  }
}

function barrierTable(options: XaOptions): string | undefined {
  if (options.barrierTable === false) return undefined;
  const table = options.barrierTable ?? DEFAULT_XA_BARRIER_TABLE;
  if (!TABLE_NAME.test(table)) throw invalidArgument(`barrierTable must be name or schema.name of [A-Za-z0-9_$]; got ${JSON.stringify(table)}`);
  return table;
}

/** The rows a statement changed, from a mysql2 ResultSetHeader or a pg result; undefined when the driver does not say. */
function changedRows(result: unknown): number | undefined {
  const r = result as { affectedRows?: unknown; rowCount?: unknown } | null | undefined;
  if (typeof r?.affectedRows === "number") return r.affectedRows;
  if (typeof r?.rowCount === "number") return r.rowCount;
  return undefined;
}

/**
 * Inserts a barrier row `(xa, gid, branch_id, action, 01, reason)`, ignoring a duplicate; resolves
 * to the rows inserted (0: the row was there), or undefined when the driver does not say.
 */
async function insertXaBarrier(conn: XaConnection, table: string, gid: string, branchId: string, reason: string): Promise<number | undefined> {
  const values = ["xa", gid, branchId, "action", "01", reason];
  if (conn.dialect === "mysql") {
    return changedRows(await conn.exec(`insert ignore into ${table}(trans_type, gid, branch_id, op, barrier_id, reason) values(?,?,?,?,?,?)`, values));
  }
  return changedRows(await conn.exec(`insert into ${table}(trans_type, gid, branch_id, op, barrier_id, reason) values($1,$2,$3,$4,$5,$6) on conflict do nothing`, values));
}

/**
 * The participant's XA branch handler (Go `XaLocalTransaction`). For `op=action` it runs the
 * local XA transaction: start (xid `gid-branch_id`), insert the XA barrier row, run `fn`,
 * register the branch with the coordinator (`url` = the request's `phase2_url`), end and prepare;
 * on any error it rolls the local transaction back and rethrows. For `op=commit` / `op=rollback`
 * (the coordinator's phase 2 on the same URL) it runs {@link xaPhase2} and resolves `undefined`.
 *
 * ```ts
 * // fastify: register fastifyJsonParser, since phase 2 is a POST with no body
 * app.post("/xa/TransIn", fastifyHandler(async (req: FastifyRequest) => {
 *   const conn = await mysql.createConnection(url); // a dedicated session, closed after XA PREPARE
 *   try {
 *     await xaLocalTransaction(branchInfoFromQuery(req.query as Record<string, string>), mysqlXa(conn), async (c) => {
 *       await c.query("update account set balance = balance + ? where id = ?", [30, 2]);
 *     });
 *   } finally { conn.destroy(); }
 * }));
 * ```
 *
 * @param info the branch request (see `branchInfoFromQuery`): gid, branch_id, op, `dtm`, `phase2_url`
 * @param conn one database session wrapped by {@link mysqlXa} / {@link postgresXa}
 * @param fn the business SQL, given the raw connection and the branch info
 * @param options coordinator client and barrier table
 */
export async function xaLocalTransaction<C, T>(
  info: BranchRequestInfo,
  conn: XaConnection<C>,
  fn: (conn: C, info: BranchRequestInfo) => Promise<T>,
  options: XaOptions = {},
): Promise<T | undefined> {
  if (info.op === "commit" || info.op === "rollback") {
    await xaPhase2(info, conn, options);
    return undefined;
  }
  if (info.op !== "action") throw invalidArgument(`an XA branch request has op action, commit or rollback; got ${JSON.stringify(info.op)}`);
  if (!info.phase2Url) throw invalidArgument("the XA branch request has no phase2_url");
  const client = options.client ?? clientForServer(info.dtm);
  const phase2Url = info.phase2Url;
  return prepareLocal(conn, info, options, (c) => fn(c, info), () =>
    client.transport.registerBranch({ gid: info.gid, transType: "xa", branchId: info.branchId, data: new Uint8Array(0), extra: { url: phase2Url } }),
  );
}

/**
 * Runs `fn` in a local XA transaction (xid `gid-branch_id`) on `conn` and prepares it (Go
 * `XaHandleLocalTrans`): start, the XA barrier row, `fn`, `beforePrepare`, end, prepare, then
 * the session is ended ({@link XaConnection.endSession}). On any error the local transaction is
 * rolled back and the error rethrown. Phase 2 is {@link xaPhase2}.
 *
 * When the barrier row is already there, the branch ran before (its XA transaction committed) or
 * was rolled back (phase 2 left the row): the local transaction is rolled back and DUPLICATED is
 * thrown, before `fn` runs. Without this, a second run of the branch (two executions of one
 * workflow step, a late action after its rollback) would prepare the same xid again once the
 * first had ended, and a later phase 2 would commit it: the business applied twice. A run that
 * meets a prepared, undecided transaction of the same branch waits for it (the row is locked).
 *
 * @param info gid and branch_id of the branch
 * @param conn one database session
 * @param options the barrier table
 * @param fn the business SQL, given the raw connection
 * @param beforePrepare runs after `fn`, before `XA END`/`PREPARE` (the HTTP branch registers itself there)
 */
export async function prepareLocal<C, T>(
  conn: XaConnection<C>,
  info: Pick<BranchInfo, "gid" | "branchId">,
  options: XaOptions,
  fn: (conn: C) => Promise<T>,
  beforePrepare?: () => Promise<unknown>,
): Promise<T> {
  const xid = xaId(info.gid, info.branchId, conn.dialect);
  const table = barrierTable(options);
  await conn.exec(xaSql(conn.dialect, "start", xid));
  let ended = false;
  try {
    if (table && (await insertXaBarrier(conn, table, info.gid, info.branchId, "action")) === 0) {
      throw new DtxError("DUPLICATED", `XA branch ${info.gid}/${info.branchId} ran before or was rolled back (its barrier row exists): not run again`);
    }
    const result = await fn(conn.raw);
    await beforePrepare?.();
    const end = xaSql(conn.dialect, "end", xid);
    if (end) await conn.exec(end);
    ended = true;
    await conn.exec(xaSql(conn.dialect, "prepare", xid));
    await conn.endSession?.();
    return result;
  } catch (err) {
    await abandon(conn, xid, ended);
    throw err;
  }
}

/** Rolls back a local XA transaction that did not reach PREPARE. Errors are ignored: the session may already be clean. */
async function abandon(conn: XaConnection, xid: string, ended: boolean): Promise<void> {
  try {
    if (conn.dialect === "mysql" && !ended) await conn.exec(xaSql("mysql", "end", xid));
  } catch {
    // already ended, or the XA transaction is gone
  }
  try {
    await conn.exec(xaSql(conn.dialect, "abandon", xid));
  } catch {
    // nothing to roll back
  }
}

/**
 * Whether the XA transaction `xid` is prepared (`XA RECOVER` on MySQL/MariaDB, `pg_prepared_xacts`
 * on PostgreSQL): its local work is done and waits for phase 2.
 */
export async function xaPrepared(conn: XaConnection, xid: string): Promise<boolean> {
  if (conn.dialect === "mysql") return mysqlStillPrepared(conn, xid);
  const result = (await conn.exec("select 1 from pg_prepared_xacts where gid = $1", [xid])) as { rowCount?: number | null };
  return (result.rowCount ?? 0) > 0;
}

/** Whether `XA RECOVER` lists `xid`: a MySQL/MariaDB XAER_NOTA then only means another session still holds it. */
async function mysqlStillPrepared(conn: XaConnection, xid: string): Promise<boolean> {
  const rows = await conn.exec("XA RECOVER");
  if (!Array.isArray(rows)) return false;
  return rows.some((row: unknown) => {
    const data = (row as { data?: unknown }).data;
    const text = Buffer.isBuffer(data) ? data.toString("utf8") : typeof data === "string" ? data : "";
    return text === xid;
  });
}

/**
 * The XA phase 2 (Go `XaHandlePhase2`): `XA COMMIT` / `XA ROLLBACK` (postgres: `COMMIT PREPARED` /
 * `ROLLBACK PREPARED`) of xid `gid-branch_id`. An unknown xid (`XAER_NOTA`, "does not exist": a
 * repeated call, or a branch that never prepared) is success, unless MySQL's `XA RECOVER` still
 * lists it (it is attached to a session that has not closed yet: UNAVAILABLE, retried). After a rollback it inserts the
 * barrier row `(xa, gid, branch, action, 01, rollback)`, so that a late prepare of that branch
 * cannot commit. Run it on a session in autocommit mode that has no XA transaction of its own.
 *
 * @param info the coordinator's request: gid, branch_id and op (`commit` or `rollback`)
 * @param conn one database session
 * @param options the barrier table
 */
export async function xaPhase2(info: BranchInfo, conn: XaConnection, options: XaOptions = {}): Promise<void> {
  if (info.op !== "commit" && info.op !== "rollback") throw invalidArgument(`XA phase 2 takes op commit or rollback; got ${JSON.stringify(info.op)}`);
  const xid = xaId(info.gid, info.branchId, conn.dialect);
  try {
    await conn.exec(xaSql(conn.dialect, info.op, xid));
  } catch (err) {
    const text = messageOf(err);
    if (!text.includes("XAER_NOTA") && !text.includes("does not exist")) throw err;
    if (conn.dialect === "mysql" && (await mysqlStillPrepared(conn, xid))) {
      // Still attached to the session that prepared it (closing, or not closed yet): only that
      // session could end it now. Not a success: the coordinator retries phase 2 later.
      throw new DtxError("UNAVAILABLE", `XA ${info.op} of ${xid}: the prepared transaction is still attached to its session; retry later`, { cause: err });
    }
  }
  const table = barrierTable(options);
  if (info.op === "rollback" && table) await insertXaBarrier(conn, table, info.gid, info.branchId, "rollback");
}
