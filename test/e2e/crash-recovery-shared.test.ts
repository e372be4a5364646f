/**
 * Crash recovery on the network stores (PostgreSQL, Redis): real coordinator processes share one
 * database and one is SIGKILLed mid-saga. What it acknowledged or started must be finished by the other coordinator on the
 * same database (for the store, no different from a restarted one), without repeating a step
 * whose success was recorded (docs/protocol.md#saga).
 *
 * Branch results are written before the call they unlock (`deferBranchResults` off): "a step whose
 * success was recorded" is then every step that answered before the kill. The deferred default
 * repeats such steps by design (docs/deviations.md D14; crash-deferred-results.test.ts, fencing.test.ts).
 *
 * As in crash-recovery.test.ts: retries and leases are 30 s, so nothing becomes due in real time;
 * recovery is driven by `cron(60_000)` through the test-control API, and every wait is on an event.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Busi } from "../busi/index.ts";
import { startBusi } from "../busi/index.ts";
import { sagaBody } from "../helpers/client.ts";
import type { ChildCoordinator } from "../helpers/coordinator.ts";
import { spawnCoordinator } from "../helpers/coordinator.ts";
import { CRASH_ENV, LONG_REQUEST_TIMEOUT, recover } from "../helpers/crash-harness.ts";
import { PgArea, RedisArea } from "../helpers/store-areas.ts";

let busi: Busi;
let dir = "";
const children = new Set<ChildCoordinator>();

beforeAll(async () => {
  busi = await startBusi();
  dir = mkdtempSync(join(tmpdir(), "dtx-crash-shared-"));
});
afterAll(async () => {
  await busi?.close();
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => busi.reset());
afterEach(async () => {
  await Promise.all([...children].map((c) => c.kill("SIGKILL")));
  children.clear();
  busi.releaseHung();
});

const pgArea = new PgArea("e2e_crash");
const redisArea = new RedisArea("e2e_crash");
const stores: { name: string; tag: string; area: PgArea | RedisArea; env: Record<string, string> }[] = [
  { name: "PostgreSQL", tag: "pg", area: pgArea, env: { DTX_STORE_DRIVER: "postgres", DTX_STORE_URL: pgArea.url, DTX_STORE_SCHEMA: pgArea.schema } },
  { name: "Redis", tag: "redis", area: redisArea, env: { DTX_STORE_DRIVER: "redis", DTX_STORE_URL: redisArea.url, DTX_STORE_PREFIX: redisArea.prefix } },
];

const count = (gid: string, name: string): number => busi.calls({ gid, name }).length;

describe.each(stores)("saga crash recovery on $name (a coordinator SIGKILLed, the database survives)", (store) => {
  beforeAll(() => store.area.open());
  afterAll(() => store.area.close());

  /** A coordinator process on the test area (the SQLite path is unused, but must not be shared). */
  async function start(): Promise<ChildCoordinator> {
    const child = await spawnCoordinator(join(dir, "unused.db"), { ...CRASH_ENV, DTX_DEFER_BRANCH_RESULTS: "0", ...store.env });
    children.add(child);
    return child;
  }

  // One case with two coordinator processes (each spawn costs seconds): everything the victim
  // had acknowledged or started is finished by the survivor, which shares its database.
  it("sagas in flight on a killed coordinator are finished by the other one, calling no recorded step again", async () => {
    const hung = Array.from({ length: 10 }, (_, i) => `${store.tag}-crash-hung-${i}`);
    const crashed = `${store.tag}-crash-after-call`;
    for (const gid of hung) busi.program({ gid, name: "TransIn" }, "HANG");
    const [victim, survivor] = await Promise.all([start(), start()]);

    // Ten acknowledged sagas whose second call hangs...
    const acks = await Promise.all(hung.map((gid) => victim.client.submit(sagaBody(gid, (n) => busi.url(n), { request_timeout: LONG_REQUEST_TIMEOUT }))));
    expect(acks.map((r) => r.status)).toEqual(hung.map(() => 200));
    await Promise.all(hung.map((gid) => busi.waitForCalls({ gid, name: "TransIn" }, 1)));
    // ...and one whose second answer arrives but is never written: the process dies first.
    await victim.client.armCrash("afterBranchCall", crashed, 2);
    await expect(victim.client.submit(sagaBody(crashed, (n) => busi.url(n), { wait_result: true }))).rejects.toThrow();
    expect(await victim.exited).toBe("SIGKILL");
    expect(busi.calls({ gid: crashed }).map((c) => c.name)).toEqual(["TransOut", "TransIn"]);
    busi.releaseHung();

    for (const gid of [...hung, crashed]) expect(await survivor.client.status(gid), gid).toBe("submitted");
    await recover(survivor.client);

    for (const gid of [...hung, crashed]) {
      expect(await survivor.client.status(gid), gid).toBe("succeed");
      expect(await survivor.client.branchStatuses(gid), gid).toEqual(["prepared", "succeed", "prepared", "succeed"]);
      // TransOut's success was recorded before TransIn was called, so it is not called again.
      expect(count(gid, "TransOut"), gid).toBe(1);
      expect(busi.calls({ gid, op: "compensate" }), gid).toEqual([]);
    }
    for (const gid of hung) expect(busi.calls({ gid, name: "TransIn" }).map((c) => c.outcome), gid).toEqual(["HANG", "SUCCESS"]);
    expect(busi.calls({ gid: crashed, name: "TransIn" }).map((c) => c.outcome)).toEqual(["SUCCESS", "SUCCESS"]);
  });
});
