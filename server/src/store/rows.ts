import { decodeOptions, encodeOptions } from "../core/options.ts";
import type { Branch, BranchStatus, GlobalStatus, Protocol, TransGlobal, TransType } from "../core/types.ts";
import type { KvEntry, NewBranch, NewTrans } from "./store.ts";

/**
 * Row shapes of the three tables (docs/protocol.md#storage) as every SQL store reads them back, times as
 * epoch milliseconds, and the mapping to and from the domain types. SQLite stores them this way;
 * the network stores convert their timestamp columns at the driver (see sql/time.ts) so they
 * share this mapping instead of copying it.
 */

export interface TransRow {
  id: number;
  gid: string;
  trans_type: string;
  status: string;
  query_prepared: string;
  protocol: string;
  create_time: number;
  update_time: number;
  finish_time: number | null;
  rollback_time: number | null;
  options: string;
  custom_data: string;
  next_cron_interval: number;
  next_cron_time: number;
  owner: string;
  ext_data: string;
  result: string;
  rollback_reason: string;
}

export interface BranchRow {
  id: number;
  gid: string;
  url: string;
  bin_data: Buffer | null;
  branch_id: string;
  op: string;
  status: string;
  finish_time: number | null;
  create_time: number;
  update_time: number;
}

export function transFromRow(r: TransRow): TransGlobal {
  return {
    id: r.id,
    gid: r.gid,
    transType: r.trans_type as TransType,
    status: r.status as GlobalStatus,
    protocol: r.protocol as Protocol,
    queryPrepared: r.query_prepared,
    customData: r.custom_data,
    options: decodeOptions(r.options),
    extData: r.ext_data,
    createTime: r.create_time,
    updateTime: r.update_time,
    finishTime: r.finish_time,
    rollbackTime: r.rollback_time,
    rollbackReason: r.rollback_reason,
    result: r.result,
    nextCronInterval: r.next_cron_interval,
    nextCronTime: r.next_cron_time,
    owner: r.owner,
  };
}

export function transToRow(t: NewTrans): Omit<TransRow, "id"> {
  return {
    gid: t.gid,
    trans_type: t.transType,
    status: t.status,
    query_prepared: t.queryPrepared,
    protocol: t.protocol,
    create_time: t.createTime,
    update_time: t.updateTime,
    finish_time: t.finishTime,
    rollback_time: t.rollbackTime,
    options: encodeOptions(t.options),
    custom_data: t.customData,
    next_cron_interval: t.nextCronInterval,
    next_cron_time: t.nextCronTime,
    owner: t.owner,
    ext_data: t.extData,
    result: t.result,
    rollback_reason: t.rollbackReason,
  };
}

export function branchFromRow(r: BranchRow): Branch {
  return {
    id: r.id,
    gid: r.gid,
    branchId: r.branch_id,
    op: r.op,
    url: r.url,
    binData: r.bin_data ?? Buffer.alloc(0),
    status: r.status as BranchStatus,
    createTime: r.create_time,
    updateTime: r.update_time,
    finishTime: r.finish_time,
  };
}

export function branchToRow(b: NewBranch): Omit<BranchRow, "id"> {
  return {
    gid: b.gid,
    url: b.url,
    bin_data: Buffer.from(b.binData.buffer, b.binData.byteOffset, b.binData.byteLength),
    branch_id: b.branchId,
    op: b.op,
    status: b.status,
    finish_time: b.finishTime,
    create_time: b.createTime,
    update_time: b.updateTime,
  };
}

export interface KvRow {
  id: number;
  cat: string;
  k: string;
  v: string | null;
  version: number;
  create_time: number | null;
  update_time: number | null;
}

export function kvFromRow(r: KvRow): KvEntry {
  return { id: r.id, cat: r.cat, k: r.k, v: r.v ?? "", version: r.version, createTime: r.create_time ?? 0, updateTime: r.update_time ?? 0 };
}

/**
 * appendBranches' idempotency rule (docs/deviations.md D4): a stored (branch_id, op) row matches a new one when url,
 * status and payload bytes are equal. A stored NULL payload counts as empty.
 */
export function isSameBranch(existing: Pick<BranchRow, "url" | "status" | "bin_data">, b: NewBranch): boolean {
  return existing.url === b.url && existing.status === b.status
    && Buffer.compare(existing.bin_data ?? Buffer.alloc(0), Buffer.from(b.binData.buffer, b.binData.byteOffset, b.binData.byteLength)) === 0;
}
