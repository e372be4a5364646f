/**
 * The group-commit tests both SQL stores run (test/store/postgres-batch.test.ts,
 * test/store/mysql-batch.test.ts): concurrent saveNewTrans and updateTrans calls go out in batches
 * and must behave exactly like the one-call-per-query path (batchWrites: false), which the same
 * database runs side by side. The stores differ only in how a rejected value's error looks.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Branch, BranchStatus, GlobalStatus, TransGlobal } from "../../server/src/core/types.ts";
import type { GroupCommitStats } from "../../server/src/store/sql/group-commit.ts";
import type { BranchUpdate, NewBranch, Store, TransPatch } from "../../server/src/store/store.ts";
import type { SqlArea } from "./conformance.ts";
import { T0, branch, mustFind, plain, sagaBranches, trans } from "./suites/data.ts";

/** A store with group commit: the SQL stores. */
export type BatchingStore = Store & { batchStats(): GroupCommitStats | undefined };

/** What the suite needs of one store. */
export interface GroupCommitSuiteOptions {
  /** The store's name in the describe title ("postgres", "mysql"). */
  name: string;
  /** Who rejects the bad values, for a test title ("Postgres", "the server"). */
  rejectedBy: string;
  /** The test file's database area: opened once, emptied before each test, closed at the end. */
  area: SqlArea;
  /** A new migrated store on the area. */
  open: (o?: { batchWrites?: boolean; poolSize?: number }) => Promise<BatchingStore>;
  /** The number of rows of a dtx table in the area. */
  count: (table: "trans_global" | "trans_branch_op") => Promise<number | undefined>;
  /** How each database reports the rejected values (a subset matched with toMatchObject). */
  rejected: {
    /** A branch_id of '' (the CHECK constraint branch_id_check). */
    check: object;
    /** A branch status longer than varchar(45). */
    tooLong: object;
  };
}

/** Statements the batcher sent with more than one operation in them. */
export function batchesOf(store: BatchingStore): { saves: number; updates: number; splits: number } {
  const s = store.batchStats();
  if (!s) throw new Error("batching is off");
  return { saves: s.saves.batches, updates: s.updates.batches, splits: s.saves.splitBatches + s.updates.splitBatches };
}

/** A trans without what differs between two gids holding the same data. */
function comparable(t: TransGlobal): object {
  const { id: _id, gid: _gid, ...rest } = t;
  return rest;
}

function comparableBranches(branches: readonly Branch[]): object[] {
  return branches.map(({ id: _id, gid: _gid, ...rest }) => ({ ...rest, binData: [...rest.binData] }));
}

const STATUSES: readonly GlobalStatus[] = ["submitted", "prepared", "aborting"];

/** The i-th patch shape: each sets a different subset of the optional fields. */
function patchFor(i: number): TransPatch {
  const now = T0 + 1_000 + i;
  switch (i % 6) {
    case 0: return { updateTime: now };
    case 1: return { status: "succeed", updateTime: now, finishTime: now + 1 };
    case 2: return { status: "aborting", updateTime: now, rollbackReason: `reason ${i}`, rollbackTime: now + 2 };
    case 3: return { updateTime: now, nextCronTime: now + 60_000, nextCronInterval: 20_000 + i };
    case 4: return { status: "failed", updateTime: now, finishTime: now + 3, result: `result ${i}`, rollbackReason: "" };
    default: return { status: "submitted", updateTime: now, nextCronTime: now + 5 };
  }
}

function branchUpdatesFor(i: number): BranchUpdate[] {
  if (i % 4 === 0) return [];
  const updates: BranchUpdate[] = [{ branchId: "01", op: "action", status: "succeed", finishTime: T0 + 5_000 + i }];
  if (i % 4 === 2) updates.push({ branchId: "02", op: "compensate", status: "failed", finishTime: T0 + 6_000 + i });
  // Names a branch that does not exist: matches nothing on either path.
  if (i % 4 === 3) updates.push({ branchId: "99", op: "action", status: "succeed", finishTime: T0 });
  return updates;
}

/**
 * Registers the area's hooks for the whole test file (so the file's own store-specific tests
 * get them too) and the shared group-commit tests.
 */
