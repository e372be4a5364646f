import type { Database } from "better-sqlite3";

/**
 * Append-only schema migrations for the embedded store, kept in code so nothing is read from
 * disk at run time. Never edit a released migration; add the next one.
 */
export interface SqliteMigration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const SQLITE_MIGRATIONS: readonly SqliteMigration[] = [
  {
    version: 1,
    name: "init",
    sql: `
      CREATE TABLE trans_global (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        gid TEXT NOT NULL UNIQUE,
        trans_type TEXT NOT NULL,
        status TEXT NOT NULL,
        query_prepared TEXT NOT NULL DEFAULT '',
        protocol TEXT NOT NULL,
        create_time INTEGER NOT NULL,
        update_time INTEGER NOT NULL,
        finish_time INTEGER,
        rollback_time INTEGER,
        options TEXT NOT NULL DEFAULT '',
        custom_data TEXT NOT NULL DEFAULT '',
        next_cron_interval INTEGER NOT NULL,
        next_cron_time INTEGER NOT NULL,
        owner TEXT NOT NULL DEFAULT '',
        ext_data TEXT NOT NULL DEFAULT '',
        result TEXT NOT NULL DEFAULT '',
        rollback_reason TEXT NOT NULL DEFAULT ''
      );
      -- Partial index: the cron only ever looks for unfinished transactions, which are few.
      CREATE INDEX trans_global_due ON trans_global (next_cron_time)
        WHERE status IN ('prepared', 'submitted', 'aborting');
      CREATE INDEX trans_global_create_time ON trans_global (create_time);
      CREATE TABLE trans_branch_op (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        gid TEXT NOT NULL,
        url TEXT NOT NULL,
        bin_data BLOB,
        branch_id TEXT NOT NULL CHECK (branch_id <> ''),
        op TEXT NOT NULL CHECK (op <> ''),
        status TEXT NOT NULL,
        finish_time INTEGER,
        create_time INTEGER NOT NULL,
        update_time INTEGER NOT NULL,
        UNIQUE (gid, branch_id, op)
      );
      CREATE TABLE kv (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        cat TEXT NOT NULL,
        k TEXT NOT NULL,
        v TEXT,
        version INTEGER NOT NULL DEFAULT 1,
        create_time INTEGER,
        update_time INTEGER,
        UNIQUE (cat, k)
      );
    `,
  },
  {
    version: 2,
    name: "retention",
    sql: `
      -- Partial index: retention (deleteFinished) finds old finished rows without scanning the
      -- table; unfinished rows are not in it, so the write path pays only when a trans finishes.
      CREATE INDEX IF NOT EXISTS trans_global_finished ON trans_global (update_time)
        WHERE status IN ('succeed', 'failed');
    `,
  },
];

/** Applies pending migrations, each in its own transaction together with its bookkeeping row. */
export function migrateSqlite(db: Database, now: number): void {
  db.exec("CREATE TABLE IF NOT EXISTS dtx_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)");
  const applied = new Set(
    (db.prepare("SELECT version FROM dtx_migrations").all() as { version: number }[]).map((r) => r.version),
  );
  for (const m of SQLITE_MIGRATIONS) {
    if (applied.has(m.version)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare("INSERT INTO dtx_migrations (version, name, applied_at) VALUES (?, ?, ?)").run(m.version, m.name, now);
    }).immediate();
  }
}
