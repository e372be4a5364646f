import { sql } from "kysely";
import type { Kysely } from "kysely";
import { checkOwnTables, pendingMigrations } from "./migrations.ts";
import type { StoreDatabase } from "./tables.ts";

/** How long a starting coordinator waits for another one's migration (seconds). */
const LOCK_WAIT_SECONDS = 60;

/**
 * Applies pending migrations on one connection holding a named lock (GET_LOCK, keyed by the
 * database): coordinators starting at the same time queue on it, and each later one finds the
 * work done. MySQL commits every DDL statement on its own, so a migration is not atomic; its
 * statements are idempotent instead, and its version row is written last.
 */
export async function migrateMysql(db: Kysely<StoreDatabase>, now: number): Promise<void> {
  await db.connection().execute(async (conn) => {
    // Lock names are at most 64 characters; a database name alone may be 64.
    const lockName = sql`CONCAT('dtx_migrate_', SHA1(DATABASE()))`;
    const locked = await sql<{ got: number | null }>`SELECT GET_LOCK(${lockName}, ${LOCK_WAIT_SECONDS}) AS got`.execute(conn);
    if (locked.rows[0]?.got !== 1) throw new Error(`another coordinator held the migration lock for more than ${LOCK_WAIT_SECONDS} s`);
    try {
      const column = await sql<{ precision: number | null }>`SELECT datetime_precision AS \`precision\` FROM information_schema.columns
        WHERE table_schema = DATABASE() AND table_name = 'trans_global' AND column_name = 'create_time'`.execute(conn);
      checkOwnTables(column.rows, "the database");
      await sql`CREATE TABLE IF NOT EXISTS dtx_migrations (
        version int NOT NULL PRIMARY KEY, name varchar(100) NOT NULL, applied_at datetime(3) NOT NULL
      ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`.execute(conn);
      const applied = await conn.selectFrom("dtx_migrations").select("version").execute();
      for (const m of pendingMigrations(applied.map((r) => r.version))) {
        for (const statement of m.mysql) await runIdempotent(conn, statement);
        await conn.insertInto("dtx_migrations").values({ version: m.version, name: m.name, applied_at: new Date(now) }).execute();
      }
    } finally {
      await sql`SELECT RELEASE_LOCK(${lockName})`.execute(conn);
    }
  });
}

/**
 * MySQL 8 has no ADD INDEX IF NOT EXISTS: an index that a migration interrupted half-way already
 * added (ER_DUP_KEYNAME) counts as done, so the migration can simply run again.
 */
async function runIdempotent(conn: Kysely<StoreDatabase>, statement: string): Promise<void> {
  try {
    await sql.raw(statement).execute(conn);
  } catch (error) {
    if ((error as { errno?: unknown } | null)?.errno !== 1061) throw error;
  }
}
