/**
 * The PostgreSQL store's group commit: the shared suite (./batch-suite.ts) on a schema of its own,
 * and the Batcher (server/src/store/sql/batcher.ts) that queues the calls of both SQL stores.
 */
import { describe, expect, it } from "vitest";
import { Batcher } from "../../server/src/store/sql/batcher.ts";
import { PostgresStore } from "../../server/src/store/sql/postgres-store.ts";
import { PgArea } from "../helpers/store-areas.ts";
import { describeGroupCommitSuite } from "./batch-suite.ts";
import { openMigrated } from "./conformance.ts";

const area = new PgArea("store_pgbatch");

describeGroupCommitSuite({
  name: "postgres",
  rejectedBy: "Postgres",
  area,
  open: (o = {}) =>
    openMigrated(() => new PostgresStore({ url: area.url, schema: area.schema, poolSize: o.poolSize ?? 10, batchWrites: o.batchWrites })),
  async count(table) {
    const [count] = await area.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${area.table(table)}`);
    return count?.n;
  },
  // check_violation and string_data_right_truncation.
  rejected: { check: { code: "23514" }, tooLong: { code: "22001" } },
});

describe("Batcher", () => {
  /** A batcher whose statements finish when the test says so; it records what each one carried. */
  function controlled(maxInFlight: number, maxBatch: number) {
    const sent: string[][] = [];
    const finish: (() => void)[] = [];
    const run = (ops: readonly string[]): Promise<string[]> => {
      sent.push([...ops]);
      return new Promise((resolve) => finish.push(() => resolve(ops.map((op) => `done ${op}`))));
    };
    const batcher = new Batcher<string, string>({
      maxInFlight, maxBatch, key: (op) => op.split(":")[0] ?? op, retrySingly: () => true,
      // No time limits in these tests (test/unit/batcher.test.ts covers them).
      startAfterMs: 3_600_000, maxQueued: 1000, maxQueueWaitMs: 3_600_000,
      runBatch: run, runOne: async (op) => (await run([op]))[0] ?? "",
    });
    const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
    return { batcher, sent, finish, flush };
  }

  it("sends a lone call at once, batches what queues behind it, and adds a statement only for a full batch", async () => {
    const { batcher, sent, finish, flush } = controlled(2, 3);
    const results = ["a", "b", "c"].map((op) => batcher.submit(op));
    expect(sent).toEqual([["a"]]);
    const more = ["d", "e"].map((op) => batcher.submit(op));
    // b, c, d, e queued: a full batch (3) goes out as the second statement.
    expect(sent).toEqual([["a"], ["b", "c", "d"]]);
    // a done: e alone is no full batch, so it waits for the statement still in flight.
    finish.shift()?.();
    await flush();
    expect(sent).toEqual([["a"], ["b", "c", "d"]]);
    finish.shift()?.();
    await flush();
    expect(sent).toEqual([["a"], ["b", "c", "d"], ["e"]]);
    while (finish.length > 0) {
      finish.shift()?.();
      await flush();
    }
    expect(await Promise.all([...results, ...more])).toEqual(["done a", "done b", "done c", "done d", "done e"]);
    await batcher.drain();
  });

  it("keeps calls with one key in call order, never two in one statement or in flight together", async () => {
    const { batcher, sent, finish, flush } = controlled(1, 10);
    const results = ["x:1", "x:2", "y:1", "x:3", "y:2"].map((op) => batcher.submit(op));
    while (finish.length > 0) {
      finish.shift()?.();
      await flush();
    }
    expect(sent).toEqual([["x:1"], ["x:2", "y:1"], ["x:3", "y:2"]]);
    expect(await Promise.all(results)).toEqual(["done x:1", "done x:2", "done y:1", "done x:3", "done y:2"]);
  });
});
