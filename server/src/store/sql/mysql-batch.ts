/**
 * The SQL of the MySQL/MariaDB store's group commit (./batcher.ts queues the calls): many
 * saveNewTrans or updateTrans calls as one short transaction sent as one multi-statement query.
 * MySQL has no RETURNING and no data-modifying CTEs, so each caller's outcome is read from a
 * result set of the same round trip (a locking SELECT) or found out after a duplicate key.
 */
import { CompiledQuery, sql } from "kysely";
import type { Kysely, QueryResult, RawBuilder } from "kysely";
import { branchInsert, date, transInsert } from "./convert.ts";
import { PATCH_COLUMNS, patchFields } from "./group-commit.ts";
import type { SaveOp, UpdateOp } from "./group-commit.ts";
import type { StoreDatabase } from "./tables.ts";

/** The same order in every batch: concurrent batches then wait for each other's rows in one order instead of deadlocking. */
function byGid(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * `START TRANSACTION; INSERT trans rows; INSERT branch rows; COMMIT` for saveNewTrans calls whose
 * gids are all believed new. Trans rows go in gid order (see byGid); branch rows in the callers'
 * order, so each caller's branch ids ascend as it listed them. A duplicate gid, or any bad value,
 * stops the query with the transaction open: the caller rolls back on the same connection.
 */
export function saveBatchQuery(db: Kysely<StoreDatabase>, ops: readonly SaveOp[]): CompiledQuery {
  const trans = ops.map((op) => op.trans).sort((a, b) => byGid(a.gid, b.gid));
  const parts = [db.insertInto("trans_global").values(trans.map(transInsert)).compile()];
  const branches = ops.flatMap((op) => op.branches);
  if (branches.length > 0) parts.push(db.insertInto("trans_branch_op").values(branches.map(branchInsert)).compile());
  return CompiledQuery.raw(
    `START TRANSACTION; ${parts.map((p) => p.sql).join("; ")}; COMMIT`,
    parts.flatMap((p) => [...p.parameters]),
  );
}

/**
 * After a failed saveBatchQuery: `ROLLBACK` and, in the same round trip, which of `gids` exist
 * now (a duplicate key error comes only once the other insert committed, so its gid is visible).
 * Rows are never deleted, so a gid seen here certainly exists.
 */
export function rollbackAndFindQuery(db: Kysely<StoreDatabase>, gids: readonly string[]): CompiledQuery {
  return sql`ROLLBACK; SELECT gid FROM trans_global WHERE gid IN (${sql.join(gids)})`.compile(db);
}

/** The gids the second statement of rollbackAndFindQuery found. */
export function foundGids(result: QueryResult<unknown>): Set<string> {
  return new Set(resultSet(result, 1).map((row) => String(row["gid"])));
}

type PatchValue = string | number | Date | null;

/**
 * One row of the per-op derived table: gid, expected status, expected owner (NULL: not checked),
 * mask, update_time, then the PATCH_COLUMNS (NULL where not set), as patchFields gives them.
 */
function patchRow(op: UpdateOp): PatchValue[] {
  const { mask, values } = patchFields(op.patch);
  return [op.gid, op.expectedStatus, op.expectedOwner ?? null, mask, date(op.patch.updateTime), ...PATCH_COLUMNS.map(([column]) => values[column])];
}

/**
 * A derived table of literal rows: UNION ALL of one-row SELECTs (MySQL 8 and MariaDB spell VALUES
 * constructors differently). Column names come from the first SELECT; MySQL types each column
 * from all the rows.
 */
function literalRows(columns: readonly string[], rows: readonly (readonly unknown[])[]): RawBuilder<unknown> {
  return sql.join(
    rows.map((row, i) => sql`SELECT ${sql.join(row.map((value, c) => (i === 0 ? sql`${value} AS ${sql.ref(columns[c] ?? "")}` : sql`${value}`)))}`),
    sql` UNION ALL `,
  );
}

/**
 * updateTrans calls (distinct gids) as one transaction in one round trip:
 *
 * 1. `SELECT gid, status, owner ... ORDER BY gid FOR UPDATE` locks the trans rows in gid order
 *    (batches of several coordinators cannot deadlock on them; FORCE INDEX keeps the optimizer
 *    from a table scan, which on a small table would lock in id order) and tells each caller's
 *    outcome: its CAS wins exactly when the stored status (and owner, for a fenced op) is its
 *    expected one. The rows stay locked until COMMIT, so the UPDATE below decides the same.
 * 2. One multi-table UPDATE, as the single call does: each trans row joined with its op's values
 *    (fields outside the op's mask keep their value), its branches LEFT JOINed, and nothing
 *    written unless `g.status = v.expected`.
 * 3. COMMIT.
 */
export function updateBatchQuery(db: Kysely<StoreDatabase>, ops: readonly UpdateOp[]): CompiledQuery {
  const gids = ops.map((op) => op.gid).sort(byGid);
  const values = literalRows(
    ["gid", "expected", "expected_owner", "mask", "update_time", ...PATCH_COLUMNS.map(([column]) => column)],
    ops.map(patchRow),
  );
  const assignments = PATCH_COLUMNS.map(([column, bit]) =>
    sql`${sql.ref(`g.${column}`)} = IF((v.mask & ${sql.lit(bit)}) <> 0, ${sql.ref(`v.${column}`)}, ${sql.ref(`g.${column}`)})`);
  const branchRows = ops.flatMap((op) => op.branches.map((u) => [op.gid, u.branchId, u.op, u.status, date(u.finishTime)]));
  const branchJoin = branchRows.length === 0 ? sql`` : sql`
    LEFT JOIN (trans_branch_op AS o JOIN (${literalRows(["gid", "branch_id", "op", "status", "finish_time"], branchRows)}) AS w
      ON o.gid = w.gid AND o.branch_id = w.branch_id AND o.op = w.op) ON o.gid = g.gid`;
  const branchSet = branchRows.length === 0 ? sql`` : sql`, o.status = w.status, o.finish_time = w.finish_time, o.update_time = v.update_time`;
  return sql`START TRANSACTION;
    SELECT gid, status, owner FROM trans_global FORCE INDEX (gid) WHERE gid IN (${sql.join(gids)}) ORDER BY gid FOR UPDATE;
    UPDATE trans_global AS g JOIN (${values}) AS v ON g.gid = v.gid ${branchJoin}
    SET g.update_time = v.update_time, ${sql.join(assignments)} ${branchSet}
    WHERE g.status = v.expected AND (v.expected_owner IS NULL OR g.owner = v.expected_owner);
    COMMIT`.compile(db);
}

/** Each op's CAS outcome, from the locking SELECT (the second statement) of updateBatchQuery. */
export function updateBatchWins(result: QueryResult<unknown>, ops: readonly UpdateOp[]): boolean[] {
  const stored = new Map(resultSet(result, 1).map((row) => [String(row["gid"]), { status: String(row["status"]), owner: String(row["owner"]) }]));
  return ops.map((op) => {
    const row = stored.get(op.gid);
    return row !== undefined && row.status === op.expectedStatus && (op.expectedOwner === undefined || row.owner === op.expectedOwner);
  });
}

/** The rows of the `index`-th statement of a multi-statement query (mysql2 answers with one result per statement). */
function resultSet(result: QueryResult<unknown>, index: number): Record<string, unknown>[] {
  const rows: unknown = result.rows[index];
  if (!Array.isArray(rows)) throw new Error(`statement ${index + 1} of the batch returned no result set`);
  return rows as Record<string, unknown>[];
}
