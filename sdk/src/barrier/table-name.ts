import { BarrierError } from "./errors.ts";

export const DEFAULT_BARRIER_TABLE = "dtm_barrier.barrier";

const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_$]{0,63}(\.[A-Za-z_][A-Za-z0-9_$]{0,63})?$/;

let defaultTableName = DEFAULT_BARRIER_TABLE;

/**
 * Checks a barrier table name: `table` or `schema.table`, each part an unquoted identifier. The
 * name is written into SQL as is, so anything else is refused.
 */
export function checkTableName(name: string): string {
  if (!TABLE_NAME.test(name)) {
    throw new BarrierError("BARRIER_INVALID_TABLE_NAME", `invalid barrier table name ${JSON.stringify(name)}: use table or schema.table with [A-Za-z0-9_$]`);
  }
  return name;
}

/** Sets the table every barrier uses unless given its own (dtm's `SetBarrierTableName`). */
export function setBarrierTableName(name: string): void {
  defaultTableName = checkTableName(name);
}

export function getBarrierTableName(): string {
  return defaultTableName;
}

/** `schema.table` -> [schema, table]; a bare `table` has no schema. */
export function splitTableName(name: string): [string | undefined, string] {
  const dot = name.indexOf(".");
  return dot < 0 ? [undefined, name] : [name.slice(0, dot), name.slice(dot + 1)];
}
