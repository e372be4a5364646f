/**
 * The store conformance suite against a real SQLite file in a temp dir (a fresh file per test),
 * plus what only the embedded store has: group commit of concurrent writes.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SQLITE_MIGRATIONS } from "../../server/src/store/sqlite/migrations.ts";
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

describe("sqlite store: deleteFinished in slices", () => {
  it("a batch larger than one slice (100) deletes exactly `limit`, and a write queued meanwhile commits", async () => {
    const sliceDir = mkdtempSync(join(tmpdir(), "dtx-sqlite-slice-"));
    const store = new SqliteStore({ path: join(sliceDir, "dtx.db") });
    try {
      for (let i = 0; i < 260; i++) await store.saveNewTrans(trans(`old${i}`, { status: "succeed", updateTime: T0 + i }), sagaBranches(`old${i}`, 1));
      const [batch, saved] = await Promise.all([store.deleteFinished(T0 + 1_000, 250), store.saveNewTrans(trans("meanwhile"), [])]);
      expect(batch).toEqual({ deleted: 250, pruned: 0, more: true });
      expect(saved).toBe("created");
      // the oldest went first
      expect(await store.findTrans("old249")).toBeNull();
      expect((await store.findTrans("old250"))?.gid).toBe("old250");
      expect(await store.deleteFinished(T0 + 1_000, 250)).toEqual({ deleted: 10, pruned: 0, more: false });
    } finally {
      await store.close();
      rmSync(sliceDir, { recursive: true, force: true });
    }
  });
});

describe("sqlite store: upgrade", () => {
  it("opening a database of schema version 1 adds the retention index, and keeps the rows", async () => {
    const upDir = mkdtempSync(join(tmpdir(), "dtx-sqlite-up-"));
    const file = join(upDir, "dtx.db");
    try {
      const v1 = new BetterSqlite3(file);
      v1.exec("CREATE TABLE dtx_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)");
      v1.exec(SQLITE_MIGRATIONS[0]?.sql ?? "");
      v1.prepare("INSERT INTO dtx_migrations VALUES (1, 'init', 0)").run();
      v1.prepare(`INSERT INTO trans_global (gid, trans_type, status, protocol, create_time, update_time, next_cron_interval, next_cron_time)
        VALUES ('old', 'saga', 'succeed', 'http', 1, 1, 0, 1)`).run();
      v1.close();

      const store = new SqliteStore({ path: file });
      expect(await store.deleteFinished(T0, 10)).toEqual({ deleted: 1, pruned: 0, more: false });
      await store.close();
      const db = new BetterSqlite3(file, { readonly: true });
      expect(db.prepare("SELECT version FROM dtx_migrations ORDER BY version").all()).toEqual([{ version: 1 }, { version: 2 }]);
      expect(db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'trans_global_finished'").all()).toHaveLength(1);
      const plan = db.prepare("EXPLAIN QUERY PLAN SELECT id FROM trans_global WHERE status IN ('succeed', 'failed') AND update_time < 5 ORDER BY update_time LIMIT 10").all() as { detail: string }[];
      expect(plan.map((p) => p.detail).join(" ")).toMatch(/USING INDEX trans_global_finished/);
      db.close();
    } finally {
      rmSync(upDir, { recursive: true, force: true });
    }
  });
});
