/**
 * The store conformance suite against MySQL/MariaDB (scripts/services.sh), in a database of this
 * file's own, plus concurrent first migrations and what an operator sees in the datetime columns.
 */
import { describe, expect, it } from "vitest";
import { MysqlStore } from "../../server/src/store/sql/mysql-store.ts";
import { MysqlArea } from "../helpers/store-areas.ts";
import { describeSqlStoreConformance, openMigrated } from "./conformance.ts";
import { sagaBranches, trans } from "./suites/data.ts";

const area = new MysqlArea("store_my");

const openStore = (): Promise<MysqlStore> => openMigrated(() => new MysqlStore({ url: area.url, poolSize: 10 }));

describeSqlStoreConformance("mysql", area, openStore);

describe("mysql store: migrations and columns", () => {
  it("coordinators starting at once on an empty database migrate it exactly once", async () => {
    await area.query(`DROP DATABASE ${area.database}`);
    await area.query(`CREATE DATABASE ${area.database} CHARACTER SET utf8mb4`);
    const stores = Array.from({ length: 4 }, () => new MysqlStore({ url: area.url, poolSize: 2 }));
    try {
      await Promise.all(stores.map((s) => s.migrate()));
      const versions = await area.query<{ version: number }>(`SELECT version FROM ${area.database}.dtx_migrations`);
      expect(versions.map((v) => v.version)).toEqual([1]);
      const tables = await area.query<{ name: string }>(
        "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = ? ORDER BY table_name",
        [area.database],
      );
      expect(tables.map((t) => t.name)).toEqual(["dtx_migrations", "kv", "trans_branch_op", "trans_global"]);
      expect(await stores[0]?.saveNewTrans(trans("g1"), sagaBranches("g1", 1))).toBe("created");
      expect(await stores[3]?.findBranches("g1")).toHaveLength(2);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it("keeps times to the millisecond, as UTC in datetime(3) columns", async () => {
    const store = await openStore();
    try {
      await store.saveNewTrans(trans("ms", { createTime: Date.UTC(2024, 0, 2, 3, 4, 5, 678) }), []);
      const [row] = await area.query<{ text: string }>(
        `SELECT DATE_FORMAT(create_time, '%Y-%m-%d %H:%i:%s.%f') AS text FROM ${area.database}.trans_global WHERE gid = 'ms'`,
      );
      expect(row?.text).toBe("2024-01-02 03:04:05.678000");
    } finally {
      await store.close();
    }
  });

  it("refuses a database whose trans_global dtm created, instead of adopting it", async () => {
    await area.query(`DROP DATABASE ${area.database}`);
    await area.query(`CREATE DATABASE ${area.database} CHARACTER SET utf8mb4`);
    // dtm's DDL (PROTOCOL §10.2), cut down: whole-second datetimes.
    await area.query(`CREATE TABLE ${area.table("trans_global")} (id bigint PRIMARY KEY, gid varchar(128) NOT NULL UNIQUE,
      create_time datetime DEFAULT NULL)`);
    const store = new MysqlStore({ url: area.url });
    try {
      await expect(store.migrate()).rejects.toThrow(/trans_global table that dtx did not create/);
    } finally {
      await store.close();
    }
  });
});
