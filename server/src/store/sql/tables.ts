import type { ColumnType, Generated } from "kysely";

/**
 * Kysely's view of the tables (DDL in migrations.ts). Times are read back as epoch milliseconds
 * (each store configures its driver to convert them) and written as `Date`, so a selected
 * row has exactly the shape of `TransRow` / `BranchRow` / `KvRow` in ../rows.ts.
 */
type Time = ColumnType<number, Date, Date>;
type NullableTime = ColumnType<number | null, Date | null, Date | null>;

export interface TransGlobalTable {
  id: Generated<number>;
  gid: string;
  trans_type: string;
  status: string;
  query_prepared: string;
  protocol: string;
  create_time: Time;
  update_time: Time;
  finish_time: NullableTime;
  rollback_time: NullableTime;
  options: string;
  custom_data: string;
  next_cron_interval: number;
  next_cron_time: Time;
  owner: string;
  ext_data: string;
  result: string;
  rollback_reason: string;
}

export interface TransBranchOpTable {
  id: Generated<number>;
  gid: string;
  url: string;
  bin_data: Buffer | null;
  branch_id: string;
  op: string;
  status: string;
  finish_time: NullableTime;
  create_time: Time;
  update_time: Time;
}

export interface KvTable {
  id: Generated<number>;
  cat: string;
  k: string;
  v: string | null;
  version: Generated<number>;
  create_time: NullableTime;
  update_time: NullableTime;
}

export interface MigrationsTable {
  version: number;
  name: string;
  applied_at: Time;
}

export interface StoreDatabase {
  trans_global: TransGlobalTable;
  trans_branch_op: TransBranchOpTable;
  kv: KvTable;
  dtx_migrations: MigrationsTable;
}
