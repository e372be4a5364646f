/**
 * The store contract (store/store.ts, PROTOCOL §10.1) against a real SQLite file in a temp dir.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_OPTIONS } from "../../server/src/core/options.ts";
import type { Branch, GlobalStatus, TransGlobal } from "../../server/src/core/types.ts";
import { SqliteStore } from "../../server/src/store/sqlite/sqlite-store.ts";
import type { NewBranch, NewTrans } from "../../server/src/store/store.ts";

const T0 = 1_700_000_000_000;

let dir: string;
let path: string;
let store: SqliteStore;
const opened: SqliteStore[] = [];

function open(): SqliteStore {
  const s = new SqliteStore({ path });
  opened.push(s);
  return s;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "dtx-sqlite-"));
  path = join(dir, "sub", "dtx.db");
  store = open();
});

afterEach(async () => {
  for (const s of opened.splice(0)) {
    try {
      await s.close();
    } catch {
      // already closed by the test
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

function trans(gid: string, o: Partial<NewTrans> = {}): NewTrans {
  return {
    gid,
    transType: "saga",
    status: "submitted",
    protocol: "http",
    queryPrepared: "",
    customData: "",
    options: { ...DEFAULT_OPTIONS, branchHeaders: {} },
    extData: "",
    createTime: T0,
    updateTime: T0,
    finishTime: null,
    rollbackTime: null,
    rollbackReason: "",
    result: "",
    nextCronInterval: 10_000,
    nextCronTime: T0 + 10_000,
    owner: "",
    ...o,
  };
}

function branch(gid: string, branchId: string, op: string, o: Partial<NewBranch> = {}): NewBranch {
  return {
    gid,
    branchId,
    op,
    url: `http://rm.local/${branchId}/${op}`,
    binData: new TextEncoder().encode(`{"step":"${branchId}"}`),
    status: "prepared",
    createTime: T0,
    updateTime: T0,
    finishTime: null,
    ...o,
  };
}

function sagaBranches(gid: string, steps: number): NewBranch[] {
  const out: NewBranch[] = [];
  for (let i = 1; i <= steps; i++) {
    const id = String(i).padStart(2, "0");
    out.push(branch(gid, id, "compensate"), branch(gid, id, "action"));
  }
  return out;
}

/** Branch rows without the store-assigned id, with the payload as plain bytes, for comparisons. */
function plain(branches: readonly (Branch | NewBranch)[]): object[] {
  return branches.map((b) => {
    const { binData, ...rest } = b;
    if ("id" in rest) delete (rest as { id?: number }).id;
    return { ...rest, binData: [...binData] };
  });
}

async function mustFind(s: SqliteStore, gid: string): Promise<TransGlobal> {
  const t = await s.findTrans(gid);
  if (!t) throw new Error(`${gid} not found`);
  return t;
}

describe("SqliteStore: saveNewTrans / find", () => {
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
    expect(await store.saveNewTrans(t, branches)).toBe("created");
    const found = await mustFind(store, "g1");
    expect(found.id).toBeGreaterThan(0);
    const { id: _id, ...rest } = found;
    expect(rest).toEqual(t);
    expect(plain(await store.findBranches("g1"))).toEqual(plain(branches));
  });

  it("returns null and [] for an unknown gid", async () => {
    expect(await store.findTrans("nope")).toBeNull();
    expect(await store.findBranches("nope")).toEqual([]);
  });

  it("an existing gid -> exists, and neither the trans nor its branches are written", async () => {
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

  it("findBranches returns branches in insertion order", async () => {
    const branches = [branch("g1", "03", "action"), branch("g1", "01", "cancel"), branch("g1", "02", "confirm"), branch("g1", "01", "action")];
    await store.saveNewTrans(trans("g1"), branches);
    await store.appendBranches("g1", "submitted", [branch("g1", "00", "zz"), branch("g1", "99", "aa")], T0);
    const found = await store.findBranches("g1");
    expect(found.map((b) => `${b.branchId}/${b.op}`)).toEqual(["03/action", "01/cancel", "02/confirm", "01/action", "00/zz", "99/aa"]);
    const ids = found.map((b) => b.id);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
  });

  it("keeps branches of different gids apart", async () => {
    await store.saveNewTrans(trans("a"), sagaBranches("a", 2));
    await store.saveNewTrans(trans("b"), sagaBranches("b", 1));
    expect(await store.findBranches("a")).toHaveLength(4);
    expect(await store.findBranches("b")).toHaveLength(2);
  });

  it("stores empty and binary payloads exactly", async () => {
    const bytes = Uint8Array.from([0, 255, 1, 254, 0]);
    await store.saveNewTrans(trans("g1"), [branch("g1", "01", "action", { binData: new Uint8Array(0) }), branch("g1", "02", "action", { binData: bytes })]);
    const [empty, bin] = await store.findBranches("g1");
    expect(empty?.binData.byteLength).toBe(0);
    expect([...(bin?.binData ?? [])]).toEqual([...bytes]);
  });
});

