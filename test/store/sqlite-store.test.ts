/**
 * The store conformance suite against a real SQLite file in a temp dir (a fresh file per test),
 * plus what only the embedded store has: group commit of concurrent writes.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SqliteStore } from "../../server/src/store/sqlite/sqlite-store.ts";
import { describeStoreConformance } from "./conformance.ts";
import { branch, mustFind, sagaBranches, T0, trans } from "./suites/data.ts";

let dir = "";
let path = "";
let files = 0;

describeStoreConformance({
  name: "sqlite",
  async setup() {
    dir = mkdtempSync(join(tmpdir(), "dtx-sqlite-"));
  },
  async reset() {
    files += 1;
    // A subdirectory that does not exist yet: the store creates it.
    path = join(dir, `t${files}`, "dtx.db");
  },
  async open() {
    return new SqliteStore({ path });
  },
  async teardown() {
    rmSync(dir, { recursive: true, force: true });
  },
});

describe("sqlite store: group commit", () => {
  let gcDir = "";
  let store: SqliteStore;
  beforeEach(() => {
    gcDir = mkdtempSync(join(tmpdir(), "dtx-sqlite-gc-"));
    store = new SqliteStore({ path: join(gcDir, "dtx.db") });
  });
  afterEach(async () => {
    await store.close();
    rmSync(gcDir, { recursive: true, force: true });
  });

  it("concurrent writes share a transaction", async () => {
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => store.saveNewTrans(trans(`gc${i}`), sagaBranches(`gc${i}`, 2))),
    );
    expect(results.every((r) => r === "created")).toBe(true);
    expect(store.maxBatch).toBeGreaterThan(1);
  });

  it("a write that throws inside a batch rejects only its caller; later writes of the batch see the earlier ones", async () => {
    const calls = [
      store.saveNewTrans(trans("ok1"), sagaBranches("ok1", 1)),
      // Violates CHECK (op <> ''): this caller's trans row must roll back with its branch.
      store.saveNewTrans(trans("bad"), [branch("bad", "01", "action"), branch("bad", "01", "")]),
      // Queued after ok1's save in the same batch, so it finds the row.
      store.updateTrans("ok1", "submitted", { status: "aborting", updateTime: T0 + 1 }, []),
      store.saveNewTrans(trans("dup"), [branch("dup", "01", "action"), branch("dup", "01", "action")]),
      store.saveNewTrans(trans("ok2"), sagaBranches("ok2", 1)),
    ];
    const settled = await Promise.allSettled(calls);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled", "rejected", "fulfilled"]);
    expect(store.maxBatch).toBeGreaterThanOrEqual(5);
    const bad = settled[1];
    expect(bad?.status === "rejected" ? String(bad.reason) : "").toMatch(/CHECK/i);
    expect(await store.findTrans("bad")).toBeNull();
    expect(await store.findTrans("dup")).toBeNull();
    expect((await mustFind(store, "ok1")).status).toBe("aborting");
    expect(await store.findBranches("ok2")).toHaveLength(2);
  });
});
