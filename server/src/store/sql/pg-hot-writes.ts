/**
 * The Postgres store's hot writes, saveNewTrans and updateTrans, as statements of fixed text
 * (./pg-statement.ts): one for any number of calls (group commit, ./batcher.ts, and a lone call
 * alike), the rows travelling as one array per column, and updateTrans for one call on its own.
 * Named prepared statements (./pg-prepared.ts) then make Postgres parse and plan each once per
 * connection. The arrays go as literals built by ./pg-array-literal.ts, times as epoch
 * milliseconds that the statements turn into timestamptz (msToTimestamptz).
 */
import type { NewBranch, NewTrans, TransPatch } from "../store.ts";
import { transToRow } from "../rows.ts";
import { byteaArray, integerArray, msArray, msToTimestamptz as ts, textArray, wholeMs } from "./pg-array-literal.ts";
import type { SaveOp, UpdateOp } from "./group-commit.ts";
import { PATCH_COLUMNS, patchFields } from "./group-commit.ts";
import { around, literal, pgStatement } from "./pg-statement.ts";

/** A time parameter (epoch milliseconds) as timestamptz. */
const time = <K extends string>(name: K) => around(name, ts);

/**
 * Many saveNewTrans in one statement: trans rows in gid order (concurrent batches then wait for
 * each other's new gids in one order instead of deadlocking), and the branches of exactly the
 * trans rows that were inserted, in the callers' order so their ids ascend as inserted. One
 * statement, so an error in any branch rolls back its trans row too. Answers the gids created.
 */
export const SAVE_NEW_TRANS = pgStatement<keyof TransColumns | "branchOwner" | `branch_${keyof BranchColumns}`>`
  WITH t AS (
    INSERT INTO trans_global (gid, trans_type, status, query_prepared, protocol, create_time, update_time, finish_time,
      rollback_time, options, custom_data, next_cron_interval, next_cron_time, owner, ext_data, result, rollback_reason)
    SELECT v.gid, v.trans_type, v.status, v.query_prepared, v.protocol, ${literal(ts("v.create_time"))}, ${literal(ts("v.update_time"))},
      ${literal(ts("v.finish_time"))}, ${literal(ts("v.rollback_time"))}, v.options, v.custom_data, v.next_cron_interval,
      ${literal(ts("v.next_cron_time"))}, v.owner, v.ext_data, v.result, v.rollback_reason
    FROM unnest(${"gid"}::text[], ${"transType"}::text[], ${"status"}::text[], ${"queryPrepared"}::text[], ${"protocol"}::text[],
      ${"createTime"}::bigint[], ${"updateTime"}::bigint[], ${"finishTime"}::bigint[], ${"rollbackTime"}::bigint[],
      ${"options"}::text[], ${"customData"}::text[], ${"nextCronInterval"}::bigint[], ${"nextCronTime"}::bigint[],
      ${"owner"}::text[], ${"extData"}::text[], ${"result"}::text[], ${"rollbackReason"}::text[])
      AS v(gid, trans_type, status, query_prepared, protocol, create_time, update_time, finish_time, rollback_time, options,
        custom_data, next_cron_interval, next_cron_time, owner, ext_data, result, rollback_reason)
    ORDER BY v.gid
    ON CONFLICT (gid) DO NOTHING
    RETURNING gid
  ),
  b AS (
    INSERT INTO trans_branch_op (gid, url, bin_data, branch_id, op, status, finish_time, create_time, update_time)
    SELECT v.gid, v.url, v.bin_data, v.branch_id, v.op, v.status, ${literal(ts("v.finish_time"))}, ${literal(ts("v.create_time"))},
      ${literal(ts("v.update_time"))}
    FROM unnest(${"branchOwner"}::text[], ${"branch_gid"}::text[], ${"branch_url"}::text[], ${"branch_binData"}::bytea[],
      ${"branch_branchId"}::text[], ${"branch_op"}::text[], ${"branch_status"}::text[], ${"branch_finishTime"}::bigint[],
      ${"branch_createTime"}::bigint[], ${"branch_updateTime"}::bigint[])
      WITH ORDINALITY AS v(owner, gid, url, bin_data, branch_id, op, status, finish_time, create_time, update_time, ord)
    WHERE v.owner IN (SELECT gid FROM t)
    ORDER BY v.ord
  )
  SELECT gid FROM t`;

