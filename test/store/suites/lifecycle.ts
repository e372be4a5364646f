/** KV, failure isolation under concurrency, close / reopen, and repeated migration. */
import { describe, expect, it } from "vitest";
import type { ConformanceContext } from "../conformance.ts";
import { branch, mustFind, sagaBranches, T0, trans } from "./data.ts";

export function lifecycleSuite(ctx: ConformanceContext): void {
  describe("concurrency and durability", () => {
    it("200 concurrent saveNewTrans calls all commit", async () => {
      const { store } = ctx;
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) => store.saveNewTrans(trans(`gc${i}`), sagaBranches(`gc${i}`, 2))),
      );
      expect(results.every((r) => r === "created")).toBe(true);
      for (const i of [0, 57, 199]) expect(await store.findBranches(`gc${i}`)).toHaveLength(4);
      expect((await store.scanTrans({ position: "", limit: 1_000 })).transactions).toHaveLength(200);
    });

    it("a write that throws rejects only its caller, and leaves none of its rows", async () => {
      const { store } = ctx;
      const settled = await Promise.allSettled([
        store.saveNewTrans(trans("ok1"), sagaBranches("ok1", 1)),
        // Violates CHECK (op <> ''): this caller's trans row must roll back with its branch.
        store.saveNewTrans(trans("bad"), [branch("bad", "01", "action"), branch("bad", "01", "")]),
        // UNIQUE (gid, branch_id, op) inside one saveNewTrans.
        store.saveNewTrans(trans("dup"), [branch("dup", "01", "action"), branch("dup", "01", "action")]),
        store.saveNewTrans(trans("ok2"), sagaBranches("ok2", 1)),
      ]);
      expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "rejected", "fulfilled"]);
      const bad = settled[1];
      expect(bad?.status === "rejected" ? String(bad.reason) : "").toMatch(/check/i);
      expect(await store.findTrans("bad")).toBeNull();
      expect(await store.findBranches("bad")).toEqual([]);
      expect(await store.findTrans("dup")).toBeNull();
      expect(await store.findBranches("dup")).toEqual([]);
      expect(await store.updateTrans("ok1", "submitted", { status: "aborting", updateTime: T0 + 1 }, [])).toBe(true);
      expect((await mustFind(store, "ok1")).status).toBe("aborting");
      expect(await store.findBranches("ok1")).toHaveLength(2);
      expect(await store.findBranches("ok2")).toHaveLength(2);
      // The store keeps working afterwards.
      expect(await store.saveNewTrans(trans("after"), [])).toBe("created");
    });

    it("data survives close and reopen; a write in flight at close() is finished first", async () => {
      const { store } = ctx;
      await store.saveNewTrans(trans("keep", { customData: '{"k":1}' }), sagaBranches("keep", 2));
      await store.updateTrans("keep", "submitted", { status: "aborting", updateTime: T0 + 1, rollbackReason: "why" }, [
        { branchId: "02", op: "action", status: "failed", finishTime: T0 + 1 },
      ]);
      const before = await mustFind(store, "keep");
      const branchesBefore = await store.findBranches("keep");
      const late = store.saveNewTrans(trans("late"), []);
      await store.close();
      expect(await late).toBe("created");

      const reopened = await ctx.open();
      await reopened.migrate(); // idempotent on an existing schema
      await reopened.ping();
      expect(await reopened.findTrans("keep")).toEqual(before);
      expect(await reopened.findBranches("keep")).toEqual(branchesBefore);
      expect(await reopened.findTrans("late")).not.toBeNull();
      expect(await reopened.saveNewTrans(trans("keep"), [])).toBe("exists");
    });

    it("migrate() run by several stores at once on an existing schema changes nothing", async () => {
      await ctx.store.saveNewTrans(trans("g1"), sagaBranches("g1", 1));
      const others = await Promise.all([ctx.open(), ctx.open()]);
      await Promise.all([ctx.store.migrate(), ...others.map((s) => s.migrate())]);
      expect(await others[0]?.findBranches("g1")).toHaveLength(2);
    });
  });

  describe("KV", () => {
    it("create / find / CAS update / scan / delete", async () => {
      const { store } = ctx;
      expect(await store.createKV("topics", "t1", "v1", T0)).toBe("created");
      expect(await store.createKV("topics", "t1", "other", T0)).toBe("exists");
      expect(await store.findKV("topics", "t1")).toMatchObject({ cat: "topics", k: "t1", v: "v1", version: 1, createTime: T0, updateTime: T0 });
      expect(await store.updateKV("topics", "t1", "v2", 2, T0 + 1)).toBe(false);
      expect(await store.updateKV("topics", "t1", "v2", 1, T0 + 1)).toBe(true);
      expect(await store.findKV("topics", "t1")).toMatchObject({ v: "v2", version: 2, updateTime: T0 + 1 });
      await store.createKV("topics", "t2", "x", T0);
      await store.createKV("topics", "t3", "y", T0);
      await store.createKV("other", "t1", "z", T0);
      const page = await store.scanKV("topics", "", 2);
      expect(page.kv.map((e) => e.k)).toEqual(["t3", "t2"]);
      const rest = await store.scanKV("topics", page.nextPosition, 2);
      expect(rest.kv.map((e) => e.k)).toEqual(["t1"]);
      expect(rest.nextPosition).toBe("");
      expect(await store.deleteKV("topics", "t1")).toBe(true);
      expect(await store.deleteKV("topics", "t1")).toBe(false);
      expect(await store.findKV("topics", "t1")).toBeNull();
      expect(await store.findKV("other", "t1")).toMatchObject({ v: "z" });
    });

    it("concurrent CAS updates of one version: exactly one wins", async () => {
      const other = await ctx.open();
      await ctx.store.createKV("topics", "t1", "v1", T0);
      const results = await Promise.all([ctx.store, other, ctx.store, other].map((s, i) => s.updateKV("topics", "t1", `w${i}`, 1, T0 + i)));
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await ctx.store.findKV("topics", "t1")).toMatchObject({ v: `w${results.indexOf(true)}`, version: 2 });
    });

    it("concurrent creates of one key: exactly one is created", async () => {
      const other = await ctx.open();
      const results = await Promise.all([ctx.store, other, ctx.store].map((s, i) => s.createKV("topics", "t1", `v${i}`, T0)));
      expect(results.filter((r) => r === "created")).toHaveLength(1);
    });
  });
}
