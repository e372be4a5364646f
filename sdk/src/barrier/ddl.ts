/**
 * The barrier table's DDL (docs/protocol.md#barrier-table). `sdk/sql/barrier.{mysql,postgres}.sql` hold the
 * same statements for the default name; a test keeps them in step.
 */
import { BarrierError } from "./errors.ts";
import { sqlKind } from "./sql.ts";
import { checkTableName, getBarrierTableName, splitTableName } from "./table-name.ts";
import type { MysqlConnectionLike, MysqlPoolLike, PgPoolLike, PgQueryable, SqlDialect } from "./types.ts";

/**
 * dtm's columns. The key's columns compare byte for byte: gids and branch ids are case-sensitive
 * identifiers ("Ab" and "aB" are two transactions, as the coordinator treats them), and a byte
 * comparison is the cheapest a B-tree can make. On Postgres that is `collate "C"` on the key
 * columns (a database created with, say, en_US.UTF-8 would otherwise compare them through the
 * locale); on MySQL the table's `utf8mb4_bin` (utf8mb4's default collation is case-insensitive).
 */
function columns(kind: SqlDialect): string[] {
  const key = kind === "postgres" ? ' collate "C"' : "";
  return [
    "trans_type varchar(45) default ''",
    `gid varchar(128)${key} default ''`,
    `branch_id varchar(128)${key} default ''`,
    `op varchar(45)${key} default ''`,
    `barrier_id varchar(45)${key} default ''`,
  ];
}

/**
 * The statements that create the barrier table (and its database/schema) if missing.
 *
 * The same columns as dtm's table, but leaner: the key (gid, branch_id, op, barrier_id) is the
 * primary key, with no serial `id` (dtm has both, so every barrier row costs two index entries
 * and a sequence step). The key constraint keeps dtm's name (`uniq_barrier` for the default
 * table), so dtm's SDKs (`on conflict ON CONSTRAINT uniq_barrier`) work on this table, and
 * @dtx/sdk works on a table created by dtm's DDL: every statement names its columns.
 */
export function barrierTableDdl(kind: SqlDialect, tableName: string = getBarrierTableName()): string[] {
  const table = checkTableName(tableName);
  const [schema, name] = splitTableName(table);
  const key = "(gid, branch_id, op, barrier_id)";
  if (kind === "mysql") {
    return [
      ...(schema === undefined ? [] : [`create database if not exists ${schema} /*!40100 DEFAULT CHARACTER SET utf8mb4 */`]),
      `create table if not exists ${table}(\n` +
        [
          ...columns(kind),
          "reason varchar(45) default '' comment 'the branch type who insert this record'",
          "create_time datetime DEFAULT now()",
          "update_time datetime DEFAULT now()",
          // InnoDB clusters rows on the primary key: one B-tree per row instead of dtm's four
          // (id, the unique key, create_time, update_time); create_time stays indexed for cleanup.
          `PRIMARY KEY${key}`,
          "key(create_time)",
        ]
          .map((l) => `  ${l}`)
          .join(",\n") +
        "\n) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin",
    ];
  }
  // Index names are per schema in Postgres, so only the default table keeps dtm's name.
  const constraint = name === "barrier" ? "uniq_barrier" : `uniq_${name}`.slice(0, 63);
  return [
    ...(schema === undefined ? [] : [`create schema if not exists ${schema}`]),
    `create table if not exists ${table}(\n` +
      [
        ...columns(kind),
        "reason varchar(45) default ''",
        "create_time timestamp(0) with time zone DEFAULT NULL",
        "update_time timestamp(0) with time zone DEFAULT NULL",
        `CONSTRAINT ${constraint} PRIMARY KEY${key}`,
      ]
        .map((l) => `  ${l}`)
        .join(",\n") +
      "\n)",
  ];
}

/**
 * Creates the barrier table, and its schema (Postgres) or database (MySQL), if missing. Safe to
 * run from several processes at once. `db`: a pg Pool or Client, a mysql2/promise Pool or
 * Connection.
 */
export async function createBarrierTable(
  kind: SqlDialect,
  db: PgPoolLike | PgQueryable | MysqlPoolLike | MysqlConnectionLike,
  options: { tableName?: string } = {},
): Promise<void> {
  const statements = barrierTableDdl(kind, options.tableName ?? getBarrierTableName());
  const dbKind = sqlKind(db);
  if (kind === "mysql") {
    if (dbKind !== "mysql" && dbKind !== "mysql-pool") throw new BarrierError("BARRIER_UNSUPPORTED_DB", "createBarrierTable('mysql', db) needs a mysql2/promise Pool or Connection");
    // MySQL's `if not exists` DDL is safe under concurrency (metadata locks).
    for (const s of statements) await (db as MysqlPoolLike).query(s);
    return;
  }
  if (dbKind !== "pg" && dbKind !== "pg-pool") throw new BarrierError("BARRIER_UNSUPPORTED_DB", "createBarrierTable('postgres', db) needs a pg Pool or Client");
  // Postgres' `if not exists` races (duplicate key in pg_namespace / pg_type) when two processes
  // create the same objects at once: serialize on an advisory lock, inside one transaction.
  const pooled = dbKind === "pg-pool" ? await (db as PgPoolLike).connect() : undefined;
  const client: PgQueryable = pooled ?? (db as PgQueryable);
  try {
    await client.query("BEGIN");
    try {
      await client.query("select pg_advisory_xact_lock(hashtext($1))", [`dtx-barrier-ddl:${options.tableName ?? getBarrierTableName()}`]);
      for (const s of statements) await client.query(s);
      await client.query("COMMIT");
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw err;
    }
  } finally {
    pooled?.release();
  }
}
