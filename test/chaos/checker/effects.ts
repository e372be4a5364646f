import type { RunIndex } from "./context.ts";

/** Where a branch's business effect lives, judged from the traces it left. */
export type BranchStore = "sql" | "redis" | "unknown";

/** The compensating op of each op that has one, as the barrier pairs them (null compensation). */
export const ORIGIN_OF: Readonly<Record<string, string>> = { compensate: "action", cancel: "try" };

/**
 * A branch's store: SQL when it has effect rows or a barrier row in PostgreSQL or MariaDB, Redis
 * when its only barrier keys are in Redis, unknown when it left no trace at all.
 */
export function branchStore(index: RunIndex, gid: string, branchId: string): BranchStore {
  if ((index.effects.get(gid) ?? []).some((e) => e.branchId === branchId)) return "sql";
  const barriers = (index.barriers.get(gid) ?? []).filter((b) => b.branchId === branchId);
  if (barriers.some((b) => b.db !== "redis")) return "sql";
  return barriers.length > 0 ? "redis" : "unknown";
}

/** Number of effect rows (SQL accounts) of one (gid, branch, op). */
export function effectRows(index: RunIndex, gid: string, branchId: string, op: string): number {
  return (index.effects.get(gid) ?? []).filter((e) => e.branchId === branchId && e.op === op).length;
}

/**
 * How many times an op's business effect was applied, or undefined when the branch left no trace.
 *
 * - SQL accounts: the number of effect rows (the journal has no unique key, so a second
 *   application shows as a second row).
 * - Redis accounts (no journal): 1 when the barrier key of (gid, branch, op) holds the op itself,
 *   except for a compensate/cancel whose origin key (action/try) holds "rollback": that was a
 *   null compensation, which sets its own key but changes no balance. Redis keys are written with
 *   SET NX, so a double application cannot show here; it shows in the balances (G4).
 */
export function applied(index: RunIndex, gid: string, branchId: string, op: string): number | undefined {
  const store = branchStore(index, gid, branchId);
  if (store === "sql") return effectRows(index, gid, branchId, op);
  if (store === "unknown") return undefined;
  const keys = (index.barriers.get(gid) ?? []).filter((b) => b.branchId === branchId && b.db === "redis");
  if (!keys.some((b) => b.op === op && b.reason === op)) return 0;
  const origin = ORIGIN_OF[op];
  const nullCompensation = origin !== undefined && keys.some((b) => b.op === origin && b.reason === "rollback");
  return nullCompensation ? 0 : 1;
}

/** Every branch id of a gid: the coordinator's branches and every branch that left a trace. */
export function branchIds(index: RunIndex, gid: string): string[] {
  const ids = new Set<string>();
  for (const b of index.final.get(gid)?.branches ?? []) ids.add(b.branchId);
  for (const e of index.effects.get(gid) ?? []) ids.add(e.branchId);
  for (const b of index.barriers.get(gid) ?? []) ids.add(b.branchId);
  return [...ids].sort();
}