/** The parameters of {@link SAVE_NEW_TRANS} for `ops`. */
export function saveNewTransParams(ops: readonly SaveOp[]): unknown[] {
  const owner: string[] = [];
  const all: NewBranch[] = [];
  for (const op of ops) {
    for (const branch of op.branches) {
      owner.push(op.trans.gid);
      all.push(branch);
    }
  }
  const b = branchColumns(all);
  return SAVE_NEW_TRANS.params({
    ...transColumns(ops.map((op) => op.trans)),
    branchOwner: textArray(owner),
    branch_gid: b.gid, branch_url: b.url, branch_binData: b.binData, branch_branchId: b.branchId, branch_op: b.op,
    branch_status: b.status, branch_finishTime: b.finishTime, branch_createTime: b.createTime, branch_updateTime: b.updateTime,
  });
}

/**
 * One saveNewTrans on its own (a lone call, or a re-run from a failed batch): the trans row from
 * scalar parameters and its branches from arrays, inserted only if the trans row was. The same
 * rows as {@link SAVE_NEW_TRANS} writes for a batch of one, about 50 µs (a tenth) sooner on the
 * project's machine: no unnest, sort and semi-join for the one trans row (bench/pg-lone-save.ts).
 * At C = 1 every submit is such a call. Answers the gid if it was created.
 */
export const SAVE_NEW_TRANS_ONE = pgStatement<keyof TransScalars | `branch_${Exclude<keyof BranchColumns, "gid">}`>`
  WITH t AS (
    INSERT INTO trans_global (gid, trans_type, status, query_prepared, protocol, create_time, update_time, finish_time,
      rollback_time, options, custom_data, next_cron_interval, next_cron_time, owner, ext_data, result, rollback_reason)
    VALUES (${"gid"}::text, ${"transType"}::text, ${"status"}::text, ${"queryPrepared"}::text, ${"protocol"}::text, ${time("createTime")},
      ${time("updateTime")}, ${time("finishTime")}, ${time("rollbackTime")}, ${"options"}::text, ${"customData"}::text,
      ${"nextCronInterval"}::bigint, ${time("nextCronTime")}, ${"owner"}::text, ${"extData"}::text, ${"result"}::text, ${"rollbackReason"}::text)
    ON CONFLICT (gid) DO NOTHING
    RETURNING gid
  ),
  b AS (
    INSERT INTO trans_branch_op (gid, url, bin_data, branch_id, op, status, finish_time, create_time, update_time)
    SELECT ${"gid"}::text, v.url, v.bin_data, v.branch_id, v.op, v.status, ${literal(ts("v.finish_time"))}, ${literal(ts("v.create_time"))},
      ${literal(ts("v.update_time"))}
    FROM unnest(${"branch_url"}::text[], ${"branch_binData"}::bytea[], ${"branch_branchId"}::text[], ${"branch_op"}::text[],
      ${"branch_status"}::text[], ${"branch_finishTime"}::bigint[], ${"branch_createTime"}::bigint[], ${"branch_updateTime"}::bigint[])
      WITH ORDINALITY AS v(url, bin_data, branch_id, op, status, finish_time, create_time, update_time, ord)
    WHERE EXISTS (SELECT 1 FROM t)
    ORDER BY v.ord
  )
  SELECT gid FROM t`;

/** The parameters of {@link SAVE_NEW_TRANS_ONE} for one call. */
export function saveNewTransOneParams(trans: NewTrans, branches: readonly NewBranch[]): unknown[] {
  const b = branchColumns(branches);
  return SAVE_NEW_TRANS_ONE.params({
    ...transScalars(trans),
    branch_url: b.url, branch_binData: b.binData, branch_branchId: b.branchId, branch_op: b.op, branch_status: b.status,
    branch_finishTime: b.finishTime, branch_createTime: b.createTime, branch_updateTime: b.updateTime,
  });
}

/**
 * `SET` of the patched columns of trans_global (PATCH_COLUMNS) from a relation `p` with a `mask`
 * column (their SET_* bits, patchFields): a column is written only where its bit is on, since a
 * value alone cannot tell "not set" from NULL.
 */
