import { sql } from "kysely";
import type { Insertable, RawBuilder, Updateable } from "kysely";
import { branchToRow, transToRow } from "../rows.ts";
import type { NewBranch, NewTrans, TransPatch } from "../store.ts";
import type { TransBranchOpTable, TransGlobalTable } from "./tables.ts";

/**
 * Domain values -> column values for the network stores. They reuse ../rows.ts and only turn
 * the epoch-millisecond times into `Date`s, which both drivers send with millisecond precision
 * (pg as an ISO string with offset, mysql2 as UTC with `timezone: "Z"`).
 */
export function date(ms: number): Date {
  return new Date(ms);
}

/** A time to compare a column with in WHERE (kysely types columns by what they read back: numbers). */
export function at(ms: number): RawBuilder<number> {
  return sql<number>`${new Date(ms)}`;
}

export function dateOrNull(ms: number | null): Date | null {
  return ms === null ? null : new Date(ms);
}

export function transInsert(t: NewTrans): Insertable<TransGlobalTable> {
  const r = transToRow(t);
  return {
    ...r,
    create_time: date(r.create_time),
    update_time: date(r.update_time),
    finish_time: dateOrNull(r.finish_time),
    rollback_time: dateOrNull(r.rollback_time),
    next_cron_time: date(r.next_cron_time),
  };
}

export function branchInsert(b: NewBranch): Insertable<TransBranchOpTable> {
  const r = branchToRow(b);
  return { ...r, finish_time: dateOrNull(r.finish_time), create_time: date(r.create_time), update_time: date(r.update_time) };
}

/** The SET list of updateTrans: the fields the patch names, and nothing else. */
export function patchSet(p: TransPatch): Updateable<TransGlobalTable> {
  const set: Updateable<TransGlobalTable> = { update_time: date(p.updateTime) };
  if (p.status !== undefined) set.status = p.status;
  if (p.finishTime !== undefined) set.finish_time = date(p.finishTime);
  if (p.rollbackTime !== undefined) set.rollback_time = date(p.rollbackTime);
  if (p.rollbackReason !== undefined) set.rollback_reason = p.rollbackReason;
  if (p.result !== undefined) set.result = p.result;
  if (p.nextCronTime !== undefined) set.next_cron_time = date(p.nextCronTime);
  if (p.nextCronInterval !== undefined) set.next_cron_interval = p.nextCronInterval;
  if (p.owner !== undefined) set.owner = p.owner;
  return set;
}

/** `position` ("" or digits, checked by the API) as an exclusive upper bound on id. */
export function positionBound(position: string): number | undefined {
  if (position === "") return undefined;
  return Math.min(Number(position), Number.MAX_SAFE_INTEGER);
}

/** The statuses the cron looks at; written as literals so Postgres can use the partial index. */
export const UNFINISHED_SQL = "('prepared', 'submitted', 'aborting')";

/** The finished statuses retention deletes; literals so Postgres can use the partial index trans_global_finished. */
export const FINISHED_SQL = "('succeed', 'failed')";
