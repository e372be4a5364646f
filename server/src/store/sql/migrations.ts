/**
 * Append-only schema migrations of the PostgreSQL and MySQL/MariaDB stores, kept in code so
 * nothing is read from disk at run time. Never edit a released migration; add the next one.
 * Every statement is idempotent (IF NOT EXISTS), so a migration interrupted half-way (MySQL
 * commits each DDL statement on its own) simply runs again.
 *
 * The tables follow dtm's DDL (docs/protocol.md#storage): same table, column and key names, so an
 * operator who knows dtm can read them. Deliberate differences:
 * - times are `timestamp(3) with time zone` / `datetime(3)` (dtm: whole seconds), because the
 *   engine schedules retries with millisecond precision; MySQL's datetime has no zone and holds
 *   UTC;
 * - next_cron_interval is in milliseconds (bigint), as everywhere in dtx;
 * - free text (urls, options, custom_data, ext_data, result, rollback_reason, kv.v) has no
 *   1024-character cap and payloads are MySQL `longblob` (dtm: blob, 64 KiB), so anything the
 *   API accepts fits, as it does in SQLite;
 * - MySQL tables use `utf8mb4_bin`: gids, branch ids and topic names compare case-sensitively,
 *   as in SQLite and Postgres (dtm's default collation would make "A" and "a" one gid);
 * - the cron's due index: a partial index on Postgres, an index on a generated column on MySQL
 *   (instead of dtm's `status_next_cron_time`); dtm's unused `owner` index and the unused branch
 *   columns `data` and `rollback_time` are left out.
 */
export interface SqlMigration {
  readonly version: number;
  readonly name: string;
  readonly postgres: readonly string[];
  readonly mysql: readonly string[];
}

const MYSQL_TABLE = "ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin";

