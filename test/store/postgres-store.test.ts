/**
 * The store conformance suite against PostgreSQL (scripts/services.sh), in a schema of this
 * file's own, plus what only Postgres has: the schema option and concurrent first migrations.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { sql } from "kysely";
import type { Kysely } from "kysely";
import { StatementNames } from "../../server/src/store/sql/pg-prepared.ts";
import { PostgresStore } from "../../server/src/store/sql/postgres-store.ts";
import type { StoreDatabase } from "../../server/src/store/sql/tables.ts";
import { PgArea } from "../helpers/store-areas.ts";
import { describeSqlStoreConformance, openMigrated } from "./conformance.ts";
import { T0, sagaBranches, trans } from "./suites/data.ts";

/** The store's own Kysely (protected): a query on it runs on the store's pooled session. */
const storeDb = (store: PostgresStore): Kysely<StoreDatabase> => (store as unknown as { db: Kysely<StoreDatabase> }).db;

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
      expect(versions.map((v) => v.version)).toEqual([1, 2]);
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

  it("cuts a fraction of a millisecond toward zero, as a Date would, on insert and on update", async () => {
    // Times reach the statements as epoch milliseconds (server/src/store/sql/pg-array-literal.ts);
    // a msg delay of fractional seconds can make a fractional one.
    const store = await openStore();
    try {
      await store.saveNewTrans(trans("frac", { nextCronTime: T0 + 1_500.75 }), []);
      expect((await store.findTrans("frac"))?.nextCronTime).toBe(T0 + 1_500);
      expect(await store.updateTrans("frac", "submitted", { updateTime: T0 + 7.9, nextCronTime: T0 + 2_000.5 }, [])).toBe(true);
      expect(await store.findTrans("frac")).toMatchObject({ updateTime: T0 + 7, nextCronTime: T0 + 2_000 });
    } finally {
      await store.close();
    }
  });

  it("refuses a schema whose trans_global dtm created, instead of adopting it", async () => {
    await area.drop();
    await area.query(`CREATE SCHEMA ${area.schema}`);
    // dtm's DDL (docs/protocol.md#storage), cut down: whole-second times.
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

describe("postgres store: retention index", () => {
  beforeAll(async () => {
    await area.drop();
    await (await openStore()).close();
  });

  it("migrating a schema of version 1 adds the partial index, and deleteFinished's query uses it", async () => {
    await area.query(`DROP INDEX ${area.table("trans_global_finished")}`);
    await area.query(`DELETE FROM ${area.table("dtx_migrations")} WHERE version = 2`);
    const store = await openStore();
    try {
      const indexes = await area.query<{ indexdef: string }>("SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = 'trans_global_finished'", [area.schema]);
      expect(indexes[0]?.indexdef).toMatch(/\(update_time\) WHERE .*succeed.*failed/);
      // Planner statistics of a big table: a plan on the index, not a scan of every row.
      await area.query(`SET enable_seqscan = off`);
      const plan = await area.query<{ "QUERY PLAN": string }>(`EXPLAIN SELECT id FROM ${area.table("trans_global")}
        WHERE status IN ('succeed', 'failed') AND update_time < now() ORDER BY update_time LIMIT 500 FOR UPDATE SKIP LOCKED`);
      await area.query(`RESET enable_seqscan`);
      expect(plan.map((r) => r["QUERY PLAN"]).join("\n")).toMatch(/Index Scan using trans_global_finished/);
    } finally {
      await store.close();
    }
  });
});

describe("postgres store: prepared statements", () => {
  // the tests above leave the schema dropped or dtm-shaped
  beforeAll(async () => {
    await area.drop();
    await (await openStore()).close();
  });

  /** The statements the server holds for the store's one pooled session. */
  const prepared = (store: PostgresStore): Promise<string[]> =>
    sql<{ name: string }>`SELECT name FROM pg_prepared_statements ORDER BY name`.execute(storeDb(store)).then((r) => r.rows.map((x) => x.name));

  it("runs the store's parameterised statements as named prepared statements, parsed once per connection", async () => {
    const store = await openMigrated(() => new PostgresStore({ url: area.url, schema: area.schema, poolSize: 1 }));
    try {
      const round = async (i: number): Promise<void> => {
        expect(await store.saveNewTrans(trans(`p${i}`), sagaBranches(`p${i}`, 1))).toBe("created");
        expect(await store.updateTrans(`p${i}`, "submitted", { updateTime: T0 + 1, status: "succeed", finishTime: T0 + 1 }, [{ branchId: "01", op: "action", status: "succeed", finishTime: T0 + 1 }])).toBe(true);
      };
      const before = await prepared(store);
      await round(0);
      const afterOne = await prepared(store);
      // saveNewTrans and updateTrans added one named statement each...
      expect(afterOne.filter((n) => !before.includes(n))).toHaveLength(2);
      expect(afterOne.every((n) => n.startsWith("dtx_"))).toBe(true);
      // ...and more calls reuse them
      await round(1);
      await round(2);
      expect(await prepared(store)).toEqual(afterOne);
      expect((await store.findBranches("p2")).map((b) => b.status)).toEqual(["prepared", "succeed"]);
    } finally {
      await store.close();
    }
  });

  it("prepareStatements: false prepares nothing", async () => {
    const store = await openMigrated(() => new PostgresStore({ url: area.url, schema: area.schema, poolSize: 1, prepareStatements: false }));
    try {
      expect(await store.saveNewTrans(trans("np"), sagaBranches("np", 1))).toBe("created");
      expect(await prepared(store)).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it("names at most 500 distinct statement texts; later ones run unnamed", () => {
    const names = new StatementNames();
    for (let i = 0; i < 500; i++) expect(names.of(`select ${i}`)).toBe(`dtx_${i}`);
    expect(names.of("select 500")).toBeUndefined();
    expect(names.of("select 7")).toBe("dtx_7");
    expect(names.size).toBe(500);
  });
});
