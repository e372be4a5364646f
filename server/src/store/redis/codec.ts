import { isUtf8 } from "node:buffer";
import type { BranchRow, KvRow, TransRow } from "../rows.ts";
import { branchToRow, transToRow } from "../rows.ts";
import type { BranchUpdate, NewBranch, NewTrans, TransPatch } from "../store.ts";
import { BRANCH_COLUMNS, branchField, branchSlot } from "./keys.ts";

/**
 * Hashes <-> the row shapes of ../rows.ts, so the Redis store shares the domain mapping with the
 * SQL stores. Hash fields are the trans_global / trans_branch_op / kv column names; a NULL column
 * is an absent field; numbers are decimal text.
 */

export type Arg = string | number | Buffer;

/** HSET field/value pairs of a new trans (without id, which the script assigns). */
export function transFields(t: NewTrans): Arg[] {
  const out: Arg[] = [];
  for (const [column, value] of Object.entries(transToRow(t))) {
    if (value !== null) out.push(column, value as string | number);
  }
  return out;
}

/** HSET field/value pairs of a patch: only the fields it names (updateTrans leaves the rest). */
export function patchFields(p: TransPatch): Arg[] {
  const columns: [string, string | number | undefined][] = [
    ["status", p.status],
    ["update_time", p.updateTime],
    ["finish_time", p.finishTime],
    ["rollback_time", p.rollbackTime],
    ["rollback_reason", p.rollbackReason],
    ["result", p.result],
    ["next_cron_time", p.nextCronTime],
    ["next_cron_interval", p.nextCronInterval],
    ["owner", p.owner],
  ];
  return columns.flatMap(([column, value]) => (value === undefined ? [] : [column, value]));
}

/**
 * One branch as the scripts' ARGV group: its slot field, then {@link BRANCH_COLUMNS} ("" = NULL).
 * A payload that is valid UTF-8 (nearly all are JSON) goes as a string, which Redis stores as
 * the same bytes: one Buffer argument puts ioredis into its slower mixed-buffer encoding for
 * the whole command (bench/README.md, "Redis: where the coordinator's CPU goes").
 */
export function branchArgs(b: NewBranch): Arg[] {
  const row = branchToRow(b);
  const args: Arg[] = [branchSlot(b.branchId, b.op)];
  for (const column of BRANCH_COLUMNS) {
    const value = row[column];
    args.push(value === null ? "" : Buffer.isBuffer(value) && isUtf8(value) ? value.toString("utf8") : value);
  }
  return args;
}

export const BRANCH_ARGS = 1 + BRANCH_COLUMNS.length;

/** One branch update as updateTrans' ARGV group: slot, status, finish_time, update_time. */
export function branchUpdateArgs(u: BranchUpdate, updateTime: number): Arg[] {
  return [branchSlot(u.branchId, u.op), u.status, u.finishTime, updateTime];
}

function num(value: string | undefined): number {
  return Number(value ?? 0);
}

function numOrNull(value: string | undefined): number | null {
  return value === undefined ? null : Number(value);
}

export function transRowFromHash(h: Record<string, string>): TransRow {
  const s = (column: string): string => h[column] ?? "";
  return {
    id: num(h["id"]),
    gid: s("gid"),
    trans_type: s("trans_type"),
    status: s("status"),
    query_prepared: s("query_prepared"),
    protocol: s("protocol"),
    create_time: num(h["create_time"]),
    update_time: num(h["update_time"]),
    finish_time: numOrNull(h["finish_time"]),
    rollback_time: numOrNull(h["rollback_time"]),
    options: s("options"),
    custom_data: s("custom_data"),
    next_cron_interval: num(h["next_cron_interval"]),
    next_cron_time: num(h["next_cron_time"]),
    owner: s("owner"),
    ext_data: s("ext_data"),
    result: s("result"),
    rollback_reason: s("rollback_reason"),
  };
}

/** A flat [field, value, ...] reply (HGETALL inside a script) as a record. */
export function pairsToRecord(flat: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string;
  return out;
}

/** The branches hash of one gid (see keys.ts), in insertion order. */
export function branchRowsFromHash(gid: string, h: Record<string, Buffer>): BranchRow[] {
  const count = Number(h["count"]?.toString() ?? 0);
  const rows: BranchRow[] = [];
  for (let n = 1; n <= count; n++) {
    const text = (column: string): string | undefined => h[branchField(n, column)]?.toString();
    rows.push({
      id: num(text("id")),
      gid,
      url: text("url") ?? "",
      bin_data: h[branchField(n, "bin_data")] ?? Buffer.alloc(0),
      branch_id: text("branch_id") ?? "",
      op: text("op") ?? "",
      status: text("status") ?? "",
      finish_time: numOrNull(text("finish_time")),
      create_time: num(text("create_time")),
      update_time: num(text("update_time")),
    });
  }
  return rows;
}

export function kvRowFromHash(cat: string, k: string, h: Record<string, string>): KvRow {
  return {
    id: num(h["id"]),
    cat,
    k,
    v: h["v"] ?? null,
    version: num(h["version"]),
    create_time: numOrNull(h["create_time"]),
    update_time: numOrNull(h["update_time"]),
  };
}
