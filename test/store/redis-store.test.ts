/**
 * The store conformance suite against Redis (scripts/services.sh), under a key prefix of this
 * file's own, plus what only Redis has: several coordinators racing the Lua scripts, retention
 * of finished transactions by TTL, and the EVALSHA fallback.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { RedisStore } from "../../server/src/store/redis/redis-store.ts";
import type { RedisStoreOptions } from "../../server/src/store/redis/redis-store.ts";
import { testServiceUrls, unreachableMessage } from "../helpers/services.ts";
import { describeStoreConformance, openMigrated } from "./conformance.ts";
import { mustFind, sagaBranches, T0, trans } from "./suites/data.ts";

const url = testServiceUrls().redis;
// Hash-tagged like the default, and unique to this run of this file.
const prefix = `{dtx_test_${randomBytes(6).toString("hex")}}`;
let admin: Redis | undefined;

async function connectAdmin(): Promise<Redis> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  // connect() rejects with "Connection is closed."; the socket's own error says why.
  let cause: unknown;
  client.on("error", (error: unknown) => {
    cause = error;
  });
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    client.disconnect();
    throw new Error(unreachableMessage("Redis", url, cause ?? error));
  }
  return client;
}

function mustAdmin(): Redis {
  if (!admin) throw new Error("the admin connection is used before setup opened it");
  return admin;
}

/** Every key of this file's prefix, by SCAN (never KEYS, which blocks the server). */
async function prefixKeys(): Promise<string[]> {
  const out: string[] = [];
  let cursor = "0";
  do {
    const [next, keys] = await mustAdmin().scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    out.push(...keys);
    cursor = next;
  } while (cursor !== "0");
  return out;
}

async function deletePrefix(): Promise<void> {
  const keys = await prefixKeys();
  for (let i = 0; i < keys.length; i += 500) await mustAdmin().unlink(...keys.slice(i, i + 500));
}

const openStore = (options: Partial<RedisStoreOptions> = {}): Promise<RedisStore> =>
  openMigrated(() => new RedisStore({ url, prefix, ...options }));

describeStoreConformance({
  name: "redis",
  async setup() {
    admin = await connectAdmin();
  },
  reset: deletePrefix,
  open: () => openStore(),
  async teardown() {
    await deletePrefix();
    await admin?.quit();
  },
});

