/**
 * A Postgres schema with the store's tables, and a client on it: for benchmarks that write rows
 * themselves (bench/lib/seed-finished.ts, bench/pg-lone-save.ts). The store migrates the schema
 * (creating it if missing); the caller ends the client and drops what it made.
 */
import pg from "pg";
import { PostgresStore } from "../../server/src/store/sql/postgres-store.ts";

export async function migratedSchemaClient(url: string, schema: string): Promise<pg.Client> {
  const store = new PostgresStore({ url, schema, poolSize: 1 });
  await store.migrate();
  await store.close();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`SET search_path TO "${schema.replaceAll('"', '""')}"`);
  } catch (error) {
    await client.end();
    throw error;
  }
  return client;
}
