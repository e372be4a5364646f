import type { Redis } from "ioredis";

/**
 * The start-up check of the Redis store (docs/redis.md): Redis acknowledges a write once it is in
 * memory, so whether an acknowledged submit survives a restart, a host crash or memory pressure
 * is decided by three server settings. dtx reads them and refuses a server that can lose
 * acknowledged data, unless the operator accepts the risk (`store.allowUnsafeRedis`).
 */

/** What the check needs from the server: the three settings, as CONFIG GET answers them. */
export interface RedisDurabilitySettings {
  appendonly: string;
  appendfsync: string;
  "maxmemory-policy": string;
}

/** The safe value of each setting; the order of the fix lines. */
const SAFE: RedisDurabilitySettings = { appendonly: "yes", appendfsync: "always", "maxmemory-policy": "noeviction" };

/** One unsafe setting: what it loses, and the command that fixes it. */
export interface DurabilityProblem {
  setting: keyof RedisDurabilitySettings | "config";
  found: string;
  risk: string;
}

/**
 * The settings that can lose acknowledged data, each with its risk. Pure, so it is tested without
 * a server. `appendfsync everysec` counts: Redis answers before the fsync, so a host crash or power
 * loss drops up to about a second of submits the clients were told were stored.
 */
export function durabilityProblems(s: RedisDurabilitySettings): DurabilityProblem[] {
  const out: DurabilityProblem[] = [];
  if (s.appendonly !== "yes") {
    out.push({ setting: "appendonly", found: s.appendonly, risk: "without the append-only file a restart loses everything written since the last RDB snapshot" });
  }
  if (s.appendfsync !== "always") {
    out.push({ setting: "appendfsync", found: s.appendfsync, risk: "Redis answers before the write reaches the disk, so a host crash or power loss drops acknowledged submits (about the last second with everysec)" });
  }
  if (s["maxmemory-policy"] !== "noeviction") {
    out.push({ setting: "maxmemory-policy", found: s["maxmemory-policy"], risk: "at maxmemory Redis evicts keys (allkeys-*: any transaction; volatile-*: finished ones before their retention ends, so a resubmitted gid runs twice) instead of refusing the write" });
  }
  return out;
}

/** The refusal (or, with the override, the warning): each problem, then exactly how to fix it. */
export function durabilityMessage(problems: readonly DurabilityProblem[], accepted: boolean): string {
  const lines = problems.map((p) => `  - ${p.setting === "config" ? "CONFIG GET" : p.setting} ${p.setting === "config" ? "is refused" : `is "${p.found}"`}: ${p.risk}`);
  const settings = [...new Set(problems.map((p) => p.setting))];
  const head = accepted
    ? "Redis may lose transactions dtx has acknowledged (store.allowUnsafeRedis is set, so dtx starts anyway):"
    : "Redis can lose transactions dtx has acknowledged, so dtx refuses to start on it:";
  if (settings.includes("config")) {
    return [
      head,
      ...lines,
      "Make sure the server runs with appendonly yes, appendfsync always and maxmemory-policy noeviction (your provider's",
      "console, or redis.conf), or allow CONFIG GET for dtx's user (ACL: +config|get); then, if CONFIG GET stays",
      "unavailable, set store.allowUnsafeRedis: true (DTX_STORE_ALLOW_UNSAFE_REDIS=1). See docs/redis.md.",
    ].join("\n");
  }
  const fixes = (Object.keys(SAFE) as (keyof RedisDurabilitySettings)[]).filter((k) => settings.includes(k));
  return [
    head,
    ...lines,
    "Fix it on the server (takes effect at once):",
    ...fixes.map((k) => `  redis-cli CONFIG SET ${k} ${SAFE[k]}`),
    "  redis-cli CONFIG REWRITE    # keeps it over a restart; or put in redis.conf:",
    ...fixes.map((k) => `    ${k} ${SAFE[k]}`),
    ...(accepted ? [] : ["or, to accept the risk, set store.allowUnsafeRedis: true (DTX_STORE_ALLOW_UNSAFE_REDIS=1). See docs/redis.md."]),
  ].join("\n");
}

/**
 * Reads the settings with CONFIG GET (one name per call: Redis before 7 takes one). A refused
 * CONFIG (renamed, disabled, or not in the user's ACL, as on many managed services) is itself a
 * problem: dtx cannot tell whether the server is safe.
 */
export async function readDurabilityProblems(redis: Redis): Promise<DurabilityProblem[]> {
  const names = Object.keys(SAFE) as (keyof RedisDurabilitySettings)[];
  let values: string[];
  try {
    values = await Promise.all(names.map(async (name) => {
      const reply = (await redis.config("GET", name)) as unknown;
      const value = Array.isArray(reply) ? reply[1] : undefined;
      if (typeof value !== "string") throw new Error(`CONFIG GET ${name} answered no value`);
      return value;
    }));
  } catch (error) {
    return [{ setting: "config", found: "", risk: `${(error as Error).message}; dtx cannot check that Redis keeps acknowledged writes` }];
  }
  const settings = Object.fromEntries(names.map((n, i) => [n, values[i] ?? ""])) as unknown as RedisDurabilitySettings;
  return durabilityProblems(settings);
}
