/**
 * The store conformance suite against MySQL/MariaDB (scripts/services.sh), in a database of this
 * file's own, plus concurrent first migrations and what an operator sees in the datetime columns.
 */
import { beforeAll, describe, expect, it } from "vitest";
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
      expect(versions.map((v) => v.version)).toEqual([1, 2]);
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
    // dtm's DDL (docs/protocol.md#storage), cut down: whole-second datetimes.
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

describe("mysql store: saveNewTrans in one round trip", () => {
  // the tests above leave the database dtm-shaped
  beforeAll(async () => {
    await area.query(`DROP DATABASE IF EXISTS ${area.database}`);
    await area.query(`CREATE DATABASE ${area.database} CHARACTER SET utf8mb4`);
    await (await openStore()).close();
  });

  it("after a duplicate gid or a failed branch INSERT the connection is not left inside a transaction", async () => {
    // one connection: every call below runs on the session the failed ones used
    const store = await openMigrated(() => new MysqlStore({ url: area.url, poolSize: 1 }));
    try {
      expect(await store.saveNewTrans(trans("one"), sagaBranches("one", 1))).toBe("created");
      expect(await store.saveNewTrans(trans("one"), sagaBranches("one", 2))).toBe("exists");
      await expect(store.saveNewTrans(trans("twice"), [...sagaBranches("twice", 1), ...sagaBranches("twice", 1)])).rejects.toThrow(/duplicate/i);
      // an autocommit write now: if the session were still in a transaction, nobody else would see it
      expect(await store.updateTrans("one", "submitted", { status: "aborting", updateTime: 1 }, [])).toBe(true);
      const seen = await area.query<{ status: string }>(`SELECT status FROM ${area.table("trans_global")} ORDER BY gid`);
      expect(seen.map((r) => r.status)).toEqual(["aborting"]);
      expect(await area.query(`SELECT gid FROM ${area.table("trans_branch_op")} WHERE gid = 'twice'`)).toEqual([]);
      expect((await store.findBranches("one")).map((b) => `${b.branchId}:${b.op}`)).toEqual(["01:compensate", "01:action"]);
    } finally {
      await store.close();
    }
  });
});

describe("mysql store: retention index", () => {
  beforeAll(async () => {
    await area.query(`DROP DATABASE IF EXISTS ${area.database}`);
    await area.query(`CREATE DATABASE ${area.database} CHARACTER SET utf8mb4`);
    await (await openStore()).close();
  });

  const hasIndex = async (): Promise<boolean> =>
    (await area.query(`SHOW INDEX FROM ${area.table("trans_global")} WHERE Key_name = 'finished'`)).length > 0;

  it("migrating a database of version 1 adds the index; a migration interrupted after adding it runs again", async () => {
    // Interrupted: the index is there, the version row is not.
    await area.query(`DELETE FROM ${area.table("dtx_migrations")} WHERE version = 2`);
    await (await openStore()).close();
    expect(await hasIndex()).toBe(true);
    // A version-1 database.
    await area.query(`ALTER TABLE ${area.table("trans_global")} DROP INDEX finished`);
    await area.query(`DELETE FROM ${area.table("dtx_migrations")} WHERE version = 2`);
    expect(await hasIndex()).toBe(false);
    await (await openStore()).close();
    expect(await hasIndex()).toBe(true);
    const versions = await area.query<{ version: number }>(`SELECT version FROM ${area.table("dtx_migrations")} ORDER BY version`);
    expect(versions.map((v) => v.version)).toEqual([1, 2]);
  });
});