describe("SqliteStore: updateTrans (CAS)", () => {
  it("patches the trans and the branches when the status matches", async () => {
    await store.saveNewTrans(trans("g1"), sagaBranches("g1", 2));
    const ok = await store.updateTrans(
      "g1",
      "submitted",
      { status: "aborting", updateTime: T0 + 5, rollbackReason: "boom", nextCronTime: T0 + 99, nextCronInterval: 20_000 },
      [{ branchId: "01", op: "action", status: "failed", finishTime: T0 + 4 }],
    );
    expect(ok).toBe(true);
    const t = await mustFind(store, "g1");
    expect(t).toMatchObject({ status: "aborting", updateTime: T0 + 5, rollbackReason: "boom", nextCronTime: T0 + 99, nextCronInterval: 20_000, finishTime: null });
    const b = (await store.findBranches("g1")).find((x) => x.branchId === "01" && x.op === "action");
    expect(b).toMatchObject({ status: "failed", finishTime: T0 + 4, updateTime: T0 + 5 });
    // Other branches are untouched.
    expect((await store.findBranches("g1")).filter((x) => x.status !== "prepared")).toHaveLength(1);
  });

  it("leaves fields that the patch does not name as they are", async () => {
    await store.saveNewTrans(trans("g1", { rollbackReason: "keep", result: "keep-too" }), []);
    expect(await store.updateTrans("g1", "submitted", { updateTime: T0 + 1 }, [])).toBe(true);
    const t = await mustFind(store, "g1");
    expect(t).toMatchObject({ status: "submitted", rollbackReason: "keep", result: "keep-too", nextCronTime: T0 + 10_000, updateTime: T0 + 1 });
    expect(await store.updateTrans("g1", "submitted", { status: "succeed", updateTime: T0 + 2, finishTime: T0 + 2, result: "r" }, [])).toBe(true);
    expect(await mustFind(store, "g1")).toMatchObject({ status: "succeed", finishTime: T0 + 2, result: "r" });
  });

  it("a wrong expected status returns false and writes nothing, branch updates included", async () => {
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
    expect(await store.updateTrans("nope", "submitted", { status: "succeed", updateTime: T0 }, [])).toBe(false);
  });

  it("two racing writers from the same status: exactly one wins", async () => {
    await store.saveNewTrans(trans("g1"), sagaBranches("g1", 1));
    const [a, b] = await Promise.all([
      store.updateTrans("g1", "submitted", { status: "succeed", updateTime: T0 + 1 }, [{ branchId: "01", op: "action", status: "succeed", finishTime: T0 + 1 }]),
      store.updateTrans("g1", "submitted", { status: "aborting", updateTime: T0 + 2 }, [{ branchId: "01", op: "action", status: "failed", finishTime: T0 + 2 }]),
    ]);
    expect([a, b].filter(Boolean)).toHaveLength(1);
    const t = await mustFind(store, "g1");
    const action = (await store.findBranches("g1")).find((x) => x.op === "action");
    if (a) expect([t.status, action?.status]).toEqual(["succeed", "succeed"]);
    else expect([t.status, action?.status]).toEqual(["aborting", "failed"]);
  });
});

