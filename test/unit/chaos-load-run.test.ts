/**
 * A short real run of the chaos load generator: an in-process coordinator (SQLite, the cron every
 * 0.5 s), a real chaos participant process (test/chaos/participant/main.ts) on this test's own
 * PostgreSQL and MariaDB databases and Redis key prefix, and runLoad over HTTP and gRPC.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClientEvent, Intent, Kind, RunPaths } from "../chaos/contracts.ts";
import { runPaths } from "../chaos/contracts.ts";
import { STOP_GRACE_MS, runLoad } from "../chaos/load/generator.ts";
import type { LoadOptions, LoadResult } from "../chaos/load/generator.ts";
import { planTransaction, DEFAULT_MIX, RATES } from "../chaos/load/plan.ts";
import { createScratchDbs } from "../chaos/participant/scratch-dbs.ts";
import type { ScratchDbs } from "../chaos/participant/scratch-dbs.ts";
import { spawnParticipant } from "../chaos/participant/spawn.ts";
import { startCoordinator } from "../helpers/coordinator.ts";
import type { TestCoordinator } from "../helpers/coordinator.ts";
import { testServiceUrls } from "../helpers/services.ts";

const SEED = 7;
const COUNT = 30;
const EVEN_MIX: Record<Kind, number> = { saga: 1, "saga-dag": 1, tcc: 1, msg: 1, xa: 1, workflow: 1 };
const RUN_RATES = { ...RATES, duplicate: 0.15, conflict: 0.5, senderVanishes: 0.5 };
const TERMINAL = new Set(["succeed", "failed"]);

const runDir = mkdtempSync(join(tmpdir(), "dtx-chaos-load-"));
const paths = runPaths(runDir);

function jsonLines<T>(file: string): T[] {
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as T);
}

let scratch: ScratchDbs;
let coordinator: TestCoordinator;
let participant: { base: string; child: ChildProcess };
let result: LoadResult;

/** The options every run of this file shares: this file's coordinator, participant and databases, C = 4. */
function world(seed: number, runFiles: RunPaths): Omit<LoadOptions, "count"> {
  return {
    seed,
    concurrency: 4,
    coordinators: [{ httpUrl: coordinator.url, grpcTarget: `127.0.0.1:${coordinator.grpcPort}` }],
    participants: [participant.base],
    dbs: scratch.dbs,
    paths: runFiles,
  };
}

beforeAll(async () => {
  scratch = await createScratchDbs(testServiceUrls(), `chaos_load_${process.pid}_${Date.now().toString(36)}`, SEED);
  coordinator = await startCoordinator({ cronInterval: 0.5 });
  participant = await spawnParticipant({ port: 0, index: 0, seed: SEED, calls: paths.calls, dbs: scratch.dbs, redisPrefix: scratch.redisPrefix, faultRates: {}, lateMs: 1_500, stderr: "ignore" });
  result = await runLoad({
    ...world(SEED, paths),
    count: COUNT,
    mix: EVEN_MIX,
    rates: RUN_RATES,
    maxRunMs: 15_000,
  });
}, 40_000);

afterAll(async () => {
  await result?.stop();
  if (participant && participant.child.exitCode === null && participant.child.signalCode === null) {
    // Gone before its databases are dropped, so it cannot write a key after the cleanup.
    const exited = new Promise((resolve) => participant.child.once("exit", resolve));
    participant.child.kill("SIGKILL");
    await exited;
  }
  await coordinator?.stop();
  await scratch?.drop();
  rmSync(runDir, { recursive: true, force: true });
}, 30_000);

