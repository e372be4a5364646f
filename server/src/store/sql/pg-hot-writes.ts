/**
 * The Postgres store's hot writes, saveNewTrans and updateTrans, as statements of fixed text
 * (./pg-statement.ts): one for any number of calls (group commit, ./batcher.ts, and a lone call
 * alike), the rows travelling as one array per column, and updateTrans for one call on its own.
 * Named prepared statements (./pg-prepared.ts) then make Postgres parse and plan each once per
 * connection.
 */
import type { NewBranch, NewTrans, TransPatch } from "../store.ts";
import { branchInsert, date, transInsert } from "./convert.ts";
import type { SaveOp, UpdateOp } from "./group-commit.ts";
import { PATCH_COLUMNS, patchFields } from "./group-commit.ts";
import { literal, pgStatement } from "./pg-statement.ts";

/**
 * Many saveNewTrans in one statement: trans rows in gid order (concurrent batches then wait for
 * each other's new gids in one order instead of deadlocking), and the branches of exactly the
 * trans rows that were inserted, in the callers' order so their ids ascend as inserted. One
 * statement, so an error in any branch rolls back its trans row too. Answers the gids created.
 */
export const SAVE_NEW_TRANS = pgStatement<keyof TransArrays | "branchOwner" | `branch_${keyof BranchArrays}`>`
  WITH t AS (
    INSERT INTO trans_global (gid, trans_type, status, query_prepared, protocol, create_time, update_time, finish_time,
      rollback_time, options, custom_data, next_cron_interval, next_cron_time, owner, ext_data, result, rollback_reason)
    SELECT v.gid, v.trans_type, v.status, v.query_prepared, v.protocol, v.create_time, v.update_time, v.finish_time,
      v.rollback_time, v.options, v.custom_data, v.next_cron_interval, v.next_cron_time, v.owner, v.ext_data, v.result, v.rollback_reason
    FROM unnest(${"gid"}::text[], ${"transType"}::text[], ${"status"}::text[], ${"queryPrepared"}::text[], ${"protocol"}::text[],
      ${"createTime"}::timestamptz[], ${"updateTime"}::timestamptz[], ${"finishTime"}::timestamptz[], ${"rollbackTime"}::timestamptz[],
      ${"options"}::text[], ${"customData"}::text[], ${"nextCronInterval"}::bigint[], ${"nextCronTime"}::timestamptz[],
      ${"owner"}::text[], ${"extData"}::text[], ${"result"}::text[], ${"rollbackReason"}::text[])
      AS v(gid, trans_type, status, query_prepared, protocol, create_time, update_time, finish_time, rollback_time, options,
        custom_data, next_cron_interval, next_cron_time, owner, ext_data, result, rollback_reason)
    ORDER BY v.gid
    ON CONFLICT (gid) DO NOTHING
    RETURNING gid
  ),
  b AS (
    INSERT INTO trans_branch_op (gid, url, bin_data, branch_id, op, status, finish_time, create_time, update_time)
    SELECT v.gid, v.url, v.bin_data, v.branch_id, v.op, v.status, v.finish_time, v.create_time, v.update_time
    FROM unnest(${"branchOwner"}::text[], ${"branch_gid"}::text[], ${"branch_url"}::text[], ${"branch_binData"}::bytea[],
      ${"branch_branchId"}::text[], ${"branch_op"}::text[], ${"branch_status"}::text[], ${"branch_finishTime"}::timestamptz[],
      ${"branch_createTime"}::timestamptz[], ${"branch_updateTime"}::timestamptz[])
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
  const b = branchArrays(all);
  return SAVE_NEW_TRANS.params({
    ...transArrays(ops.map((op) => op.trans)),
    branchOwner: owner,
    branch_gid: b.gid, branch_url: b.url, branch_binData: b.binData, branch_branchId: b.branchId, branch_op: b.op,
    branch_status: b.status, branch_finishTime: b.finishTime, branch_createTime: b.createTime, branch_updateTime: b.updateTime,
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
export const UPDATE_TRANS_BATCH = pgStatement<keyof PatchArrays | `branch_${keyof BranchUpdateArrays}`>`
  WITH v AS MATERIALIZED (
    SELECT * FROM unnest(${"gid"}::text[], ${"expected"}::text[], ${"expectedOwner"}::text[], ${"mask"}::int[], ${"status"}::text[],
      ${"updateTime"}::timestamptz[], ${"finishTime"}::timestamptz[], ${"rollbackTime"}::timestamptz[], ${"rollbackReason"}::text[],
      ${"result"}::text[], ${"nextCronTime"}::timestamptz[], ${"nextCronInterval"}::bigint[], ${"owner"}::text[])
      AS v(gid, expected, expected_owner, mask, status, update_time, finish_time, rollback_time, rollback_reason, result, next_cron_time,
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
    UPDATE trans_branch_op AS o SET status = w.status, finish_time = w.finish_time, update_time = t.update_time
    FROM unnest(${"branch_gid"}::text[], ${"branch_branchId"}::text[], ${"branch_op"}::text[], ${"branch_status"}::text[],
      ${"branch_finishTime"}::timestamptz[])
      AS w(gid, branch_id, op, status, finish_time)
      JOIN t ON t.gid = w.gid
    WHERE o.gid = w.gid AND o.branch_id = w.branch_id AND o.op = w.op
  )
  SELECT gid FROM t`;

/** The parameters of {@link UPDATE_TRANS_BATCH} for `ops`. */
export function updateTransBatchParams(ops: readonly UpdateOp[]): unknown[] {
  const u = branchUpdateArrays(ops);
  return UPDATE_TRANS_BATCH.params({
    ...patchArrays(ops),
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
    SELECT ${"mask"}::int AS mask, ${"status"}::text AS status, ${"updateTime"}::timestamptz AS update_time,
      ${"finishTime"}::timestamptz AS finish_time, ${"rollbackTime"}::timestamptz AS rollback_time, ${"rollbackReason"}::text AS rollback_reason,
      ${"result"}::text AS result, ${"nextCronTime"}::timestamptz AS next_cron_time, ${"nextCronInterval"}::bigint AS next_cron_interval,
      ${"owner"}::text AS owner
  ),
  t AS (
    UPDATE trans_global AS g SET
    ${literal(patchedColumns("p"))}
    FROM p
    WHERE g.gid = ${"gid"}::text AND g.status = ${"expected"}::text AND (${"expectedOwner"}::text IS NULL OR g.owner = ${"expectedOwner"}::text)
    RETURNING g.id
  ),
  b AS (
    UPDATE trans_branch_op AS o SET status = w.status, finish_time = w.finish_time, update_time = ${"updateTime"}::timestamptz
    FROM unnest(${"branchId"}::text[], ${"op"}::text[], ${"branchStatus"}::text[], ${"branchFinishTime"}::timestamptz[])
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
    branchId: op.branches.map((u) => u.branchId),
    op: op.branches.map((u) => u.op),
    branchStatus: op.branches.map((u) => u.status),
    branchFinishTime: op.branches.map((u) => date(u.finishTime)),
  });
}

/** One patch as the columns of {@link UPDATE_TRANS_ONE}'s `p`. */
interface PatchValuesOf {
  mask: number;
  status: string | null;
  updateTime: Date;
  finishTime: Date | null;
  rollbackTime: Date | null;
  rollbackReason: string | null;
  result: string | null;
  nextCronTime: Date | null;
  nextCronInterval: number | null;
  owner: string | null;
}

function patchValues(patch: TransPatch): PatchValuesOf {
  const { mask, values } = patchFields(patch);
  return {
    mask,
    status: values.status,
    updateTime: date(patch.updateTime),
    finishTime: values.finish_time,
    rollbackTime: values.rollback_time,
    rollbackReason: values.rollback_reason,
    result: values.result,
    nextCronTime: values.next_cron_time,
    nextCronInterval: values.next_cron_interval,
    owner: values.owner,
  };
}

/** Branches as one array per column: a fixed number of parameters whatever the branch count. */
export interface BranchArrays {
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

export function branchArrays(branches: readonly NewBranch[]): BranchArrays {
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
    const p = patchValues(op.patch);
    out.gid.push(op.gid);
    out.expected.push(op.expectedStatus);
    out.expectedOwner.push(op.expectedOwner ?? null);
    out.mask.push(p.mask);
    out.status.push(p.status);
    out.updateTime.push(p.updateTime);
    out.finishTime.push(p.finishTime);
    out.rollbackTime.push(p.rollbackTime);
    out.rollbackReason.push(p.rollbackReason);
    out.result.push(p.result);
    out.nextCronTime.push(p.nextCronTime);
    out.nextCronInterval.push(p.nextCronInterval);
    out.owner.push(p.owner);
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