describe("SqliteStore: claimDue", () => {
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
    for (const [gid, status, next] of rows) await store.saveNewTrans(trans(gid, { status, nextCronTime: next }), []);
  }

  it("claims only unfinished, due rows, oldest first, and pushes their lease", async () => {
    await seed();
    const claimed = await store.claimDue(T0, T0 + 30_000, 100, "owner-1");
    expect(claimed.map((t) => t.gid)).toEqual(["due-submitted", "due-prepared", "due-aborting", "due-now"]);
    for (const t of claimed) {
      expect(t).toMatchObject({ nextCronTime: T0 + 30_000, owner: "owner-1", updateTime: T0 });
      expect(await mustFind(store, t.gid)).toMatchObject({ nextCronTime: T0 + 30_000, owner: "owner-1" });
    }
    expect((await mustFind(store, "later")).nextCronTime).toBe(T0 + 1);
    expect((await mustFind(store, "due-succeed")).owner).toBe("");
  });

  it("a second claim at the same now gets nothing", async () => {
    await seed();
    expect(await store.claimDue(T0, T0 + 30_000, 100, "a")).toHaveLength(4);
    expect(await store.claimDue(T0, T0 + 30_000, 100, "b")).toEqual([]);
    // After the lease runs out the rows are due again.
    const again = await store.claimDue(T0 + 30_000, T0 + 60_000, 100, "b");
    expect(again.map((t) => t.gid).sort()).toEqual(["due-aborting", "due-now", "due-prepared", "due-submitted", "later"]);
  });

  it("respects the limit", async () => {
    await seed();
    const first = await store.claimDue(T0, T0 + 30_000, 2, "a");
    expect(first.map((t) => t.gid)).toEqual(["due-submitted", "due-prepared"]);
    const second = await store.claimDue(T0, T0 + 30_000, 2, "b");
    expect(second.map((t) => t.gid)).toEqual(["due-aborting", "due-now"]);
    expect(await store.claimDue(T0, T0 + 30_000, 2, "c")).toEqual([]);
  });

  it("concurrent claims never hand out the same row twice", async () => {
    for (let i = 0; i < 30; i++) await store.saveNewTrans(trans(`g${i}`, { nextCronTime: T0 - i }), []);
    const results = await Promise.all([1, 2, 3, 4, 5].map((n) => store.claimDue(T0, T0 + 1_000, 8, `o${n}`)));
    const gids = results.flat().map((t) => t.gid);
    expect(new Set(gids).size).toBe(gids.length);
    expect(gids).toHaveLength(30);
  });
});

describe("SqliteStore: scanTrans", () => {
  beforeEach(async () => {
    for (let i = 0; i < 7; i++) {
      const status: GlobalStatus = i % 2 === 0 ? "succeed" : "submitted";
      await store.saveNewTrans(trans(`s${i}`, { status, transType: i < 4 ? "saga" : "tcc", createTime: T0 + i * 1_000 }), []);
    }
  });

  it("pages newest first with position / nextPosition", async () => {
    const seen: string[] = [];
    let position = "";
    let pages = 0;
    do {
      const page = await store.scanTrans({ position, limit: 3 });
      seen.push(...page.transactions.map((t) => t.gid));
      position = page.nextPosition;
      pages += 1;
      if (page.transactions.length < 3) expect(page.nextPosition).toBe("");
    } while (position !== "" && pages < 10);
    expect(seen).toEqual(["s6", "s5", "s4", "s3", "s2", "s1", "s0"]);
    expect(pages).toBe(3);
  });

  it("a full last page points at a final empty page", async () => {
    const first = await store.scanTrans({ position: "", limit: 7 });
    expect(first.transactions).toHaveLength(7);
    const rest = await store.scanTrans({ position: first.nextPosition, limit: 7 });
    expect(rest).toEqual({ transactions: [], nextPosition: "" });
  });

  it("filters by status, type and create time (inclusive bounds)", async () => {
    const gids = async (q: Partial<Parameters<SqliteStore["scanTrans"]>[0]>): Promise<string[]> =>
      (await store.scanTrans({ position: "", limit: 100, ...q })).transactions.map((t) => t.gid);
    expect(await gids({ status: "succeed" })).toEqual(["s6", "s4", "s2", "s0"]);
    expect(await gids({ transType: "tcc" })).toEqual(["s6", "s5", "s4"]);
    expect(await gids({ status: "submitted", transType: "saga" })).toEqual(["s3", "s1"]);
    expect(await gids({ createTimeStart: T0 + 2_000, createTimeEnd: T0 + 4_000 })).toEqual(["s4", "s3", "s2"]);
    expect(await gids({ status: "failed" })).toEqual([]);
    // Filters and paging together.
    const page = await store.scanTrans({ position: "", limit: 2, status: "succeed" });
    expect(page.transactions.map((t) => t.gid)).toEqual(["s6", "s4"]);
    const next = await store.scanTrans({ position: page.nextPosition, limit: 2, status: "succeed" });
    expect(next.transactions.map((t) => t.gid)).toEqual(["s2", "s0"]);
  });
});