describe("redis store: coordinators sharing one Redis, retention, layout", () => {
  const stores: RedisStore[] = [];
  const open = async (options: Partial<RedisStoreOptions> = {}): Promise<RedisStore> => {
    const s = await openStore(options);
    stores.push(s);
    return s;
  };
  // In beforeEach, not beforeAll: an unreachable Redis fails each test instead of skipping it.
  beforeEach(async () => {
    admin ??= await connectAdmin();
    await deletePrefix();
  });
  afterAll(async () => {
    await Promise.allSettled(stores.map((s) => s.close()));
  });

  it("four coordinators racing claimDue in rounds: every due trans is claimed exactly once, by the one its owner names", async () => {
    const coordinators = await Promise.all([open(), open(), open(), open()]);
    const [first] = coordinators;
    if (!first) throw new Error("no store");
    const due = Array.from({ length: 120 }, (_, i) => `due${i}`);
    await Promise.all(due.map((gid, i) => first.saveNewTrans(trans(gid, { nextCronTime: T0 - (i % 17) }), [])));
    await first.saveNewTrans(trans("later", { nextCronTime: T0 + 1 }), []);
    await first.saveNewTrans(trans("done", { status: "succeed", nextCronTime: T0 - 100 }), []);

    const claimedBy = new Map<string, string>();
    for (let round = 0; round < 10; round++) {
      const results = await Promise.all(
        coordinators.flatMap((s, n) => [s.claimDue(T0, T0 + 60_000, 7, `c${n}`), s.claimDue(T0, T0 + 60_000, 5, `c${n}`)]),
      );
      for (const [i, batch] of results.entries()) {
        for (const t of batch) {
          expect(claimedBy.has(t.gid), `${t.gid} claimed twice`).toBe(false);
          claimedBy.set(t.gid, `c${Math.floor(i / 2)}`);
        }
      }
    }
    expect([...claimedBy.keys()].sort()).toEqual([...due].sort());
    for (const [gid, owner] of claimedBy) expect(await mustFind(first, gid)).toMatchObject({ owner, nextCronTime: T0 + 60_000 });
    expect((await mustFind(first, "later")).owner).toBe("");
    expect((await mustFind(first, "done")).owner).toBe("");
  });

  it("racing updateTrans CAS from eight coordinators: exactly one wins, and its branch results are the ones stored", async () => {
    const coordinators = await Promise.all(Array.from({ length: 8 }, () => open()));
    const [first] = coordinators;
    if (!first) throw new Error("no store");
    for (let g = 0; g < 20; g++) {
      const gid = `race${g}`;
      await first.saveNewTrans(trans(gid), sagaBranches(gid, 2));
      const results = await Promise.all(coordinators.map((s, i) => s.updateTrans(gid, "submitted",
        { status: i % 2 === 0 ? "succeed" : "aborting", updateTime: T0 + i, result: `w${i}` },
        [{ branchId: "01", op: "action", status: i % 2 === 0 ? "succeed" : "failed", finishTime: T0 + i }])));
      expect(results.filter(Boolean)).toHaveLength(1);
      const winner = results.indexOf(true);
      expect(await mustFind(first, gid)).toMatchObject({ result: `w${winner}`, updateTime: T0 + winner });
      const action = (await first.findBranches(gid)).find((b) => b.branchId === "01" && b.op === "action");
      expect(action).toMatchObject({ status: winner % 2 === 0 ? "succeed" : "failed", finishTime: T0 + winner });
    }
  });

  it("a finished trans and its branches expire after finishedExpireSeconds; unfinished ones never expire", async () => {
    const store = await open({ finishedExpireSeconds: 3600 });
    await store.saveNewTrans(trans("open"), sagaBranches("open", 1));
    await store.saveNewTrans(trans("fin"), sagaBranches("fin", 1));
    expect(await store.updateTrans("fin", "submitted", { status: "succeed", updateTime: T0 + 1, finishTime: T0 + 1 }, [])).toBe(true);
    const ttl = (key: string): Promise<number> => mustAdmin().ttl(`${prefix}:${key}`);
    expect(await ttl("g:open")).toBe(-1);
    expect(await ttl("b:open")).toBe(-1);
    for (const key of ["g:fin", "b:fin"]) {
      expect(await ttl(key)).toBeGreaterThan(3500);
      expect(await ttl(key)).toBeLessThanOrEqual(3600);
    }
    // A finished trans is no longer due.
    expect(await mustAdmin().zscore(`${prefix}:due`, "fin")).toBeNull();
    expect(await mustAdmin().zscore(`${prefix}:due`, "open")).not.toBeNull();
  });

  it("finishedExpireSeconds 0 keeps finished transactions", async () => {
    const store = await open({ finishedExpireSeconds: 0 });
    await store.saveNewTrans(trans("fin"), sagaBranches("fin", 1));
    await store.updateTrans("fin", "submitted", { status: "failed", updateTime: T0 + 1 }, []);
    expect(await mustAdmin().ttl(`${prefix}:g:fin`)).toBe(-1);
  });

  it("scanTrans skips a trans that expired and forgets it in the index", async () => {
    const store = await open();
    for (let i = 0; i < 5; i++) await store.saveNewTrans(trans(`s${i}`), []);
    await mustAdmin().unlink(`${prefix}:g:s3`); // as if its TTL ran out
    const page = await store.scanTrans({ position: "", limit: 3 });
    expect(page.transactions.map((t) => t.gid)).toEqual(["s4", "s2", "s1"]);
    expect(await mustAdmin().zscore(`${prefix}:ids`, "s3")).toBeNull();
    // An expired gid may be used again, with a new id.
    expect(await store.saveNewTrans(trans("s3"), [])).toBe("created");
    expect((await store.scanTrans({ position: "", limit: 1 })).transactions.map((t) => t.gid)).toEqual(["s3"]);
  });

  it("deleteFinished forgets expired gids in the id index, a bounded walk at a time, without anyone listing", async () => {
    const store = await open();
    for (let i = 0; i < 7; i++) await store.saveNewTrans(trans(`e${i}`, { status: i === 3 ? "submitted" : "succeed" }), []);
    for (const i of [0, 1, 2, 4, 5, 6]) await mustAdmin().unlink(`${prefix}:g:e${i}`); // as if their TTL ran out
    const before = T0 + 1; // created before it, but unfinished or expired: only the index is cleaned
    const batches = [];
    for (let i = 0; i < 10; i++) {
      const batch = await store.deleteFinished(before, 3);
      batches.push(batch);
      if (!batch.more) break;
    }
    // 7 entries, 3 per call: the walk ends (and wraps) on the third call.
    expect(batches).toEqual([
      { deleted: 0, pruned: 3, more: true },
      { deleted: 0, pruned: 2, more: true },
      { deleted: 0, pruned: 1, more: false },
    ]);
    expect(await mustAdmin().zrange(`${prefix}:ids`, "0", "-1")).toEqual(["e3"]);
    // The next round starts from the lowest id again.
    expect(await store.deleteFinished(before, 3)).toEqual({ deleted: 0, pruned: 0, more: false });
  });

  it("deleteFinished's walk ends at the first trans created after the cut-off: nothing newer can be due yet", async () => {
    const store = await open();
    await store.saveNewTrans(trans("x-old", { status: "succeed", createTime: T0 }), []);
    await store.saveNewTrans(trans("x-young", { status: "succeed", createTime: T0 + 100 }), []);
    await store.saveNewTrans(trans("x-after"), []);
    await mustAdmin().unlink(`${prefix}:g:x-old`, `${prefix}:g:x-after`); // as if their TTL ran out
    expect(await store.deleteFinished(T0 + 50, 10)).toEqual({ deleted: 0, pruned: 1, more: false });
    expect(await mustAdmin().zrange(`${prefix}:ids`, "0", "-1")).toEqual(["x-young", "x-after"]);
    // A later round, past x-young's creation, goes on (x-young itself is finished at T0: deleted).
    expect(await store.deleteFinished(T0 + 200, 10)).toEqual({ deleted: 1, pruned: 1, more: false });
    expect(await mustAdmin().zcard(`${prefix}:ids`)).toBe(0);
  });

  it("deleteFinished deletes an old finished trans that carries no TTL (finished while retention was off)", async () => {
    const keepForever = await open({ finishedExpireSeconds: 0 });
    await keepForever.saveNewTrans(trans("fin"), sagaBranches("fin", 1));
    await keepForever.updateTrans("fin", "submitted", { status: "succeed", updateTime: T0 + 1 }, []);
    expect(await mustAdmin().ttl(`${prefix}:g:fin`)).toBe(-1);
    expect(await keepForever.deleteFinished(T0 + 1, 10)).toEqual({ deleted: 0, pruned: 0, more: false });
    expect(await keepForever.deleteFinished(T0 + 2, 10)).toEqual({ deleted: 1, pruned: 0, more: false });
    expect(await mustAdmin().exists(`${prefix}:g:fin`, `${prefix}:b:fin`, `${prefix}:due`)).toBe(0);
    expect(await mustAdmin().zscore(`${prefix}:ids`, "fin")).toBeNull();
  });

  it("keeps every key under its prefix: two prefixes on one Redis do not see each other", async () => {
    const store = await open();
    const elsewhere = new RedisStore({ url, prefix: `${prefix}other` });
    stores.push(elsewhere);
    await elsewhere.migrate();
    await store.saveNewTrans(trans("g1"), sagaBranches("g1", 1));
    await store.createKV("topics", "t1", "v", T0);
    expect(await elsewhere.findTrans("g1")).toBeNull();
    expect(await elsewhere.findKV("topics", "t1")).toBeNull();
    expect(await elsewhere.saveNewTrans(trans("g1"), [])).toBe("created");
    const keys = await prefixKeys();
    expect(keys.every((k) => k.startsWith(prefix))).toBe(true);
  });

  it("refuses a prefix written with another layout version", async () => {
    await mustAdmin().set(`${prefix}:layout`, "99");
    const store = new RedisStore({ url, prefix });
    stores.push(store);
    await expect(store.migrate()).rejects.toThrow(/layout version 99/);
  });

  it("the commands of one loop iteration reach Redis in one write (the server reads them at once), and each gets its own answer", async () => {
    const s = await open();
    await s.saveNewTrans(trans("gathered"), []);
    const readsProcessed = async (): Promise<number> => Number(/total_reads_processed:(\d+)/.exec(await mustAdmin().info("stats"))?.[1]);
    const before = await readsProcessed();
    const found = await Promise.all(Array.from({ length: 400 }, (_, i) => s.findTrans(i === 7 ? "gathered" : `absent${i}`)));
    const reads = (await readsProcessed()) - before;
    expect(found.filter((t) => t !== null).map((t) => t?.gid)).toEqual(["gathered"]);
    expect(found[7]?.gid).toBe("gathered");
    // One write of 400 commands (the server may read it in a few chunks), plus the INFO itself;
    // a write per command gave 240-460 reads here. Other suites on the same server add a few.
    expect(reads).toBeLessThan(40);
  });

  it("keeps working after SCRIPT FLUSH (EVALSHA falls back to EVAL)", async () => {
    const store = await open();
    await store.saveNewTrans(trans("g1"), []);
    await mustAdmin().script("FLUSH");
    expect(await store.updateTrans("g1", "submitted", { status: "aborting", updateTime: T0 + 1 }, [])).toBe(true);
    expect((await mustFind(store, "g1")).status).toBe("aborting");
  });

  it("a Redis that cannot be reached is a fault: the call rejects instead of hanging", async () => {
    const store = new RedisStore({ url: "redis://127.0.0.1:1" });
    try {
      await expect(store.ping()).rejects.toThrow();
      await expect(store.findTrans("g1")).rejects.toThrow();
    } finally {
      await store.close().catch(() => undefined);
    }
  });
});
