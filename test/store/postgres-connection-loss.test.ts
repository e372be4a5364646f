/**
 * A Postgres connection that ends while the store holds it between two queries (a failover, the
 * server restarting, or the store destroying a hung connection itself) must not raise an
 * uncaught exception: pg emits "error" on such a client, pg-pool listens only while a client is
 * idle, and an "error" nobody listens to kills the coordinator. Seen three times in one CI run of
 * test/e2e/store-failover.test.ts before the store listened on every client; this test makes the
 * moment deterministic: hold a connection, have the server terminate it, wait until it is gone.
 */
import { sql } from "kysely";
import type { Kysely } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStore } from "../../server/src/store/sql/postgres-store.ts";
import type { StoreDatabase } from "../../server/src/store/sql/tables.ts";
import { PgArea } from "../helpers/store-areas.ts";
import { openMigrated } from "./conformance.ts";

const storeDb = (store: PostgresStore): Kysely<StoreDatabase> => (store as unknown as { db: Kysely<StoreDatabase> }).db;

const area = new PgArea("store_pg_loss");
let store: PostgresStore;

beforeAll(async () => {
  await area.open();
  store = await openMigrated(() => new PostgresStore({ url: area.url, schema: area.schema, poolSize: 2 }));
});
afterAll(async () => {
  await store?.close();
  await area.close();
});

describe("postgres store: a held connection that the server ends", () => {
  it("raises no uncaught exception, and the store keeps working on a new connection", async () => {
    const uncaught: unknown[] = [];
    const listener = (error: unknown): void => void uncaught.push(error);
    process.on("uncaughtException", listener);
    try {
      await storeDb(store).connection().execute(async (conn) => {
        const { rows } = await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(conn);
        const pid = rows[0]?.pid;
        expect(pid).toBeTypeOf("number");
        // Between two queries of the held connection, the server ends it.
        await area.query("SELECT pg_terminate_backend($1)", [pid]);
        // Bounded wait for the server to have dropped it, then for the client to see the end.
        for (let i = 0; i < 100; i++) {
          const left = await area.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", [pid]);
          if (left.length === 0) break;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        await new Promise((resolve) => setImmediate(resolve));
        await expect(sql`SELECT 1`.execute(conn)).rejects.toThrow();
      }).catch(() => undefined);
      await new Promise((resolve) => setImmediate(resolve));
      expect(uncaught).toEqual([]);
      await store.ping();
    } finally {
      process.off("uncaughtException", listener);
    }
  });
});