function patchedColumns(p: string): string {
  return [
    `update_time = ${p}.update_time`,
    ...PATCH_COLUMNS.map(([column, bit]) => `${column} = CASE WHEN (${p}.mask & ${bit}) <> 0 THEN ${p}.${column} ELSE g.${column} END`),
  ].join(",\n    ");
}

/**
 * Many updateTrans in one statement, each with its own expected status and patch. The trans
 * rows are locked in gid order first (concurrent batches cannot deadlock on them); the CAS is
 * (status, and the fencing token where the op has one) then the UPDATE's WHERE, re-checked on
 * the newest row version as in the single statement, and only the branches of the trans rows it
 * updated are written. Answers the gids whose CAS matched.
 */
export const UPDATE_TRANS_BATCH = pgStatement<keyof PatchColumns | `branch_${"gid" | "branchId" | "op" | "status" | "finishTime"}`>`
  WITH v AS MATERIALIZED (
    SELECT u.gid, u.expected, u.expected_owner, u.mask, u.status, ${literal(ts("u.update_time"))} AS update_time,
      ${literal(ts("u.finish_time"))} AS finish_time, ${literal(ts("u.rollback_time"))} AS rollback_time, u.rollback_reason, u.result,
      ${literal(ts("u.next_cron_time"))} AS next_cron_time, u.next_cron_interval, u.owner
    FROM unnest(${"gid"}::text[], ${"expected"}::text[], ${"expectedOwner"}::text[], ${"mask"}::int[], ${"status"}::text[],
      ${"updateTime"}::bigint[], ${"finishTime"}::bigint[], ${"rollbackTime"}::bigint[], ${"rollbackReason"}::text[],
      ${"result"}::text[], ${"nextCronTime"}::bigint[], ${"nextCronInterval"}::bigint[], ${"owner"}::text[])
      AS u(gid, expected, expected_owner, mask, status, update_time, finish_time, rollback_time, rollback_reason, result, next_cron_time,
        next_cron_interval, owner)
  ),
  l AS MATERIALIZED (
    SELECT g.id, v.* FROM trans_global AS g JOIN v ON g.gid = v.gid ORDER BY g.gid FOR UPDATE OF g
  ),
  t AS (
    UPDATE trans_global AS g SET
    ${literal(patchedColumns("l"))}
    FROM l
    WHERE g.id = l.id AND g.status = l.expected AND (l.expected_owner IS NULL OR g.owner = l.expected_owner)
    RETURNING g.gid, l.update_time
  ),
  b AS (
    UPDATE trans_branch_op AS o SET status = w.status, finish_time = ${literal(ts("w.finish_time"))}, update_time = t.update_time
    FROM unnest(${"branch_gid"}::text[], ${"branch_branchId"}::text[], ${"branch_op"}::text[], ${"branch_status"}::text[],
      ${"branch_finishTime"}::bigint[])
      AS w(gid, branch_id, op, status, finish_time)
      JOIN t ON t.gid = w.gid
    WHERE o.gid = w.gid AND o.branch_id = w.branch_id AND o.op = w.op
  )
  SELECT gid FROM t`;

/** The parameters of {@link UPDATE_TRANS_BATCH} for `ops`. */
export function updateTransBatchParams(ops: readonly UpdateOp[]): unknown[] {
  const u = branchUpdateColumns(ops);
  return UPDATE_TRANS_BATCH.params({
    ...patchColumns(ops),
    branch_gid: u.gid, branch_branchId: u.branchId, branch_op: u.op, branch_status: u.status, branch_finishTime: u.finishTime,
  });
}

/**
 * One updateTrans: the CAS on the trans row, then its branches only if the CAS matched (EXISTS
 * reads t, so it waits for t's row lock and sees its outcome). Answers one row per trans row
 * updated (none or one).
 */
export const UPDATE_TRANS_ONE = pgStatement<
  "gid" | "expected" | "expectedOwner" | "mask" | keyof PatchValuesOf | "branchId" | "op" | "branchStatus" | "branchFinishTime"