export function describeGroupCommitSuite(o: GroupCommitSuiteOptions): void {
  beforeAll(async () => {
    await o.area.open();
    const store = await o.open({ batchWrites: false });
    await store.close();
  });

  beforeEach(() => o.area.truncate());

  afterAll(() => o.area.close());

  describe(`${o.name} store: batched writes`, () => {
    it("many concurrent updateTrans answer and write exactly what one statement per call does", async () => {
      const batched = await o.open();
      const single = await o.open({ batchWrites: false });
      const n = 500;
      try {
        const seed = (prefix: string, i: number) => {
          const gid = `${prefix}${i}`;
          return single.saveNewTrans(trans(gid, { status: STATUSES[i % 3] }), i % 5 === 0 ? [] : sagaBranches(gid, 2));
        };
        await Promise.all(Array.from({ length: n }, (_, i) => Promise.all([seed("b-", i), seed("s-", i)])));

        const run = (store: BatchingStore, prefix: string) => Promise.all(Array.from({ length: n }, (_, i) =>
          // Expected statuses rotate on a different cycle than the stored ones: about a third match.
          store.updateTrans(`${prefix}${i}`, STATUSES[(i + Math.floor(i / 7)) % 3] ?? "submitted", patchFor(i), branchUpdatesFor(i))));
        const [got, want] = await Promise.all([run(batched, "b-"), run(single, "s-")]);

        expect(got).toEqual(want);
        const wins = got.filter(Boolean).length;
        expect(wins).toBeGreaterThan(n / 5);
        expect(wins).toBeLessThan(n);
        for (let i = 0; i < n; i++) {
          expect(comparable(await mustFind(batched, `b-${i}`))).toEqual(comparable(await mustFind(single, `s-${i}`)));
          expect(comparableBranches(await batched.findBranches(`b-${i}`))).toEqual(comparableBranches(await single.findBranches(`s-${i}`)));
        }
        const stats = batched.batchStats()?.updates;
        expect(stats?.batches).toBeGreaterThan(0);
        expect(stats?.largestBatch).toBeGreaterThan(1);
        expect((stats?.batchedOps ?? 0) + (stats?.singles ?? 0)).toBe(n);
        expect(stats?.splitBatches).toBe(0);
      } finally {
        await Promise.all([batched.close(), single.close()]);
      }
    });

    it("fenced updateTrans in batches: a stale token writes nothing, the holder's write lands, as with one statement per call", async () => {
      const batched = await o.open();
      const single = await o.open({ batchWrites: false });
      const n = 300;
      try {
        const seed = (prefix: string, i: number) => {
          const gid = `${prefix}${i}`;
          return single.saveNewTrans(trans(gid, { owner: `claim-${i}` }), sagaBranches(gid, 1));
        };
        await Promise.all(Array.from({ length: n }, (_, i) => Promise.all([seed("fb-", i), seed("fs-", i)])));
        // i % 3: 0 = the holder's token, 1 = an earlier claim's token, 2 = a bare status (no fence).
        const guard = (i: number) => (i % 3 === 0 ? { status: "submitted" as const, owner: `claim-${i}` }
          : i % 3 === 1 ? { status: "submitted" as const, owner: `stale-${i}` } : "submitted" as const);
        const run = (store: BatchingStore, prefix: string) => Promise.all(Array.from({ length: n }, (_, i) =>
          store.updateTrans(`${prefix}${i}`, guard(i), { status: "succeed", updateTime: T0 + 1, finishTime: T0 + 1, ...(i % 2 === 0 ? { owner: "" } : {}) },
            [{ branchId: "01", op: "action", status: "succeed", finishTime: T0 + 1 }])));
        const [got, want] = await Promise.all([run(batched, "fb-"), run(single, "fs-")]);
        expect(got).toEqual(want);
        expect(got).toEqual(Array.from({ length: n }, (_, i) => i % 3 !== 1));
        for (let i = 0; i < n; i++) {
          const t = await mustFind(batched, `fb-${i}`);
          expect(comparable(t)).toEqual(comparable(await mustFind(single, `fs-${i}`)));
          expect([t.status, t.owner]).toEqual(i % 3 === 1 ? ["submitted", `claim-${i}`] : ["succeed", i % 2 === 0 ? "" : `claim-${i}`]);
          expect((await batched.findBranches(`fb-${i}`)).map((b) => b.status)).toEqual(i % 3 === 1 ? ["prepared", "prepared"] : ["prepared", "succeed"]);
        }
        expect(batched.batchStats()?.updates.batches).toBeGreaterThan(0);
      } finally {
        await Promise.all([batched.close(), single.close()]);
      }
    });

    it("applies calls for one gid issued at once in call order, in separate statements", async () => {
      const store = await o.open();
      const n = 60;
      try {
        await Promise.all(Array.from({ length: n }, (_, i) => store.saveNewTrans(trans(`o${i}`), sagaBranches(`o${i}`, 1))));
        // Each gid's chain only succeeds step by step: in one statement the later steps would see
        // the original status and lose their CAS.
        const chains = Array.from({ length: n }, (_, i) => [
          store.updateTrans(`o${i}`, "submitted", { status: "aborting", updateTime: T0 + 1 }, [{ branchId: "01", op: "action", status: "failed", finishTime: T0 + 1 }]),
          store.updateTrans(`o${i}`, "aborting", { status: "aborting", updateTime: T0 + 2, rollbackReason: "step 2" }, []),
          store.updateTrans(`o${i}`, "aborting", { status: "failed", updateTime: T0 + 3, finishTime: T0 + 3 },
            [{ branchId: "01", op: "compensate", status: "succeed", finishTime: T0 + 3 }]),
        ]);
        const results = await Promise.all(chains.map((c) => Promise.all(c)));
        expect(results).toEqual(Array.from({ length: n }, () => [true, true, true]));
        for (let i = 0; i < n; i++) {
          const t = await mustFind(store, `o${i}`);
          expect([t.status, t.rollbackReason, t.updateTime, t.finishTime]).toEqual(["failed", "step 2", T0 + 3, T0 + 3]);
          expect((await store.findBranches(`o${i}`)).map((b) => b.status)).toEqual(["succeed", "failed"]);
        }
        expect(batchesOf(store).updates).toBeGreaterThan(0);
      } finally {
        await store.close();
      }
    });

    it("concurrent saveNewTrans of the same gids: one created per gid, its branches stored once and in order", async () => {
      const stores = [await o.open(), await o.open()];
      const n = 150;
      const copies = 3;
      try {
        const calls: { gid: string; copy: number; branches: NewBranch[]; result: Promise<"created" | "exists"> }[] = [];
        for (let copy = 0; copy < copies; copy++) {
          for (let i = 0; i < n; i++) {
            const gid = `d${i}`;
            // Each copy's branches differ (url), so the stored ones show whose insert won.
            const branches = sagaBranches(gid, 2).map((b) => ({ ...b, url: `${b.url}?copy=${copy}` }));
            const store = stores[(i + copy) % 2] as BatchingStore;
            calls.push({ gid, copy, branches, result: store.saveNewTrans(trans(gid, { customData: `copy ${copy}` }), branches) });
          }
        }
        const results = await Promise.all(calls.map((c) => c.result));
        for (let i = 0; i < n; i++) {
          const mine = calls.filter((c, k) => c.gid === `d${i}` && results[k] === "created");
          expect(mine).toHaveLength(1);
          const winner = mine[0];
          expect((await mustFind(stores[0] as BatchingStore, `d${i}`)).customData).toBe(`copy ${winner?.copy}`);
          const stored = await stores[1]?.findBranches(`d${i}`) ?? [];
          expect(plain(stored)).toEqual(plain(winner?.branches ?? []));
          const ids = stored.map((b) => b.id);
          expect(ids).toEqual([...ids].sort((a, b) => a - b));
        }
        expect(await o.count("trans_branch_op")).toBe(n * 4);
        expect(batchesOf(stores[0] as BatchingStore).saves + batchesOf(stores[1] as BatchingStore).saves).toBeGreaterThan(0);
      } finally {
        await Promise.all(stores.map((s) => s.close()));
      }
    });

    it(`a value ${o.rejectedBy} rejects fails only its own call, not the rest of its batch`, async () => {
      // One batch statement at a time: everything issued while the first call runs forms one batch.
      const store = await o.open({ poolSize: 2 });
      try {
        const lead = store.saveNewTrans(trans("lead"), []);
        const saves = Array.from({ length: 20 }, (_, i) => {
          // branch_id '' violates the CHECK constraint branch_id_check (o.rejected.check).
          const branches = i === 7 ? [branch(`n${i}`, "", "action")] : sagaBranches(`n${i}`, 1);
          return store.saveNewTrans(trans(`n${i}`), branches);
        });
        const settled = await Promise.allSettled([lead, ...saves]);
        expect(settled.filter((s) => s.status === "rejected")).toHaveLength(1);
        expect(settled[8]).toMatchObject({ status: "rejected", reason: o.rejected.check });
        expect(await store.findTrans("n7")).toBeNull();
        expect(await store.findBranches("n6")).toHaveLength(2);

        const lead2 = store.updateTrans("lead", "submitted", { updateTime: T0 + 1 }, []);
        const updates = Array.from({ length: 20 }, (_, i) => {
          if (i === 7) return Promise.resolve(false);
          // A branch status longer than varchar(45) (o.rejected.tooLong).
          const status = (i === 3 ? "x".repeat(50) : "succeed") as BranchStatus;
          return store.updateTrans(`n${i}`, "submitted", { status: "succeed", updateTime: T0 + 2, finishTime: T0 + 2 },
            [{ branchId: "01", op: "action", status, finishTime: T0 + 2 }]);
        });
        const settled2 = await Promise.allSettled([lead2, ...updates]);
        expect(settled2.filter((s) => s.status === "rejected")).toHaveLength(1);
        expect(settled2[4]).toMatchObject({ status: "rejected", reason: o.rejected.tooLong });
        // The failed call wrote nothing, not even its trans row; the others wrote everything.
        expect((await mustFind(store, "n3")).status).toBe("submitted");
        expect((await store.findBranches("n3")).map((b) => b.status)).toEqual(["prepared", "prepared"]);
        expect((await mustFind(store, "n4")).status).toBe("succeed");
        expect((await store.findBranches("n4")).map((b) => b.status)).toEqual(["prepared", "succeed"]);
        expect(batchesOf(store).splits).toBe(2);
      } finally {
        await store.close();
      }
    });

    it("two coordinators racing batched updateTrans on the same gids: exactly one winner per CAS", async () => {
      const a = await o.open();
      const b = await o.open();
      const n = 300;
      try {
        await Promise.all(Array.from({ length: n }, (_, i) => a.saveNewTrans(trans(`r${i}`), sagaBranches(`r${i}`, 2))));
        const race = (store: BatchingStore, status: GlobalStatus, order: number[]) => {
          const out = new Map<number, Promise<boolean>>();
          for (const i of order) {
            out.set(i, store.updateTrans(`r${i}`, "submitted", { status, updateTime: T0 + 1, finishTime: T0 + 1 },
              [{ branchId: "01", op: "action", status: "succeed", finishTime: T0 + 1 }, { branchId: "02", op: "action", status: "succeed", finishTime: T0 + 1 }]));
          }
          return out;
        };
        const up = Array.from({ length: n }, (_, i) => i);
        // Opposite orders, so a batch of each coordinator holds rows the other one wants next.
        const fromA = race(a, "succeed", up);
        const fromB = race(b, "failed", [...up].reverse());
        for (let i = 0; i < n; i++) {
          const wonA = await fromA.get(i);
          const wonB = await fromB.get(i);
          expect(wonA !== wonB).toBe(true);
          expect((await mustFind(a, `r${i}`)).status).toBe(wonA ? "succeed" : "failed");
        }
        expect(batchesOf(a).updates).toBeGreaterThan(0);
        expect(batchesOf(b).updates).toBeGreaterThan(0);
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });

    it("close() waits for the queued and in-flight calls", async () => {
      const store = await o.open({ poolSize: 2 });
      const n = 200;
      const settled: boolean[] = [];
      const calls = Array.from({ length: n }, (_, i) => store.saveNewTrans(trans(`c${i}`), sagaBranches(`c${i}`, 1)).finally(() => {
        settled[i] = true;
      }));
      await store.close();
      expect(settled.filter(Boolean)).toHaveLength(n);
      expect(await Promise.all(calls)).toEqual(Array.from({ length: n }, () => "created"));
      expect(await o.count("trans_global")).toBe(n);
    });
  });
}