describe("SqliteStore: resetCronTime / resetNextCronTime", () => {
  it("resetCronTime pulls forward unfinished transactions scheduled after `after`, in bounded batches", async () => {
    for (let i = 0; i < 5; i++) await store.saveNewTrans(trans(`u${i}`, { nextCronTime: T0 + 100_000 + i }), []);
    await store.saveNewTrans(trans("done", { status: "succeed", nextCronTime: T0 + 100_000 }), []);
    await store.saveNewTrans(trans("soon", { nextCronTime: T0 + 10 }), []);

    expect(await store.resetCronTime(T0 + 50_000, T0, 3)).toEqual({ count: 3, hasRemaining: true });
    expect(await store.resetCronTime(T0 + 50_000, T0, 3)).toEqual({ count: 2, hasRemaining: false });
    expect(await store.resetCronTime(T0 + 50_000, T0, 3)).toEqual({ count: 0, hasRemaining: false });
    for (let i = 0; i < 5; i++) expect((await mustFind(store, `u${i}`)).nextCronTime).toBe(T0);
    expect((await mustFind(store, "done")).nextCronTime).toBe(T0 + 100_000);
    expect((await mustFind(store, "soon")).nextCronTime).toBe(T0 + 10);
  });

  it("resetNextCronTime makes one trans due now; false for an unknown gid", async () => {
    await store.saveNewTrans(trans("g1", { nextCronTime: T0 + 100_000 }), []);
    await store.saveNewTrans(trans("g2", { nextCronTime: T0 + 100_000 }), []);
    expect(await store.resetNextCronTime("g1", T0 + 5)).toBe(true);
    expect(await mustFind(store, "g1")).toMatchObject({ nextCronTime: T0 + 5, updateTime: T0 + 5 });
    expect((await mustFind(store, "g2")).nextCronTime).toBe(T0 + 100_000);
    expect(await store.resetNextCronTime("nope", T0)).toBe(false);
    expect((await store.claimDue(T0 + 5, T0 + 1_000, 10, "o")).map((t) => t.gid)).toEqual(["g1"]);
  });
});

describe("SqliteStore: appendBranches", () => {
  beforeEach(async () => {
    await store.saveNewTrans(trans("g1", { status: "prepared", transType: "tcc" }), []);
  });

  it("saves when the status matches", async () => {
    const bs = [branch("g1", "01", "cancel"), branch("g1", "01", "confirm")];
    expect(await store.appendBranches("g1", "prepared", bs, T0)).toBe("saved");
    expect(plain(await store.findBranches("g1"))).toEqual(plain(bs));
  });

  it("status_mismatch and not_found write nothing", async () => {
    expect(await store.appendBranches("g1", "submitted", [branch("g1", "01", "cancel")], T0)).toBe("status_mismatch");
    expect(await store.appendBranches("nope", "prepared", [branch("nope", "01", "cancel")], T0)).toBe("not_found");
    expect(await store.findBranches("g1")).toEqual([]);
    expect(await store.findBranches("nope")).toEqual([]);
  });

  it("an identical repeat is saved again without a second row (idempotent)", async () => {
    const bs = [branch("g1", "01", "cancel"), branch("g1", "01", "confirm")];
    await store.appendBranches("g1", "prepared", bs, T0);
    const before = await store.findBranches("g1");
    const copy = bs.map((b) => ({ ...b, binData: Uint8Array.from(b.binData), updateTime: T0 + 9 }));
    expect(await store.appendBranches("g1", "prepared", copy, T0 + 9)).toBe("saved");
    expect(await store.findBranches("g1")).toEqual(before);
  });

  it("a repeat with a different url or payload is a conflict and writes nothing, not even the new rows", async () => {
    await store.appendBranches("g1", "prepared", [branch("g1", "01", "cancel")], T0);
    const before = await store.findBranches("g1");
    expect(await store.appendBranches("g1", "prepared", [branch("g1", "02", "cancel"), branch("g1", "01", "cancel", { url: "http://elsewhere" })], T0)).toBe(
      "conflict",
    );
    expect(await store.appendBranches("g1", "prepared", [branch("g1", "01", "cancel", { binData: new TextEncoder().encode("other") })], T0)).toBe("conflict");
    expect(await store.findBranches("g1")).toEqual(before);
  });

  it("a repeat that adds a new op next to an identical one saves only the new row", async () => {
    await store.appendBranches("g1", "prepared", [branch("g1", "01", "cancel")], T0);
    expect(await store.appendBranches("g1", "prepared", [branch("g1", "01", "cancel"), branch("g1", "01", "confirm")], T0)).toBe("saved");
    expect((await store.findBranches("g1")).map((b) => b.op)).toEqual(["cancel", "confirm"]);
  });
});