>`
  WITH p AS (
    SELECT ${"mask"}::int AS mask, ${"status"}::text AS status, ${time("updateTime")} AS update_time, ${time("finishTime")} AS finish_time,
      ${time("rollbackTime")} AS rollback_time, ${"rollbackReason"}::text AS rollback_reason, ${"result"}::text AS result,
      ${time("nextCronTime")} AS next_cron_time, ${"nextCronInterval"}::bigint AS next_cron_interval, ${"owner"}::text AS owner
  ),
  t AS (
    UPDATE trans_global AS g SET
    ${literal(patchedColumns("p"))}
    FROM p
    WHERE g.gid = ${"gid"}::text AND g.status = ${"expected"}::text AND (${"expectedOwner"}::text IS NULL OR g.owner = ${"expectedOwner"}::text)
    RETURNING g.id
  ),
  b AS (
    UPDATE trans_branch_op AS o SET status = w.status, finish_time = ${literal(ts("w.finish_time"))}, update_time = ${time("updateTime")}
    FROM unnest(${"branchId"}::text[], ${"op"}::text[], ${"branchStatus"}::text[], ${"branchFinishTime"}::bigint[])
      AS w(branch_id, op, status, finish_time)
    WHERE o.gid = ${"gid"}::text AND o.branch_id = w.branch_id AND o.op = w.op AND EXISTS (SELECT 1 FROM t)
  )
  SELECT id FROM t`;

/** The parameters of {@link UPDATE_TRANS_ONE} for `op`. */
export function updateTransOneParams(op: UpdateOp): unknown[] {
  return UPDATE_TRANS_ONE.params({
    gid: op.gid,
    expected: op.expectedStatus,
    expectedOwner: op.expectedOwner ?? null,
    ...patchValues(op.patch),
    branchId: textArray(op.branches.map((u) => u.branchId)),
    op: textArray(op.branches.map((u) => u.op)),
    branchStatus: textArray(op.branches.map((u) => u.status)),
    branchFinishTime: msArray(op.branches.map((u) => u.finishTime)),
  });
}

/** One patch as the columns of {@link UPDATE_TRANS_ONE}'s `p`: times in epoch milliseconds. */
interface PatchValuesOf {
  mask: number;
  status: string | null;
  updateTime: number;
  finishTime: number | null;
  rollbackTime: number | null;
  rollbackReason: string | null;
  result: string | null;
  nextCronTime: number | null;
  nextCronInterval: number | null;
  owner: string | null;
}

/** The mask and the set fields from patchFields; the times straight from the patch (set exactly where patchFields sets them). */
function patchValues(patch: TransPatch): PatchValuesOf {
  const { mask, values } = patchFields(patch);
  return {
    mask,
    status: values.status,
    updateTime: wholeMs(patch.updateTime),
    finishTime: timeOf(patch.finishTime),
    rollbackTime: timeOf(patch.rollbackTime),
    rollbackReason: values.rollback_reason,
    result: values.result,
    nextCronTime: timeOf(patch.nextCronTime),
    nextCronInterval: values.next_cron_interval,
    owner: values.owner,
  };
}

/** A time in whole epoch milliseconds, or null where there is none. */
function timeOf(ms: number | null | undefined): number | null {
  return ms === null || ms === undefined ? null : wholeMs(ms);
}

/** Branches as one array literal per column: a fixed number of parameters whatever the branch count. */
export interface BranchColumns {
  gid: string;
  url: string;
  binData: string;
  branchId: string;
  op: string;
  status: string;
  /** Epoch milliseconds, for msToTimestamptz. */
  finishTime: string;
  createTime: string;
  updateTime: string;
}

export function branchColumns(branches: readonly NewBranch[]): BranchColumns {
  return {
    gid: textArray(branches.map((b) => b.gid)),
    url: textArray(branches.map((b) => b.url)),
    binData: byteaArray(branches.map((b) => b.binData)),
    branchId: textArray(branches.map((b) => b.branchId)),
    op: textArray(branches.map((b) => b.op)),
    status: textArray(branches.map((b) => b.status)),
    finishTime: msArray(branches.map((b) => b.finishTime)),
    createTime: msArray(branches.map((b) => b.createTime)),
    updateTime: msArray(branches.map((b) => b.updateTime)),
  };
}

