/** appendBranches: registerBranch's status check, idempotent repeats and conflicts (docs/deviations.md D4). */
import { beforeEach, describe, expect, it } from "vitest";
import type { ConformanceContext } from "../conformance.ts";
import { branch, plain, T0, trans } from "./data.ts";

export function appendSuite(ctx: ConformanceContext): void {
  describe("appendBranches", () => {
    beforeEach(async () => {
      await ctx.store.saveNewTrans(trans("g1", { status: "prepared", transType: "tcc" }), []);
    });

    it("saves when the status matches", async () => {
      const bs = [branch("g1", "01", "cancel"), branch("g1", "01", "confirm")];
      expect(await ctx.store.appendBranches("g1", "prepared", bs, T0)).toBe("saved");
      expect(plain(await ctx.store.findBranches("g1"))).toEqual(plain(bs));
    });

    it("status_mismatch and not_found write nothing", async () => {
      const { store } = ctx;
      expect(await store.appendBranches("g1", "submitted", [branch("g1", "01", "cancel")], T0)).toBe("status_mismatch");
      expect(await store.appendBranches("nope", "prepared", [branch("nope", "01", "cancel")], T0)).toBe("not_found");
      expect(await store.findBranches("g1")).toEqual([]);
      expect(await store.findBranches("nope")).toEqual([]);
    });

    it("an identical repeat is saved again without a second row (idempotent)", async () => {
      const { store } = ctx;
      const bs = [branch("g1", "01", "cancel"), branch("g1", "01", "confirm")];
      await store.appendBranches("g1", "prepared", bs, T0);
      const before = await store.findBranches("g1");
      const copy = bs.map((b) => ({ ...b, binData: Uint8Array.from(b.binData), updateTime: T0 + 9 }));
      expect(await store.appendBranches("g1", "prepared", copy, T0 + 9)).toBe("saved");
      expect(await store.findBranches("g1")).toEqual(before);
    });

    it("a repeat with a different url or payload is a conflict and writes nothing, not even the new rows", async () => {
      const { store } = ctx;
      await store.appendBranches("g1", "prepared", [branch("g1", "01", "cancel")], T0);
      const before = await store.findBranches("g1");
      expect(await store.appendBranches("g1", "prepared", [branch("g1", "02", "cancel"), branch("g1", "01", "cancel", { url: "http://elsewhere" })], T0)).toBe(
        "conflict",
      );
      expect(await store.appendBranches("g1", "prepared", [branch("g1", "01", "cancel", { binData: new TextEncoder().encode("other") })], T0)).toBe("conflict");
      expect(await store.findBranches("g1")).toEqual(before);
    });

    it("a repeat that adds a new op next to an identical one saves only the new row", async () => {
      await ctx.store.appendBranches("g1", "prepared", [branch("g1", "01", "cancel")], T0);
      expect(await ctx.store.appendBranches("g1", "prepared", [branch("g1", "01", "cancel"), branch("g1", "01", "confirm")], T0)).toBe("saved");
      expect((await ctx.store.findBranches("g1")).map((b) => b.op)).toEqual(["cancel", "confirm"]);
    });

    it("racing registrations of one branch from two stores: one is saved, the differing ones conflict", async () => {
      const other = await ctx.open();
      const stores = [ctx.store, other, ctx.store, other];
      const results = await Promise.all(
        stores.map((s, i) => s.appendBranches("g1", "prepared", [branch("g1", "01", "confirm", { url: `http://rm/${i}` })], T0)),
      );
      expect(results.filter((r) => r === "saved")).toHaveLength(1);
      expect(results.filter((r) => r === "conflict")).toHaveLength(3);
      const rows = await ctx.store.findBranches("g1");
      expect(rows.map((b) => b.url)).toEqual([`http://rm/${results.indexOf("saved")}`]);
    });

    it("racing identical registrations are all saved, as one row", async () => {
      const other = await ctx.open();
      const results = await Promise.all(
        [ctx.store, other, ctx.store, other].map((s) => s.appendBranches("g1", "prepared", [branch("g1", "01", "try"), branch("g1", "01", "cancel")], T0)),
      );
      expect(results).toEqual(["saved", "saved", "saved", "saved"]);
      expect((await ctx.store.findBranches("g1")).map((b) => b.op)).toEqual(["try", "cancel"]);
    });
  });
}