describe("chaos load: a short real run (C = 4, every kind)", () => {
  it("writes the seeded intents, one per transaction, before their requests", () => {
    const intents = jsonLines<Intent>(paths.intents);
    const ctx = { seed: SEED, mix: { ...DEFAULT_MIX, ...EVEN_MIX }, coordinators: 1, participants: 1, rates: RUN_RATES };
    const planned = Array.from({ length: COUNT }, (_, n) => planTransaction(ctx, n).intent);
    expect([...intents].sort((a, b) => a.gid.localeCompare(b.gid))).toEqual([...planned].sort((a, b) => a.gid.localeCompare(b.gid)));
    expect(new Set(intents.map((i) => i.kind))).toEqual(new Set(Object.keys(EVEN_MIX)));
    expect(new Set(intents.map((i) => i.via))).toEqual(new Set(["http", "grpc"]));
    expect(result.invoked).toBe(COUNT);
  });

  it("records every request as an invoke and exactly one completion", () => {
    const history = jsonLines<ClientEvent>(paths.history);
    const intents = new Set(jsonLines<Intent>(paths.intents).map((i) => i.gid));
    const invokes = new Map<number, ClientEvent>();
    const completions = new Map<number, ClientEvent[]>();
    for (const e of history) {
      expect(intents.has(e.gid), e.gid).toBe(true);
      if (e.type === "invoke") {
        expect(invokes.has(e.id)).toBe(false);
        invokes.set(e.id, e);
      } else {
        const invoke = invokes.get(e.id);
        expect(invoke, `completion ${e.id} before its invoke`).toBeDefined();
        expect(invoke!.gid).toBe(e.gid);
        expect(e.at).toBeGreaterThanOrEqual(invoke!.at);
        completions.set(e.id, [...(completions.get(e.id) ?? []), e]);
      }
    }
    for (const id of invokes.keys()) expect(completions.get(id)?.length, `request ${id}`).toBe(1);
    const types = new Set(history.map((e) => e.type));
    expect(types.has("ok")).toBe(true);
    // The conflicting resubmits of finished sagas are refused: definite fails.
    expect(types.has("fail")).toBe(true);
    // A deliberate duplicate: two first sends of the final submit (and of a saga's conflicting one).
    const duplicated = jsonLines<Intent>(paths.intents).filter((i) => i.duplicate && !i.conflict);
    expect(duplicated.length).toBeGreaterThan(0);
    for (const { gid } of duplicated) {
      const firstSubmits = history.filter((e) => e.type === "invoke" && e.gid === gid && e.op === "submit" && e.attempt === 1);
      expect(firstSubmits.length, gid).toBe(2);
    }
  });

  it("ends with every acknowledged (or otherwise confirmed stored) gid terminal", async () => {
    const history = jsonLines<ClientEvent>(paths.history);
    const invokes = new Map(history.flatMap((e) => (e.type === "invoke" ? [[e.id, e] as const] : [])));
    const okOf = (wanted: (op: string) => boolean): Set<string> =>
      new Set(history.filter((e) => e.type === "ok" && wanted(invokes.get(e.id)?.op ?? "")).map((e) => e.gid));
    expect(okOf((op) => op === "submit").size).toBe(result.acknowledged);
    const acknowledged = okOf((op) => op !== "query");
    expect(acknowledged.size).toBe(result.stored);
    expect(result.acknowledged).toBeGreaterThan(COUNT / 2);
    const deadline = Date.now() + 15_000;
    let open: string[] = [...acknowledged];
    while (open.length > 0 && Date.now() < deadline) {
      const statuses = await Promise.all(open.map(async (gid) => ({ gid, status: await coordinator.client.status(gid) })));
      open = statuses.filter((s) => !TERMINAL.has(s.status ?? "")).map((s) => s.gid);
      if (open.length > 0) await new Promise((r) => setTimeout(r, 250));
    }
    expect(open).toEqual([]);
  }, 20_000);
});

describe("chaos load: stopping early", () => {
  it("resolves soon after the signal, starts nothing after it, and leaves no request recorded twice", async () => {
    const stopPaths = runPaths(join(runDir, "stopped"));
    const controller = new AbortController();
    const running = runLoad({ ...world(SEED + 1, stopPaths), count: 10_000, signal: controller.signal });
    const deadline = Date.now() + 10_000;
    while (jsonLines<Intent>(stopPaths.intents).length < 8 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const startedBeforeStop = jsonLines<Intent>(stopPaths.intents).length;
    controller.abort(new Error("test over"));
    const stoppedAt = Date.now();
    const stopped = await running;
    expect(Date.now() - stoppedAt).toBeLessThan(STOP_GRACE_MS + 1_000);
    await stopped.stop();
    // At most the transactions that workers were already picking up when the signal fired.
    expect(jsonLines<Intent>(stopPaths.intents).length).toBeLessThanOrEqual(startedBeforeStop + 4);
    const history = jsonLines<ClientEvent>(stopPaths.history);
    const completed = new Map<number, number>();
    for (const e of history) if (e.type !== "invoke") completed.set(e.id, (completed.get(e.id) ?? 0) + 1);
    expect([...completed.values()].every((n) => n === 1)).toBe(true);
    expect(history.filter((e) => e.type === "invoke" && !completed.has(e.id)).length).toBeLessThanOrEqual(4);
  }, 20_000);
});

describe("chaos load: offered rate", () => {
  it("starts transaction n no earlier than n / ratePerSecond after the start", async () => {
    const ratePaths = runPaths(join(runDir, "rate"));
    const startedAt = Date.now();
    const r = await runLoad({ ...world(SEED + 2, ratePaths), count: 6, ratePerSecond: 20, mix: { workflow: 0 } });
    await r.stop();
    const firstInvoke = new Map<string, number>();
    for (const e of jsonLines<ClientEvent>(ratePaths.history)) if (e.type === "invoke" && !firstInvoke.has(e.gid)) firstInvoke.set(e.gid, e.at);
    expect(firstInvoke.size).toBe(6);
    for (let n = 0; n < 6; n++) expect(firstInvoke.get(`c${SEED + 2}-${n}`)! - startedAt).toBeGreaterThanOrEqual(n * 50);
  });
});

