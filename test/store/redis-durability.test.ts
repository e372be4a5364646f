/**
 * The Redis store's start-up durability check (docs/redis.md), against real redis-server
 * processes this file starts on free ports with unsafe settings, and kills afterwards.
 */
import { afterEach, describe, expect, it } from "vitest";
import { durabilityMessage, durabilityProblems } from "../../server/src/store/redis/durability.ts";
import { RedisStore } from "../../server/src/store/redis/redis-store.ts";
import type { PrivateRedis } from "../helpers/redis-server.ts";
import { startRedisServer } from "../helpers/redis-server.ts";
import { startCoordinator } from "../helpers/coordinator.ts";
import { trans } from "./suites/data.ts";

const SAFE = ["--appendonly", "yes", "--appendfsync", "always", "--maxmemory-policy", "noeviction"];

describe("redis durability: which settings lose acknowledged writes", () => {
  it("only appendonly yes + appendfsync always + noeviction is safe", () => {
    const safe = { appendonly: "yes", appendfsync: "always", "maxmemory-policy": "noeviction" };
    expect(durabilityProblems(safe)).toEqual([]);
    const settings = (o: Partial<typeof safe>): string[] => durabilityProblems({ ...safe, ...o }).map((p) => p.setting);
    expect(settings({ appendonly: "no" })).toEqual(["appendonly"]);
    expect(settings({ appendfsync: "everysec" })).toEqual(["appendfsync"]);
    expect(settings({ appendfsync: "no" })).toEqual(["appendfsync"]);
    for (const policy of ["allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"]) {
      expect(settings({ "maxmemory-policy": policy })).toEqual(["maxmemory-policy"]);
    }
    expect(settings({ appendonly: "no", appendfsync: "everysec", "maxmemory-policy": "allkeys-lru" })).toEqual(["appendonly", "appendfsync", "maxmemory-policy"]);
  });

  it("the refusal says how to fix each setting and how to accept the risk; the warning names what is unsafe", () => {
    const problems = durabilityProblems({ appendonly: "no", appendfsync: "everysec", "maxmemory-policy": "allkeys-lru" });
    const refusal = durabilityMessage(problems, false);
    for (const line of ["CONFIG SET appendonly yes", "CONFIG SET appendfsync always", "CONFIG SET maxmemory-policy noeviction", "CONFIG REWRITE", "store.allowUnsafeRedis: true", "DTX_STORE_ALLOW_UNSAFE_REDIS=1"]) {
      expect(refusal).toContain(line);
    }
    const warning = durabilityMessage(problems, true);
    expect(warning).toMatch(/appendonly is "no"/);
    expect(warning).toMatch(/appendfsync is "everysec"/);
    expect(warning).toMatch(/maxmemory-policy is "allkeys-lru"/);
    expect(warning).not.toContain("to accept the risk");
  });
});

describe("redis durability: RedisStore.migrate() on real servers", () => {
  let server: PrivateRedis | undefined;
  const stores: RedisStore[] = [];
  afterEach(async () => {
    await Promise.allSettled(stores.splice(0).map((s) => s.close()));
    await server?.stop();
    server = undefined;
  });

  const open = async (args: readonly string[], options: { allowUnsafe?: boolean; onUnsafe?: (m: string) => void } = {}): Promise<RedisStore> => {
    server = await startRedisServer(args);
    const store = new RedisStore({ url: server.url, prefix: "{dtx}", ...options });
    stores.push(store);
    return store;
  };

  it("starts on a safe server", async () => {
    const store = await open(SAFE);
    await store.migrate();
    expect(await store.saveNewTrans(trans("g1"), [])).toBe("created");
  });

  it.each([
    ["appendonly no (RDB only)", ["--appendonly", "no", "--appendfsync", "always"], /appendonly is "no"[\s\S]*CONFIG SET appendonly yes/, /appendfsync is/],
    ["appendfsync everysec", ["--appendonly", "yes", "--appendfsync", "everysec"], /appendfsync is "everysec"[\s\S]*CONFIG SET appendfsync always/, /appendonly is/],
    ["appendfsync no", ["--appendonly", "yes", "--appendfsync", "no"], /appendfsync is "no"[\s\S]*CONFIG SET appendfsync always/, /appendonly is/],
    ["maxmemory-policy allkeys-lru", [...SAFE, "--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"], /maxmemory-policy is "allkeys-lru"[\s\S]*CONFIG SET maxmemory-policy noeviction/, /appendonly is/],
    ["maxmemory-policy volatile-lru", [...SAFE, "--maxmemory-policy", "volatile-lru"], /maxmemory-policy is "volatile-lru"/, /appendfsync is/],
  ])("refuses %s, saying how to fix it, and writes nothing", async (_name, args, says, doesNotSay) => {
    const store = await open(args);
    const error = await store.migrate().then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    expect(message).toMatch(says);
    expect(message).not.toMatch(doesNotSay);
    expect(message).toContain("store.allowUnsafeRedis");
    if (!server) throw new Error("no server");
    const { Redis } = await import("ioredis");
    const admin = new Redis(server.url);
    try {
      expect(await admin.dbsize()).toBe(0);
    } finally {
      admin.disconnect();
    }
  });

  it("the override starts on an unsafe server and warns, naming what is unsafe", async () => {
    const warnings: string[] = [];
    const store = await open(["--appendonly", "no"], { allowUnsafe: true, onUnsafe: (m) => warnings.push(m) });
    await store.migrate();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/appendonly is "no"/);
    expect(warnings[0]).toMatch(/appendfsync is "everysec"/);
    expect(await store.saveNewTrans(trans("g1"), [])).toBe("created");
  });

  it("a server whose CONFIG command is renamed away is refused (dtx cannot check it), unless overridden", async () => {
    const store = await open([...SAFE, "--rename-command", "CONFIG", ""]);
    await expect(store.migrate()).rejects.toThrow(/CONFIG GET is refused[\s\S]*allowUnsafeRedis/);
    await store.close();
    stores.splice(0);
    if (!server) throw new Error("no server");
    const warnings: string[] = [];
    const allowed = new RedisStore({ url: server.url, allowUnsafe: true, onUnsafe: (m) => warnings.push(m) });
    stores.push(allowed);
    await allowed.migrate();
    expect(warnings.join("\n")).toMatch(/CONFIG GET is refused/);
  });
});

describe("redis durability: a coordinator configured for an unsafe Redis", () => {
  let server: PrivateRedis | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  it("refuses to start, naming store.url and the fix; store.allowUnsafeRedis starts it", async () => {
    server = await startRedisServer(["--appendonly", "no"]);
    const store = { driver: "redis" as const, url: server.url, prefix: "{dtx_unsafe}" };
    await expect(startCoordinator({ store })).rejects.toThrow(/cannot open the redis store at store\.url[\s\S]*CONFIG SET appendonly yes/);
    const dtx = await startCoordinator({ store: { ...store, allowUnsafeRedis: true } });
    try {
      expect(await dtx.client.query("unsafe-none")).toEqual({ transaction: null, branches: [] });
    } finally {
      await dtx.stop();
    }
  });
});