export const SQL_MIGRATIONS: readonly SqlMigration[] = [
  {
    version: 1,
    name: "init",
    postgres: [
      "CREATE SEQUENCE IF NOT EXISTS trans_global_seq",
      `CREATE TABLE IF NOT EXISTS trans_global (
        id bigint NOT NULL DEFAULT nextval('trans_global_seq'),
        gid varchar(128) NOT NULL,
        trans_type varchar(45) NOT NULL,
        status varchar(45) NOT NULL,
        query_prepared text NOT NULL DEFAULT '',
        protocol varchar(45) NOT NULL,
        create_time timestamp(3) with time zone NOT NULL,
        update_time timestamp(3) with time zone NOT NULL,
        finish_time timestamp(3) with time zone DEFAULT NULL,
        rollback_time timestamp(3) with time zone DEFAULT NULL,
        options text NOT NULL DEFAULT '',
        custom_data text NOT NULL DEFAULT '',
        next_cron_interval bigint NOT NULL,
        next_cron_time timestamp(3) with time zone NOT NULL,
        owner varchar(128) NOT NULL DEFAULT '',
        ext_data text NOT NULL DEFAULT '',
        result text NOT NULL DEFAULT '',
        rollback_reason text NOT NULL DEFAULT '',
        PRIMARY KEY (id),
        CONSTRAINT gid UNIQUE (gid)
      )`,
      // Partial: the cron only ever looks for unfinished transactions, which are few.
      `CREATE INDEX IF NOT EXISTS trans_global_due ON trans_global (next_cron_time, id)
        WHERE status IN ('prepared', 'submitted', 'aborting')`,
      "CREATE INDEX IF NOT EXISTS trans_global_create_time ON trans_global (create_time)",
      "CREATE SEQUENCE IF NOT EXISTS trans_branch_op_seq",
      `CREATE TABLE IF NOT EXISTS trans_branch_op (
        id bigint NOT NULL DEFAULT nextval('trans_branch_op_seq'),
        gid varchar(128) NOT NULL,
        url text NOT NULL,
        bin_data bytea,
        branch_id varchar(128) NOT NULL CONSTRAINT branch_id_check CHECK (branch_id <> ''),
        op varchar(45) NOT NULL CONSTRAINT op_check CHECK (op <> ''),
        status varchar(45) NOT NULL,
        finish_time timestamp(3) with time zone DEFAULT NULL,
        create_time timestamp(3) with time zone NOT NULL,
        update_time timestamp(3) with time zone NOT NULL,
        PRIMARY KEY (id),
        CONSTRAINT gid_branch_uniq UNIQUE (gid, branch_id, op)
      )`,
      "CREATE SEQUENCE IF NOT EXISTS kv_seq",
      `CREATE TABLE IF NOT EXISTS kv (
        id bigint NOT NULL DEFAULT nextval('kv_seq'),
        cat varchar(45) NOT NULL,
        k varchar(128) NOT NULL,
        v text,
        version bigint NOT NULL DEFAULT 1,
        create_time timestamp(3) with time zone DEFAULT NULL,
        update_time timestamp(3) with time zone DEFAULT NULL,
        PRIMARY KEY (id),
        CONSTRAINT uniq_k UNIQUE (cat, k)
      )`,
    ],
    mysql: [
      `CREATE TABLE IF NOT EXISTS trans_global (
        id bigint NOT NULL AUTO_INCREMENT,
        gid varchar(128) NOT NULL,
        trans_type varchar(45) NOT NULL,
        status varchar(45) NOT NULL,
        query_prepared text NOT NULL,
        protocol varchar(45) NOT NULL,
        create_time datetime(3) NOT NULL,
        update_time datetime(3) NOT NULL,
        finish_time datetime(3) DEFAULT NULL,
        rollback_time datetime(3) DEFAULT NULL,
        options mediumtext NOT NULL,
        custom_data mediumtext NOT NULL,
        next_cron_interval bigint NOT NULL,
        next_cron_time datetime(3) NOT NULL,
        owner varchar(128) NOT NULL DEFAULT '',
        ext_data mediumtext NOT NULL,
        result mediumtext NOT NULL,
        rollback_reason mediumtext NOT NULL,
        -- MySQL has no partial index: this column is next_cron_time for unfinished rows and NULL
        -- otherwise, so its index walks due rows in order and claimDue's LIMIT stops early. With
        -- dtm's (status, next_cron_time) the three statuses need a filesort, and FOR UPDATE would
        -- lock every due row before sorting, leaving nothing for a second coordinator to claim.
        due_time datetime(3) GENERATED ALWAYS AS (IF(status IN ('prepared', 'submitted', 'aborting'), next_cron_time, NULL)) STORED,
        PRIMARY KEY (id),
        UNIQUE KEY gid (gid),
        KEY due (due_time),
        KEY create_time (create_time)
      ) ${MYSQL_TABLE}`,
      `CREATE TABLE IF NOT EXISTS trans_branch_op (
        id bigint NOT NULL AUTO_INCREMENT,
        gid varchar(128) NOT NULL,
        url text NOT NULL,
        bin_data longblob,
        branch_id varchar(128) NOT NULL,
        op varchar(45) NOT NULL,
        status varchar(45) NOT NULL,
        finish_time datetime(3) DEFAULT NULL,
        create_time datetime(3) NOT NULL,
        update_time datetime(3) NOT NULL,
        PRIMARY KEY (id),
        UNIQUE KEY gid_uniq (gid, branch_id, op),
        CONSTRAINT branch_id_check CHECK (branch_id <> ''),
        CONSTRAINT op_check CHECK (op <> '')
      ) ${MYSQL_TABLE}`,
      `CREATE TABLE IF NOT EXISTS kv (
        id bigint NOT NULL AUTO_INCREMENT,
        cat varchar(45) NOT NULL,
        k varchar(128) NOT NULL,
        v mediumtext,
        version bigint NOT NULL DEFAULT 1,
        create_time datetime(3) DEFAULT NULL,
        update_time datetime(3) DEFAULT NULL,
        PRIMARY KEY (id),
        UNIQUE KEY uniq_k (cat, k)
      ) ${MYSQL_TABLE}`,
    ],
  },
  {
    version: 2,
    name: "retention",
    // Retention (deleteFinished) finds old finished rows by index instead of scanning the table.
    // Postgres: partial, so unfinished rows (the hot ones) are not in it; built inside the
    // migration's transaction, which holds writes back while it runs (seconds per million rows).
    // MySQL has no partial index: (status, update_time) serves the two finished statuses as two
    // ranges; ADD INDEX is online, and migrateMysql treats "duplicate key name" as done.
    postgres: [
      `CREATE INDEX IF NOT EXISTS trans_global_finished ON trans_global (update_time)
        WHERE status IN ('succeed', 'failed')`,
    ],
    mysql: ["ALTER TABLE trans_global ADD INDEX finished (status, update_time)"],
  },
];

/**
 * CREATE TABLE IF NOT EXISTS would silently adopt a `trans_global` that dtm created (seconds-only
 * times, no dtx columns). Checked before migrating: the precision of an existing create_time
 * tells them apart (no row: no table yet); the message says what to do instead.
 */
export function checkOwnTables(createTimePrecision: readonly { precision: number | null }[], where: string): void {
  const found = createTimePrecision[0];
  if (found === undefined || found.precision === 3) return;
  throw new Error(
    `${where} already holds a trans_global table that dtx did not create (dtm's?); ` +
      "give dtx a database or schema of its own (in-flight dtm transactions are drained, not copied: see the README)",
  );
}

export function pendingMigrations(applied: Iterable<number>): SqlMigration[] {
  const done = new Set(applied);
  return SQL_MIGRATIONS.filter((m) => !done.has(m.version));
}
