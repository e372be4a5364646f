import { sql } from "kysely";
import type { Kysely } from "kysely";
import { checkOwnTables, pendingMigrations } from "./migrations.ts";
import type { StoreDatabase } from "./tables.ts";

/**
 * Applies pending migrations in one transaction (Postgres DDL is transactional), under a
 * transaction-scoped advisory lock keyed by the schema: coordinators starting at the same time
 * queue on the lock, and each later one finds the work done. A failure leaves nothing behind.
 */
export async function migratePostgres(db: Kysely<StoreDatabase>, schema: string, now: number): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await sql`SELECT pg_advisory_xact_lock(hashtext(${`dtx.migrate.${schema}`}))`.execute(trx);
    // Checked first, so a user without CREATE on the database can use a schema made for it.
    const exists = await sql<{ one: number }>`SELECT 1 AS one FROM pg_namespace WHERE nspname = ${schema}`.execute(trx);
    if (exists.rows.length === 0) await sql`CREATE SCHEMA ${sql.id(schema)}`.execute(trx);
    await sql`CREATE TABLE IF NOT EXISTS dtx_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamp(3) with time zone NOT NULL)`.execute(trx);
    const column = await sql<{ precision: number | null }>`SELECT datetime_precision AS precision FROM information_schema.columns
      WHERE table_schema = ${schema} AND table_name = 'trans_global' AND column_name = 'create_time'`.execute(trx);
    checkOwnTables(column.rows, `schema ${schema}`);
    const applied = await trx.selectFrom("dtx_migrations").select("version").execute();
    for (const m of pendingMigrations(applied.map((r) => r.version))) {
      for (const statement of m.postgres) await sql.raw(statement).execute(trx);
      await trx.insertInto("dtx_migrations").values({ version: m.version, name: m.name, applied_at: new Date(now) }).execute();
    }
  });
}