/** One new trans row as the scalar parameters of {@link SAVE_NEW_TRANS_ONE}: times in epoch milliseconds. */
interface TransScalars {
  gid: string;
  transType: string;
  status: string;
  queryPrepared: string;
  protocol: string;
  createTime: number;
  updateTime: number;
  finishTime: number | null;
  rollbackTime: number | null;
  options: string;
  customData: string;
  nextCronInterval: number;
  nextCronTime: number;
  owner: string;
  extData: string;
  result: string;
  rollbackReason: string;
}

/** From the same row mapping as every store (transToRow). */
function transScalars(trans: NewTrans): TransScalars {
  const r = transToRow(trans);
  return {
    gid: r.gid, transType: r.trans_type, status: r.status, queryPrepared: r.query_prepared, protocol: r.protocol,
    createTime: wholeMs(r.create_time), updateTime: wholeMs(r.update_time), finishTime: timeOf(r.finish_time), rollbackTime: timeOf(r.rollback_time),
    options: r.options, customData: r.custom_data, nextCronInterval: r.next_cron_interval, nextCronTime: wholeMs(r.next_cron_time),
    owner: r.owner, extData: r.ext_data, result: r.result, rollbackReason: r.rollback_reason,
  };
}

type TransColumns = Record<keyof TransScalars, string>;

/** New trans rows as one array literal per column: each row's scalars (transScalars), column by column. */
function transColumns(trans: readonly NewTrans[]): TransColumns {
  const rows = trans.map(transScalars);
  const text = (pick: (r: TransScalars) => string): string => textArray(rows.map(pick));
  const int = (pick: (r: TransScalars) => number | null): string => integerArray(rows.map(pick));
  return {
    gid: text((r) => r.gid),
    transType: text((r) => r.transType),
    status: text((r) => r.status),
    queryPrepared: text((r) => r.queryPrepared),
    protocol: text((r) => r.protocol),
    createTime: int((r) => r.createTime),
    updateTime: int((r) => r.updateTime),
    finishTime: int((r) => r.finishTime),
    rollbackTime: int((r) => r.rollbackTime),
    options: text((r) => r.options),
    customData: text((r) => r.customData),
    nextCronInterval: int((r) => r.nextCronInterval),
    nextCronTime: int((r) => r.nextCronTime),
    owner: text((r) => r.owner),
    extData: text((r) => r.extData),
    result: text((r) => r.result),
    rollbackReason: text((r) => r.rollbackReason),
  };
}

type PatchColumns = Record<"gid" | "expected" | "expectedOwner" | "mask" | keyof Omit<PatchValuesOf, "mask">, string>;

/** The CAS and patch of each updateTrans as one array literal per column plus the mask of set fields (patchFields). */
function patchColumns(ops: readonly UpdateOp[]): PatchColumns {
  const values = ops.map((op) => patchValues(op.patch));
  const text = (pick: (v: PatchValuesOf) => string | null): string => textArray(values.map(pick));
  const int = (pick: (v: PatchValuesOf) => number | null): string => integerArray(values.map(pick));
  return {
    gid: textArray(ops.map((op) => op.gid)),
    expected: textArray(ops.map((op) => op.expectedStatus)),
    expectedOwner: textArray(ops.map((op) => op.expectedOwner ?? null)),
    mask: int((v) => v.mask),
    status: text((v) => v.status),
    updateTime: int((v) => v.updateTime),
    finishTime: int((v) => v.finishTime),
    rollbackTime: int((v) => v.rollbackTime),
    rollbackReason: text((v) => v.rollbackReason),
    result: text((v) => v.result),
    nextCronTime: int((v) => v.nextCronTime),
    nextCronInterval: int((v) => v.nextCronInterval),
    owner: text((v) => v.owner),
  };
}

/** The branch updates of all ops, each tagged with its op's gid, as one array literal per column. */
function branchUpdateColumns(ops: readonly UpdateOp[]): Record<"gid" | "branchId" | "op" | "status" | "finishTime", string> {
  const gid: string[] = [];
  const updates: UpdateOp["branches"][number][] = [];
  for (const op of ops) {
    for (const u of op.branches) {
      gid.push(op.gid);
      updates.push(u);
    }
  }
  return {
    gid: textArray(gid),
    branchId: textArray(updates.map((u) => u.branchId)),
    op: textArray(updates.map((u) => u.op)),
    status: textArray(updates.map((u) => u.status)),
    finishTime: msArray(updates.map((u) => u.finishTime)),
  };
}
