/**
 * The store conformance suite against PostgreSQL (scripts/services.sh), in a schema of this
 * file's own, plus what only Postgres has: the schema option and concurrent first migrations.
 */
import { describe, expect, it } from "vitest";
import { PostgresStore } from "../../server/src/store/sql/postgres-store.ts";
import { PgArea } from "../helpers/store-areas.ts";
import { describeSqlStoreConformance, openMigrated } from "./conformance.ts";
import { sagaBranches, trans } from "./suites/data.ts";

const area = new PgArea("store_pg");

const openStore = (): Promise<PostgresStore> => openMigrated(() => new PostgresStore({ url: area.url, schema: area.schema, poolSize: 10 }));

describeSqlStoreConformance("postgres", area, openStore);

describe("postgres store: schema and migrations", () => {
  it("coordinators starting at once on an empty schema migrate it exactly once", async () => {
    await area.drop();
    const stores = Array.from({ length: 4 }, () => new PostgresStore({ url: area.url, schema: area.schema, poolSize: 2 }));
    try {
      await Promise.all(stores.map((s) => s.migrate()));
      const versions = await area.query<{ version: number }>(`SELECT version FROM ${area.schema}.dtx_migrations`);
      expect(versions.map((v) => v.version)).toEqual([1]);
      const tables = await area.query<{ table_name: string }>(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name",
        [area.schema],
      );
      expect(tables.map((t) => t.table_name)).toEqual(["dtx_migrations", "kv", "trans_branch_op", "trans_global"]);
      expect(await stores[0]?.saveNewTrans(trans("g1"), sagaBranches("g1", 1))).toBe("created");
      expect(await stores[3]?.findBranches("g1")).toHaveLength(2);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it("keeps times to the millisecond in timestamptz columns an operator can read", async () => {
    const store = await openStore();
    try {
      await store.saveNewTrans(trans("ms", { createTime: Date.UTC(2024, 0, 2, 3, 4, 5, 678) }), []);
      const [row] = await area.query<{ text: string }>(
        `SELECT to_char(create_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') AS text FROM ${area.schema}.trans_global WHERE gid = 'ms'`,
      );
      expect(row?.text).toBe("2024-01-02 03:04:05.678");
    } finally {
      await store.close();
    }
  });

  it("refuses a schema whose trans_global dtm created, instead of adopting it", async () => {
    await area.drop();
    await area.query(`CREATE SCHEMA ${area.schema}`);
    // dtm's DDL (PROTOCOL §10.3), cut down: whole-second times.
    await area.query(`CREATE TABLE ${area.table("trans_global")} (id bigint PRIMARY KEY, gid varchar(128) NOT NULL UNIQUE,
      create_time timestamp(0) with time zone DEFAULT NULL)`);
    const store = new PostgresStore({ url: area.url, schema: area.schema });
    try {
      await expect(store.migrate()).rejects.toThrow(/trans_global table that dtx did not create/);
    } finally {
      await store.close();
    }
  });
});
