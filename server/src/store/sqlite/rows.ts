import { decodeOptions, encodeOptions } from "../../core/options.ts";
import type { Branch, BranchStatus, GlobalStatus, Protocol, TransGlobal, TransType } from "../../core/types.ts";
import type { NewBranch, NewTrans } from "../store.ts";

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