describe("SqliteStore: group commit and durability", () => {
  it("200 concurrent saveNewTrans calls all commit, in batches", async () => {
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => store.saveNewTrans(trans(`gc${i}`), sagaBranches(`gc${i}`, 2))),
    );
    expect(results.every((r) => r === "created")).toBe(true);
    expect(store.maxBatch).toBeGreaterThan(1);
    for (const i of [0, 57, 199]) expect(await store.findBranches(`gc${i}`)).toHaveLength(4);
    expect((await store.scanTrans({ position: "", limit: 1_000 })).transactions).toHaveLength(200);
  });

  it("a write that throws inside a batch rejects only its caller; the others commit", async () => {
    const calls = [
      store.saveNewTrans(trans("ok1"), sagaBranches("ok1", 1)),
      // Violates CHECK (op <> ''): this caller's trans row must roll back with its branch.
      store.saveNewTrans(trans("bad"), [branch("bad", "01", "action"), branch("bad", "01", "")]),
      store.updateTrans("ok1", "submitted", { status: "aborting", updateTime: T0 + 1 }, []),
      // UNIQUE (gid, branch_id, op) inside one saveNewTrans.
      store.saveNewTrans(trans("dup"), [branch("dup", "01", "action"), branch("dup", "01", "action")]),
      store.saveNewTrans(trans("ok2"), sagaBranches("ok2", 1)),
    ];
    const settled = await Promise.allSettled(calls);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled", "rejected", "fulfilled"]);
    expect(store.maxBatch).toBeGreaterThanOrEqual(5);
    const bad = settled[1];
    expect(bad?.status === "rejected" ? String(bad.reason) : "").toMatch(/CHECK/i);
    expect(await store.findTrans("bad")).toBeNull();
    expect(await store.findBranches("bad")).toEqual([]);
    expect(await store.findTrans("dup")).toBeNull();
    expect(await store.findBranches("dup")).toEqual([]);
    expect((await mustFind(store, "ok1")).status).toBe("aborting");
    expect(await store.findBranches("ok1")).toHaveLength(2);
    expect(await store.findBranches("ok2")).toHaveLength(2);
    // The store keeps working afterwards.
    expect(await store.saveNewTrans(trans("after"), [])).toBe("created");
  });

  it("data survives close and reopen", async () => {
    await store.saveNewTrans(trans("keep", { customData: '{"k":1}' }), sagaBranches("keep", 2));
    await store.updateTrans("keep", "submitted", { status: "aborting", updateTime: T0 + 1, rollbackReason: "why" }, [
      { branchId: "02", op: "action", status: "failed", finishTime: T0 + 1 },
    ]);
    const before = await mustFind(store, "keep");
    const branchesBefore = await store.findBranches("keep");
    // Writes still queued when close() is called are flushed first.
    const late = store.saveNewTrans(trans("late"), []);
    await store.close();
    expect(await late).toBe("created");

    const reopened = open();
    await reopened.migrate(); // idempotent on an existing schema
    await reopened.ping();
    expect(await reopened.findTrans("keep")).toEqual(before);
    expect(await reopened.findBranches("keep")).toEqual(branchesBefore);
    expect(await reopened.findTrans("late")).not.toBeNull();
    expect(await reopened.saveNewTrans(trans("keep"), [])).toBe("exists");
  });
});

describe("SqliteStore: KV", () => {
  it("create / find / CAS update / scan / delete", async () => {
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
});
