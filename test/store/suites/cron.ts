/** claimDue (the cron's lease), scanTrans paging, resetCronTime / resetNextCronTime. */
import { beforeEach, describe, expect, it } from "vitest";
import type { GlobalStatus } from "../../../server/src/core/types.ts";
import type { ScanQuery } from "../../../server/src/store/store.ts";
import type { ConformanceContext } from "../conformance.ts";
import { mustFind, T0, trans } from "./data.ts";

export function cronSuite(ctx: ConformanceContext): void {
  describe("claimDue", () => {
    async function seed(): Promise<void> {
      const rows: [string, GlobalStatus, number][] = [
        ["due-submitted", "submitted", T0 - 3],
        ["due-prepared", "prepared", T0 - 2],
        ["due-aborting", "aborting", T0 - 1],
        ["due-now", "submitted", T0],
        ["due-succeed", "succeed", T0 - 10],
        ["due-failed", "failed", T0 - 10],
        ["later", "submitted", T0 + 1],
      ];
      for (const [gid, status, next] of rows) await ctx.store.saveNewTrans(trans(gid, { status, nextCronTime: next }), []);
    }

    it("claims only unfinished, due rows, oldest first, and pushes their lease", async () => {
      const { store } = ctx;
      await seed();
      const claimed = await store.claimDue(T0, T0 + 30_000, 100, "owner-1");
      expect(claimed.map((t) => t.gid)).toEqual(["due-submitted", "due-prepared", "due-aborting", "due-now"]);
      for (const t of claimed) {
        expect(t).toMatchObject({ nextCronTime: T0 + 30_000, owner: "owner-1", updateTime: T0 });
        const { id: _id, ...stored } = await mustFind(store, t.gid);
        expect(t).toMatchObject(stored);
      }
      expect((await mustFind(store, "later")).nextCronTime).toBe(T0 + 1);
      expect((await mustFind(store, "due-succeed")).owner).toBe("");
    });

    it("a second claim at the same now gets nothing", async () => {
      const { store } = ctx;
      await seed();
      expect(await store.claimDue(T0, T0 + 30_000, 100, "a")).toHaveLength(4);
      expect(await store.claimDue(T0, T0 + 30_000, 100, "b")).toEqual([]);
      // After the lease runs out the rows are due again.
      const again = await store.claimDue(T0 + 30_000, T0 + 60_000, 100, "b");
      expect(again.map((t) => t.gid).sort()).toEqual(["due-aborting", "due-now", "due-prepared", "due-submitted", "later"]);
    });

    it("respects the limit", async () => {
      const { store } = ctx;
      await seed();
      const first = await store.claimDue(T0, T0 + 30_000, 2, "a");
      expect(first.map((t) => t.gid)).toEqual(["due-submitted", "due-prepared"]);
      const second = await store.claimDue(T0, T0 + 30_000, 2, "b");
      expect(second.map((t) => t.gid)).toEqual(["due-aborting", "due-now"]);
      expect(await store.claimDue(T0, T0 + 30_000, 2, "c")).toEqual([]);
    });

    it("concurrent claims, on one store and across two, never hand out the same row twice", async () => {
      const other = await ctx.open();
      for (let i = 0; i < 30; i++) await ctx.store.saveNewTrans(trans(`g${i}`, { nextCronTime: T0 - i }), []);
      const claimers = [ctx.store, other, ctx.store, other, ctx.store, other];
      const results = await Promise.all(claimers.map((s, n) => s.claimDue(T0, T0 + 1_000, 8, `o${n}`)));
      const gids = results.flat().map((t) => t.gid);
      expect(new Set(gids).size).toBe(gids.length);
      expect(gids).toHaveLength(30);
      for (const [n, batch] of results.entries()) {
        for (const t of batch) expect((await mustFind(ctx.store, t.gid)).owner).toBe(`o${n}`);
      }
    });
  });

  describe("scanTrans", () => {
    beforeEach(async () => {
      for (let i = 0; i < 7; i++) {
        const status: GlobalStatus = i % 2 === 0 ? "succeed" : "submitted";
        await ctx.store.saveNewTrans(trans(`s${i}`, { status, transType: i < 4 ? "saga" : "tcc", createTime: T0 + i * 1_000 }), []);
      }
    });

    it("pages newest first with position / nextPosition", async () => {
      const seen: string[] = [];
      let position = "";
      let pages = 0;
      do {
        const page = await ctx.store.scanTrans({ position, limit: 3 });
        seen.push(...page.transactions.map((t) => t.gid));
        position = page.nextPosition;
        pages += 1;
        if (page.transactions.length < 3) expect(page.nextPosition).toBe("");
      } while (position !== "" && pages < 10);
      expect(seen).toEqual(["s6", "s5", "s4", "s3", "s2", "s1", "s0"]);
      expect(pages).toBe(3);
    });

    it("a full last page points at a final empty page", async () => {
      const first = await ctx.store.scanTrans({ position: "", limit: 7 });
      expect(first.transactions).toHaveLength(7);
      const rest = await ctx.store.scanTrans({ position: first.nextPosition, limit: 7 });
      expect(rest).toEqual({ transactions: [], nextPosition: "" });
    });

    it("filters by status, type and create time (inclusive bounds, to the millisecond)", async () => {
      const gids = async (q: Partial<ScanQuery>): Promise<string[]> =>
        (await ctx.store.scanTrans({ position: "", limit: 100, ...q })).transactions.map((t) => t.gid);
      expect(await gids({ status: "succeed" })).toEqual(["s6", "s4", "s2", "s0"]);
      expect(await gids({ transType: "tcc" })).toEqual(["s6", "s5", "s4"]);
      expect(await gids({ status: "submitted", transType: "saga" })).toEqual(["s3", "s1"]);
      expect(await gids({ createTimeStart: T0 + 2_000, createTimeEnd: T0 + 4_000 })).toEqual(["s4", "s3", "s2"]);
      expect(await gids({ createTimeStart: T0 + 2_001, createTimeEnd: T0 + 3_999 })).toEqual(["s3"]);
      expect(await gids({ status: "failed" })).toEqual([]);
      // Filters and paging together.
      const page = await ctx.store.scanTrans({ position: "", limit: 2, status: "succeed" });
      expect(page.transactions.map((t) => t.gid)).toEqual(["s6", "s4"]);
      const next = await ctx.store.scanTrans({ position: page.nextPosition, limit: 2, status: "succeed" });
      expect(next.transactions.map((t) => t.gid)).toEqual(["s2", "s0"]);
    });
  });

  describe("resetCronTime / resetNextCronTime", () => {
    it("resetCronTime pulls forward unfinished transactions scheduled after `after`, in bounded batches", async () => {
      const { store } = ctx;
      for (let i = 0; i < 5; i++) await store.saveNewTrans(trans(`u${i}`, { nextCronTime: T0 + 100_000 + i }), []);
      await store.saveNewTrans(trans("done", { status: "succeed", nextCronTime: T0 + 100_000 }), []);
      await store.saveNewTrans(trans("soon", { nextCronTime: T0 + 10 }), []);

      expect(await store.resetCronTime(T0 + 50_000, T0, 3)).toEqual({ count: 3, hasRemaining: true });
      expect(await store.resetCronTime(T0 + 50_000, T0, 3)).toEqual({ count: 2, hasRemaining: false });
      expect(await store.resetCronTime(T0 + 50_000, T0, 3)).toEqual({ count: 0, hasRemaining: false });
      for (let i = 0; i < 5; i++) expect(await mustFind(store, `u${i}`)).toMatchObject({ nextCronTime: T0, updateTime: T0 });
      expect((await mustFind(store, "done")).nextCronTime).toBe(T0 + 100_000);
      expect((await mustFind(store, "soon")).nextCronTime).toBe(T0 + 10);
    });

    it("resetNextCronTime makes one trans due now; false for an unknown gid", async () => {
      const { store } = ctx;
      await store.saveNewTrans(trans("g1", { nextCronTime: T0 + 100_000 }), []);
      await store.saveNewTrans(trans("g2", { nextCronTime: T0 + 100_000 }), []);
      expect(await store.resetNextCronTime("g1", T0 + 5)).toBe(true);
      expect(await mustFind(store, "g1")).toMatchObject({ nextCronTime: T0 + 5, updateTime: T0 + 5 });
      expect((await mustFind(store, "g2")).nextCronTime).toBe(T0 + 100_000);
      // Again with the same time: the row is still found (not "nothing changed").
      expect(await store.resetNextCronTime("g1", T0 + 5)).toBe(true);
      expect(await store.resetNextCronTime("nope", T0)).toBe(false);
      expect((await store.claimDue(T0 + 5, T0 + 1_000, 10, "o")).map((t) => t.gid)).toEqual(["g1"]);
    });
  });
}
