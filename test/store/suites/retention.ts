/** deleteFinished (retention, docs/retention.md): what goes, what stays, and the batch limit. */
import { describe, expect, it } from "vitest";
import type { GlobalStatus } from "../../../server/src/core/types.ts";
import type { RetentionBatch, Store } from "../../../server/src/store/store.ts";
import type { ConformanceContext } from "../conformance.ts";
import { sagaBranches, T0, trans } from "./data.ts";

const DAY = 24 * 3600 * 1000;

/** Calls deleteFinished until it says nothing is left; every batch is returned. */
async function drain(store: Store, before: number, limit: number): Promise<RetentionBatch[]> {
  const batches: RetentionBatch[] = [];
  for (let i = 0; i < 100; i++) {
    const batch = await store.deleteFinished(before, limit);
    batches.push(batch);
    if (!batch.more) return batches;
  }
  throw new Error("deleteFinished still had more after 100 batches");
}

const total = (batches: readonly RetentionBatch[]): number => batches.reduce((n, b) => n + b.deleted, 0);

export function retentionSuite(ctx: ConformanceContext): void {
  describe("deleteFinished (retention)", () => {
    const cutoff = T0 + 10 * DAY;

    async function save(gid: string, status: GlobalStatus, updateTime: number): Promise<void> {
      await ctx.store.saveNewTrans(trans(gid, { status, createTime: updateTime - 1_000, updateTime, nextCronTime: updateTime }), sagaBranches(gid, 2));
    }

    it("deletes old finished transactions with their branches; unfinished ones of any age and recent finished ones stay", async () => {
      const { store } = ctx;
      await save("old-succeed", "succeed", cutoff - DAY);
      await save("old-failed", "failed", cutoff - 1);
      for (const status of ["prepared", "submitted", "aborting"] as const) await save(`ancient-${status}`, status, T0 - 365 * DAY);
      await save("at-cutoff", "succeed", cutoff);
      await save("recent", "failed", cutoff + DAY);

      expect(total(await drain(store, cutoff, 100))).toBe(2);

      for (const gid of ["old-succeed", "old-failed"]) {
        expect(await store.findTrans(gid)).toBeNull();
        expect(await store.findBranches(gid)).toEqual([]);
      }
      for (const gid of ["ancient-prepared", "ancient-submitted", "ancient-aborting", "at-cutoff", "recent"]) {
        expect((await store.findTrans(gid))?.gid).toBe(gid);
        expect(await store.findBranches(gid)).toHaveLength(4);
      }
      const listed = (await store.scanTrans({ position: "", limit: 100 })).transactions.map((t) => t.gid);
      expect(listed.sort()).toEqual(["ancient-aborting", "ancient-prepared", "ancient-submitted", "at-cutoff", "recent"]);
      // An unfinished trans stays due: retention never takes work away from the cron.
      expect((await store.claimDue(T0, T0 + 1_000, 10, "o")).map((t) => t.gid).sort()).toEqual(["ancient-aborting", "ancient-prepared", "ancient-submitted"]);
      // Nothing left to delete.
      expect(await store.deleteFinished(cutoff, 100)).toMatchObject({ deleted: 0, more: false });
    });

    it("takes at most `limit` per call and says when more are left", async () => {
      const { store } = ctx;
      for (let i = 0; i < 5; i++) await save(`f${i}`, "succeed", cutoff - DAY + i);
      const batches = await drain(store, cutoff, 2);
      expect(batches.map((b) => b.deleted)).toEqual([2, 2, 1]);
      expect(batches.map((b) => b.more)).toEqual([true, true, false]);
      for (let i = 0; i < 5; i++) expect(await store.findTrans(`f${i}`)).toBeNull();
    });

    it("a deleted gid can be submitted again as a new transaction", async () => {
      const { store } = ctx;
      await save("again", "succeed", cutoff - DAY);
      expect(total(await drain(store, cutoff, 10))).toBe(1);
      expect(await store.saveNewTrans(trans("again"), sagaBranches("again", 1))).toBe("created");
      expect(await store.findBranches("again")).toHaveLength(2);
    });

    it("two coordinators deleting at once remove every old row exactly once", async () => {
      const other = await ctx.open();
      for (let i = 0; i < 40; i++) await save(`c${i}`, i % 2 === 0 ? "succeed" : "failed", cutoff - DAY - i);
      await save("keep", "submitted", T0);
      const runs = await Promise.all([drain(ctx.store, cutoff, 7), drain(other, cutoff, 7), drain(ctx.store, cutoff, 5)]);
      expect(runs.reduce((n, r) => n + total(r), 0)).toBe(40);
      for (const r of runs) expect(r.every((b) => b.deleted <= 7)).toBe(true);
      const left = (await ctx.store.scanTrans({ position: "", limit: 100 })).transactions.map((t) => t.gid);
      expect(left).toEqual(["keep"]);
    });
  });
}
