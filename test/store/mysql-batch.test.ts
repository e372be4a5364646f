/**
 * The MySQL/MariaDB store's group commit (server/src/store/sql/mysql-batch.ts): the shared suite
 * (./batch-suite.ts) on a database of its own, and what only this store's batch SQL needs.
 */
import { describe, expect, it } from "vitest";
import { MysqlStore } from "../../server/src/store/sql/mysql-store.ts";
import { MysqlArea } from "../helpers/store-areas.ts";
import { batchesOf, describeGroupCommitSuite } from "./batch-suite.ts";
import { openMigrated } from "./conformance.ts";
import { mustFind, sagaBranches, trans } from "./suites/data.ts";

const area = new MysqlArea("store_mybatch");

const open = (o: { batchWrites?: boolean; poolSize?: number } = {}): Promise<MysqlStore> =>
  openMigrated(() => new MysqlStore({ url: area.url, poolSize: o.poolSize ?? 10, batchWrites: o.batchWrites }));

describeGroupCommitSuite({
  name: "mysql",
  rejectedBy: "the server",
  area,
  open,
  async count(table) {
    const [count] = await area.query<{ n: number }>(`SELECT count(*) AS n FROM ${area.table(table)}`);
    return Number(count?.n);
  },
  // branch_id '' violates the CHECK constraint (SQLSTATE 23000); a branch status longer than
  // varchar(45) is an error (1406) because the sessions run STRICT_ALL_TABLES.
  rejected: { check: { sqlState: "23000" }, tooLong: { errno: 1406 } },
});

// saveBatchQuery assumes every gid is new and finds the stored ones after a duplicate key error.
describe("mysql store: batched writes", () => {
  it("saveNewTrans batches mixing stored and new gids answer exists / created without re-running one by one", async () => {
    // A msg is prepared, then submitted with the same gid: "exists" is an everyday answer.
    const single = await open({ batchWrites: false });
    const store = await open({ poolSize: 2 });
    try {
      await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 3 === 0 ? single.saveNewTrans(trans(`m${i}`, { customData: "first" }), sagaBranches(`m${i}`, 1)) : undefined)));
      const lead = store.saveNewTrans(trans("lead"), []);
      const results = await Promise.all(Array.from({ length: 40 }, (_, i) =>
        store.saveNewTrans(trans(`m${i}`, { customData: "second" }), sagaBranches(`m${i}`, 2))));
      await lead;
      expect(results).toEqual(Array.from({ length: 40 }, (_, i) => (i % 3 === 0 ? "exists" : "created")));
      for (let i = 0; i < 40; i++) {
        expect((await mustFind(store, `m${i}`)).customData).toBe(i % 3 === 0 ? "first" : "second");
        expect(await store.findBranches(`m${i}`)).toHaveLength(i % 3 === 0 ? 2 : 4);
      }
      expect(batchesOf(store).saves).toBeGreaterThan(0);
      expect(batchesOf(store).splits).toBe(0);
    } finally {
      await Promise.all([store.close(), single.close()]);
    }
  });
});
