// The Lua barrier on the real Redis (scripts/services.sh).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { BranchBarrier, CHECK_ADJUST_AMOUNT_LUA, doAndSubmit, redisBarrierKey } from "../src/barrier/index.ts";
import { testServiceUrls, unreachableMessage } from "../../test/helpers/services.ts";
import { RUN, barrierFuzz, deleteRunKeys, barrierScenarios, fuzzReport, info, raceReport, recordingMsg, redisStore, uniqueGid } from "./barrier-helpers.ts";
import type { StoreUnderTest } from "./barrier-helpers.ts";

const url = testServiceUrls().redis;
let clients: [Redis, Redis];
let store: StoreUnderTest;
const prefix = `dtx-barrier-test:${RUN}`;

beforeAll(async () => {
  const make = (): Redis => new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  clients = [make(), make()];
  try {
    await Promise.all(clients.map((c) => c.connect()));
  } catch (cause) {
    throw new Error(unreachableMessage("Redis", url, cause), { cause });
  }
  store = redisStore(clients, prefix);
});

afterAll(async () => {
  if (fuzzReport.length > 0) process.stdout.write(`barrier fuzz: ${JSON.stringify(fuzzReport)}\n`);
  if (raceReport.length > 0) process.stdout.write(`barrier races: ${JSON.stringify(raceReport)}\n`);
  if (clients) await deleteRunKeys(clients[0]);
  await Promise.allSettled((clients ?? []).map((c) => c.quit()));
});

describe("barrier on Redis (one Lua script)", () => {
  barrierScenarios(() => store);
  barrierFuzz(() => store, 1000);

  it("FAILURE when the amount key is missing or would go negative; nothing is written", async () => {
    const gid = uniqueGid("redis-fail");
    await expect(new BranchBarrier(info(gid, "try")).redisCheckAdjustAmount(clients[0], `${prefix}:missing`, 1)).rejects.toMatchObject({ code: "FAILURE" });
    await clients[0].set(`${prefix}:${gid}`, "3");
    await expect(new BranchBarrier(info(gid, "try")).redisCheckAdjustAmount(clients[0], `${prefix}:${gid}`, -4)).rejects.toMatchObject({ code: "FAILURE" });
    expect(await clients[0].keys(`${gid}-*`)).toEqual([]);
    await expect(new BranchBarrier(info(gid, "try")).redisCheckAdjustAmount(clients[0], `${prefix}:${gid}`, 1.5)).rejects.toMatchObject({ code: "BARRIER_INVALID_AMOUNT" });
    await expect(new BranchBarrier(info(gid, "try")).redisCheckAdjustAmount(clients[0], `${prefix}:${gid}`, 1, 0)).rejects.toMatchObject({ code: "BARRIER_INVALID_PARAM" });
  });

  it("barrier keys expire (default 7 days, configurable)", async () => {
    const gid = uniqueGid("redis-ttl");
    const key = `${prefix}:${gid}`;
    await clients[0].set(key, "10", "EX", 600);
    await new BranchBarrier(info(gid, "try")).redisCheckAdjustAmount(clients[0], key, -1);
    const ttl = await clients[0].ttl(redisBarrierKey(gid, "01", "try", "01"));
    expect(ttl).toBeGreaterThan(7 * 24 * 3600 - 10);
    expect(ttl).toBeLessThanOrEqual(7 * 24 * 3600);
    await new BranchBarrier(info(gid, "cancel")).redisCheckAdjustAmount(clients[0], key, 1, 60);
    expect(await clients[0].ttl(redisBarrierKey(gid, "01", "cancel", "01"))).toBeLessThanOrEqual(60);
    // The documented caveat: once a barrier key is gone, a redelivered try runs again.
    const g2 = uniqueGid("redis-expired");
    await new BranchBarrier(info(g2, "try")).redisCheckAdjustAmount(clients[0], key, -1, 1);
    await clients[0].del(redisBarrierKey(g2, "01", "try", "01")); // as if expired or evicted
    expect((await new BranchBarrier(info(g2, "try")).redisCheckAdjustAmount(clients[0], key, -1, 1)).executed).toBe(true);
    expect(await clients[0].get(key)).toBe("8");
  });

  it("is one script loaded once (EVALSHA), also after SCRIPT FLUSH", async () => {
    const gid = uniqueGid("redis-sha");
    const key = `${prefix}:${gid}`;
    await clients[0].set(key, "10", "EX", 600);
    expect(CHECK_ADJUST_AMOUNT_LUA.match(/redis\.call\('INCRBY'/g)).toHaveLength(1);
    await clients[1].script("FLUSH");
    expect((await new BranchBarrier(info(gid, "try")).redisCheckAdjustAmount(clients[1], key, -1)).executed).toBe(true);
    expect(await clients[0].get(key)).toBe("9");
  });

  it("doAndSubmit with the Redis barrier and check-back", async () => {
    const { calls, msg } = recordingMsg();
    const gid = uniqueGid("redis-das");
    const key = `${prefix}:${gid}`;
    await clients[0].set(key, "10", "EX", 600);
    await doAndSubmit(msg(gid), "qp", (bb) => bb.redisCheckAdjustAmount(clients[0], key, -4), (bb) => bb.redisQueryPrepared(clients[0]));
    // a second run is DUPLICATED; the check-back says committed, so it submits (as dtm)
    await expect(doAndSubmit(msg(gid), "qp", (bb) => bb.redisCheckAdjustAmount(clients[0], key, -4), (bb) => bb.redisQueryPrepared(clients[0]))).rejects.toMatchObject({ code: "DUPLICATED" });
    // insufficient balance: FAILURE -> abort
    const g2 = uniqueGid("redis-das-fail");
    await expect(doAndSubmit(msg(g2), "qp", (bb) => bb.redisCheckAdjustAmount(clients[0], key, -100), (bb) => bb.redisQueryPrepared(clients[0]))).rejects.toMatchObject({ code: "FAILURE" });
    expect(calls).toEqual(["prepare", "submit", "prepare", "submit", "prepare", "abort"]);
    expect(await clients[0].get(key)).toBe("6");
  });
});
