/** saveNewTrans, the reads, and updateTrans (the CAS the engine relies on). */
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DEFAULT_OPTIONS } from "../../../server/src/core/options.ts";
import type { GlobalStatus } from "../../../server/src/core/types.ts";
import type { ConformanceContext } from "../conformance.ts";
import { branch, mustFind, plain, sagaBranches, T0, trans } from "./data.ts";

export function transSuite(ctx: ConformanceContext): void {
  describe("saveNewTrans / find", () => {
    it("creates a trans with its branches and reads every field back", async () => {
      const t = trans("g1", {
        customData: '{"concurrent":true}',
        queryPrepared: "http://ap/query",
        extData: "ext",
        options: { ...DEFAULT_OPTIONS, waitResult: true, timeoutToFail: 5_000, retryInterval: 250, branchHeaders: { a: "b" }, concurrent: true, retryLimit: 2, retryCount: 0, requestTimeout: 1_500 },
        rollbackReason: "r",
        result: "res",
        owner: "me",
        finishTime: T0 + 1,
        rollbackTime: T0 + 2,
      });
      const branches = sagaBranches("g1", 2);
      expect(await ctx.store.saveNewTrans(t, branches)).toBe("created");
      const found = await mustFind(ctx.store, "g1");
      expect(found.id).toBeGreaterThan(0);
      const { id: _id, ...rest } = found;
      expect(rest).toEqual(t);
      expect(plain(await ctx.store.findBranches("g1"))).toEqual(plain(branches));
    });

    it("returns null and [] for an unknown gid", async () => {
      expect(await ctx.store.findTrans("nope")).toBeNull();
      expect(await ctx.store.findBranches("nope")).toEqual([]);
    });

    it("an existing gid -> exists, and neither the trans nor its branches are written", async () => {
      const { store } = ctx;
      expect(await store.saveNewTrans(trans("g1"), sagaBranches("g1", 1))).toBe("created");
      const before = await store.findBranches("g1");
      const again = trans("g1", { status: "prepared", transType: "tcc", customData: "changed" });
      expect(await store.saveNewTrans(again, [branch("g1", "01", "action", { url: "http://other" }), branch("g1", "09", "confirm")])).toBe("exists");
      const after = await mustFind(store, "g1");
      expect(after.status).toBe("submitted");
      expect(after.transType).toBe("saga");
      expect(after.customData).toBe("");
      expect(await store.findBranches("g1")).toEqual(before);
    });

    it("concurrent saves of one gid: exactly one is created, with its own branches", async () => {
      const results = await Promise.all(
        [1, 2, 3, 4].map((n) => ctx.store.saveNewTrans(trans("g1", { customData: `c${n}` }), [branch("g1", "01", "action", { url: `http://rm/${n}` })])),
      );
      expect(results.filter((r) => r === "created")).toHaveLength(1);
      const winner = results.indexOf("created") + 1;
      expect((await mustFind(ctx.store, "g1")).customData).toBe(`c${winner}`);
      expect((await ctx.store.findBranches("g1")).map((b) => b.url)).toEqual([`http://rm/${winner}`]);
    });

    it("findBranches returns branches in insertion order", async () => {
      const { store } = ctx;
      const branches = [branch("g1", "03", "action"), branch("g1", "01", "cancel"), branch("g1", "02", "confirm"), branch("g1", "01", "action")];
      await store.saveNewTrans(trans("g1"), branches);
      await store.appendBranches("g1", "submitted", [branch("g1", "00", "zz"), branch("g1", "99", "aa")], T0);
      const found = await store.findBranches("g1");
      expect(found.map((b) => `${b.branchId}/${b.op}`)).toEqual(["03/action", "01/cancel", "02/confirm", "01/action", "00/zz", "99/aa"]);
      const ids = found.map((b) => b.id);
      expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    });

    it("keeps branches of different gids apart, and gids are case-sensitive", async () => {
      const { store } = ctx;
      await store.saveNewTrans(trans("a"), sagaBranches("a", 2));
      await store.saveNewTrans(trans("b"), sagaBranches("b", 1));
      expect(await store.findBranches("a")).toHaveLength(4);
      expect(await store.findBranches("b")).toHaveLength(2);
      expect(await store.saveNewTrans(trans("A", { customData: "upper" }), sagaBranches("A", 1))).toBe("created");
      expect((await mustFind(store, "a")).customData).toBe("");
      expect((await mustFind(store, "A")).customData).toBe("upper");
      expect(await store.findBranches("A")).toHaveLength(2);
    });

    it("stores empty, binary, multi-byte UTF-8 and large payloads exactly, and long text fields whole", async () => {
      const bytes = Uint8Array.from([0, 255, 1, 254, 0]);
      const text = new TextEncoder().encode('{"name":"Zoë 雪 🚀","nul":"\u0000"}');
      const large = randomBytes(256 * 1024);
      const long = "x".repeat(20_000);
      await ctx.store.saveNewTrans(trans("g1", { customData: long, extData: long, result: long }), [
        branch("g1", "01", "action", { binData: new Uint8Array(0) }),
        branch("g1", "02", "action", { binData: bytes }),
        branch("g1", "03", "action", { binData: large, url: `http://rm.local/${"p".repeat(1000)}` }),
        branch("g1", "04", "action", { binData: text }),
      ]);
      const [empty, bin, big, utf8] = await ctx.store.findBranches("g1");
      expect([...(utf8?.binData ?? [])]).toEqual([...text]);
      expect(empty?.binData.byteLength).toBe(0);
      expect([...(bin?.binData ?? [])]).toEqual([...bytes]);
      expect(Buffer.compare(Buffer.from(big?.binData ?? []), large)).toBe(0);
      expect(await mustFind(ctx.store, "g1")).toMatchObject({ customData: long, extData: long, result: long });
    });

    it("stores half a surrogate pair as U+FFFD, and the text of an escape as that text", async () => {
      // Strings go to the database as UTF-8, which has no lone surrogates: a write must not fail on
      // one, nor an encoding on the way (JSON, RESP) touch a backslash that is only text.
      // (better-sqlite3 writes a lone surrogate as its 3-byte CESU-8 form, read back as three U+FFFD.)
      const lone = "a\ud800b\udc00c";
      const replaced = /^a\ufffd{1,3}b\ufffd{1,3}c$/;
      const escapeText = String.raw`\ud800 \\ud800 "quoted" \n`;
      await ctx.store.saveNewTrans(trans("g1", { customData: lone, extData: escapeText }), [branch("g1", "01", "action", { url: `http://rm.local/${lone}` })]);
      const saved = await mustFind(ctx.store, "g1");
      expect(saved.customData).toMatch(replaced);
      expect(saved.extData).toBe(escapeText);
      expect((await ctx.store.findBranches("g1"))[0]?.url.slice("http://rm.local/".length)).toMatch(replaced);
      expect(await ctx.store.updateTrans("g1", "submitted", { updateTime: T0 + 1, result: lone }, [])).toBe(true);
      expect((await mustFind(ctx.store, "g1")).result).toMatch(replaced);
    });
    it("any text, bytes and millisecond times are stored and patched as written, one call or several at once (property)", async () => {
      // The characters that mean something in an array literal, a JSON string, a RESP or SQL
      // escape, among any printable ones; no NUL (Postgres text cannot hold it).
      const special = fc.constantFrom('"', "\\", "{", "}", ",", " ", "'", "NULL", "\n", "\t", "é", "雪", "🚀", "\\x00", "()");
      const text = fc.array(fc.oneof(special, fc.string({ maxLength: 3 })), { maxLength: 8 }).map((parts) => parts.join(""));
      const time = fc.integer({ min: 0, max: 4_102_444_800_000 }); // 1970 .. 2100
      const row = fc.record({ text, other: text, bytes: fc.uint8Array({ maxLength: 16 }), t1: time, t2: time, t3: time });
      let n = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(row, { minLength: 1, maxLength: 3 }), async (rows) => {
          const made = rows.map((r) => {
            const gid = `p${n++}-${r.text}`;
            return {
              r,
              t: trans(gid, { customData: r.text, extData: r.other, queryPrepared: r.other, owner: r.text, createTime: r.t1, updateTime: r.t2, nextCronTime: r.t3 }),
              b: [branch(gid, `b${r.text}`, "action", { url: r.other, binData: r.bytes, createTime: r.t3, updateTime: r.t1, finishTime: r.t2 })],
            };
          });
          // At once: the stores that group-commit send these together as one statement.
          expect(await Promise.all(made.map(({ t, b }) => ctx.store.saveNewTrans(t, b)))).toEqual(made.map(() => "created"));
          for (const { t, b } of made) {
            const { id: _id, ...found } = await mustFind(ctx.store, t.gid);
            expect(found).toEqual(t);
            expect(plain(await ctx.store.findBranches(t.gid))).toEqual(plain(b));
          }
          const patched = await Promise.all(made.map(({ r, t }) => ctx.store.updateTrans(
            t.gid, { status: "submitted", owner: r.text },
            { status: "aborting", updateTime: r.t3, rollbackTime: r.t1, rollbackReason: r.other, result: r.text, nextCronTime: r.t2, owner: r.other },
            [{ branchId: `b${r.text}`, op: "action", status: "failed", finishTime: r.t1 }],
          )));
          expect(patched).toEqual(made.map(() => true));
          for (const { r, t } of made) {
            expect(await mustFind(ctx.store, t.gid)).toMatchObject({
              status: "aborting", updateTime: r.t3, rollbackTime: r.t1, rollbackReason: r.other, result: r.text, nextCronTime: r.t2, owner: r.other,
              customData: r.text, createTime: r.t1,
            });
            expect(await ctx.store.findBranches(t.gid)).toMatchObject([{ status: "failed", finishTime: r.t1, updateTime: r.t3, url: r.other }]);
          }
        }),
        { numRuns: 40 },
      );
    });
  });

  describe("updateTrans (CAS)", () => {
    it("patches the trans and the branches when the status matches", async () => {
      const { store } = ctx;
      await store.saveNewTrans(trans("g1"), sagaBranches("g1", 2));
      const ok = await store.updateTrans(
        "g1",
        "submitted",
        { status: "aborting", updateTime: T0 + 5, rollbackReason: "boom", nextCronTime: T0 + 99, nextCronInterval: 20_000 },
        [
          { branchId: "01", op: "action", status: "failed", finishTime: T0 + 4 },
          { branchId: "02", op: "compensate", status: "succeed", finishTime: T0 + 3 },
        ],
      );
      expect(ok).toBe(true);
      const t = await mustFind(store, "g1");
      expect(t).toMatchObject({ status: "aborting", updateTime: T0 + 5, rollbackReason: "boom", nextCronTime: T0 + 99, nextCronInterval: 20_000, finishTime: null });
      const all = await store.findBranches("g1");
      expect(all.find((x) => x.branchId === "01" && x.op === "action")).toMatchObject({ status: "failed", finishTime: T0 + 4, updateTime: T0 + 5 });
      expect(all.find((x) => x.branchId === "02" && x.op === "compensate")).toMatchObject({ status: "succeed", finishTime: T0 + 3, updateTime: T0 + 5 });
      // Other branches are untouched.
      expect(all.filter((x) => x.status !== "prepared")).toHaveLength(2);
      expect(all.find((x) => x.branchId === "01" && x.op === "compensate")).toMatchObject({ status: "prepared", finishTime: null, updateTime: T0 });
    });

    it("leaves fields that the patch does not name as they are", async () => {
      const { store } = ctx;
      await store.saveNewTrans(trans("g1", { rollbackReason: "keep", result: "keep-too" }), []);
      expect(await store.updateTrans("g1", "submitted", { updateTime: T0 + 1 }, [])).toBe(true);
      const t = await mustFind(store, "g1");
      expect(t).toMatchObject({ status: "submitted", rollbackReason: "keep", result: "keep-too", nextCronTime: T0 + 10_000, updateTime: T0 + 1 });
      expect(await store.updateTrans("g1", "submitted", { status: "succeed", updateTime: T0 + 2, finishTime: T0 + 2, result: "r" }, [])).toBe(true);
      expect(await mustFind(store, "g1")).toMatchObject({ status: "succeed", finishTime: T0 + 2, result: "r" });
    });

    it("a CAS that writes the values already stored still wins", async () => {
      await ctx.store.saveNewTrans(trans("g1"), sagaBranches("g1", 1));
      expect(await ctx.store.updateTrans("g1", "submitted", { updateTime: T0 }, [])).toBe(true);
      expect(await ctx.store.updateTrans("g1", "submitted", { status: "submitted", updateTime: T0 }, [
        { branchId: "01", op: "action", status: "prepared", finishTime: T0 },
      ])).toBe(true);
    });

    it("a wrong expected status returns false and writes nothing, branch updates included", async () => {
      const { store } = ctx;
      await store.saveNewTrans(trans("g1"), sagaBranches("g1", 2));
      const before = await mustFind(store, "g1");
      const branchesBefore = await store.findBranches("g1");
      for (const expected of ["prepared", "aborting", "succeed", "failed"] as GlobalStatus[]) {
        const won = await store.updateTrans(
          "g1",
          expected,
          { status: "failed", updateTime: T0 + 50, rollbackReason: "x", nextCronTime: 0 },
          [{ branchId: "01", op: "action", status: "succeed", finishTime: T0 + 50 }],
        );
        expect(won).toBe(false);
      }
      expect(await mustFind(store, "g1")).toEqual(before);
      expect(await store.findBranches("g1")).toEqual(branchesBefore);
    });

    it("an unknown gid returns false", async () => {
      expect(await ctx.store.updateTrans("nope", "submitted", { status: "succeed", updateTime: T0 }, [])).toBe(false);
      expect(await ctx.store.updateTrans("nope", "submitted", { updateTime: T0 }, [{ branchId: "01", op: "action", status: "succeed", finishTime: T0 }])).toBe(false);
    });

    it("racing writers from the same status, on one store and on two: exactly one wins", async () => {
      const other = await ctx.open();
      await ctx.store.saveNewTrans(trans("g1"), sagaBranches("g1", 1));
      const writers = [ctx.store, other, ctx.store, other];
      const results = await Promise.all(writers.map((s, i) => {
        const status: GlobalStatus = i % 2 === 0 ? "succeed" : "aborting";
        return s.updateTrans("g1", "submitted", { status, updateTime: T0 + 1 + i }, [
          { branchId: "01", op: "action", status: i % 2 === 0 ? "succeed" : "failed", finishTime: T0 + 1 + i },
        ]);
      }));
      expect(results.filter(Boolean)).toHaveLength(1);
      const winner = results.indexOf(true);
      const t = await mustFind(ctx.store, "g1");
      const action = (await ctx.store.findBranches("g1")).find((x) => x.op === "action");
      expect(t.updateTime).toBe(T0 + 1 + winner);
      if (winner % 2 === 0) expect([t.status, action?.status]).toEqual(["succeed", "succeed"]);
      else expect([t.status, action?.status]).toEqual(["aborting", "failed"]);
      expect(action?.finishTime).toBe(T0 + 1 + winner);
    });
  });
}
