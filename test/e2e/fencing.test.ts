/**
 * Fencing under real faults (docs/fencing.md): two coordinator processes share one PostgreSQL,
 * MariaDB or Redis store, both crons polling in real time with a 1 s lease. A saga submitted to
 * coordinator A has branches that take 2.5 leases:
 *
 * 1. A keeps the trans through its first call by renewing the lease (the lease must cover the
 *    call's deadline plus the margin): B never calls that branch.
 * 2. A is SIGSTOPped in the middle of its second call, for longer than its lease and the call's
 *    deadline. B takes the trans over once A's lease has run out and finishes it.
 * 3. A is SIGCONTed: its late writes are refused (it logs the lost claim), and the transaction
 *    stays as B finished it.
 *
 * Checked from the participant's own record: no two calls of one (gid, branch_id, op) were ever
 * in flight at once, and each branch was called as often as expected. Run with branch results
 * written before the call they unlock, and deferred (the default, docs/deviations.md D14), where
 * B calls TransOut again because A never wrote its result.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { Busi, BusiCall } from "../busi/index.ts";
import { startBusi } from "../busi/index.ts";
import { sagaBody } from "../helpers/client.ts";
import type { ChildCoordinator } from "../helpers/coordinator.ts";
import { spawnCoordinator } from "../helpers/coordinator.ts";
import { MysqlArea, PgArea, RedisArea } from "../helpers/store-areas.ts";

/** Lease (= retry interval) 1 s; a call may take 4 s; leases keep 0.2 s beyond a call's deadline. */
const TIMINGS = {
  DTX_RETRY_INTERVAL: "1", DTX_MAX_RETRY_INTERVAL: "1", DTX_REQUEST_TIMEOUT: "4", DTX_LEASE_MARGIN: "0.2", DTX_CRON_INTERVAL: "0.2",
} as const;
const LEASE_MS = 1_000;
/** Each branch call takes 2.5 leases. */
const BRANCH_MS = 2_500;
const LOST_CLAIM = "lost the claim on the transaction; pass stopped";

let busi: Busi;
let dir = "";
const children = new Set<ChildCoordinator>();

beforeAll(async () => {
  busi = await startBusi();
  dir = mkdtempSync(join(tmpdir(), "dtx-fencing-"));
});
afterAll(async () => {
  await busi?.close();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(async () => {
  for (const c of children) c.process.kill("SIGCONT");
  await Promise.all([...children].map((c) => c.kill("SIGKILL")));
  children.clear();
  busi.releaseHung();
});

const pg = new PgArea("e2e_fencing");
const mysql = new MysqlArea("e2e_fencing");
const redis = new RedisArea("e2e_fencing");
const stores: { name: string; tag: string; area: PgArea | MysqlArea | RedisArea; env: Record<string, string> }[] = [
  { name: "PostgreSQL", tag: "pg", area: pg, env: { DTX_STORE_DRIVER: "postgres", DTX_STORE_URL: pg.url, DTX_STORE_SCHEMA: pg.schema } },
  { name: "MariaDB", tag: "mysql", area: mysql, env: { DTX_STORE_DRIVER: "mysql", DTX_STORE_URL: mysql.url } },
  { name: "Redis", tag: "redis", area: redis, env: { DTX_STORE_DRIVER: "redis", DTX_STORE_URL: redis.url, DTX_STORE_PREFIX: redis.prefix } },
];

/** Pairs of calls of one (gid, branch_id, op) whose time in the participant overlapped. */
function overlaps(calls: readonly BusiCall[]): string[] {
  const found: string[] = [];
  for (const [i, a] of calls.entries()) {
    for (const b of calls.slice(i + 1)) {
      if (a.gid !== b.gid || a.branchId !== b.branchId || a.op !== b.op) continue;
      const aEnd = a.answeredAt ?? Number.POSITIVE_INFINITY;
      const bEnd = b.answeredAt ?? Number.POSITIVE_INFINITY;
      if (a.receivedAt < bEnd && b.receivedAt < aEnd) found.push(`${a.gid}/${a.branchId}/${a.op}: #${a.seq} and #${b.seq}`);
    }
  }
  return found;
}

const modes = [
  {
    name: "results written before the call they unlock", defer: "0",
    // TransOut's success was recorded by A before TransIn: nobody called it again. TransIn's
    // outcome died with A's claim: B called it once more, after A's call was over.
    calls: ["TransOut:SUCCESS", "TransIn:SUCCESS", "TransIn:SUCCESS"],
  },
  {
    name: "results deferred", defer: "1",
    // A wrote neither result: B, taking over from a deferring token, calls both again, in order.
    calls: ["TransOut:SUCCESS", "TransIn:SUCCESS", "TransOut:SUCCESS", "TransIn:SUCCESS"],
  },
] as const;
const cases = stores.flatMap((store) => modes.map((mode) => ({ ...store, mode })));

describe.each(cases)("fencing on $name, $mode.name: two coordinators, a branch 2.5x the lease, the owner SIGSTOPped mid-call", ({ mode, ...store }) => {
  beforeAll(() => store.area.open());
  afterAll(() => store.area.close());

  async function start(): Promise<ChildCoordinator> {
    const child = await spawnCoordinator(join(dir, `${store.tag}-unused.db`), { ...TIMINGS, ...store.env, DTX_DEFER_BRANCH_RESULTS: mode.defer });
    children.add(child);
    return child;
  }

  it("the other coordinator never calls a branch while the owner's call can still be running, and the owner's late writes are refused", async () => {
    const gid = `fencing-${store.tag}-d${mode.defer}`;
    busi.setLatency({ gid }, BRANCH_MS);
    const [a, b] = await Promise.all([start(), start()]);

    expect((await a.client.submit(sagaBody(gid, (n) => busi.url(n)))).status).toBe(200);
    // 1. TransOut takes 2.5 leases; A holds the trans throughout (B polls every 0.2 s).
    const [out] = await busi.waitForCalls({ gid, name: "TransOut" }, 1, 10_000);
    // 2. A's call of TransIn starts: A is frozen in the middle of it.
    await busi.waitForCalls({ gid, name: "TransIn" }, 1, 10_000);
    a.process.kill("SIGSTOP");
    expect(out?.answeredAt).toBeDefined();

    // B takes over once A's lease (the call's deadline + margin) has run out, and finishes.
    await vi.waitFor(async () => expect(await b.client.status(gid)).toBe("succeed"), { timeout: 20_000, interval: 100 });
    const finished = await b.client.query(gid);

    // 3. A resumes: its pending write (or lease renewal) is refused, and it says so.
    a.process.kill("SIGCONT");
    await vi.waitFor(() => expect(a.logs.some((l) => l["msg"] === LOST_CLAIM && l["gid"] === gid)).toBe(true), { timeout: 10_000, interval: 50 });
    await a.client.settle();

    const calls = busi.calls({ gid });
    expect(overlaps(calls)).toEqual([]);
    expect(calls.every((c) => c.answeredAt !== undefined)).toBe(true);
    expect(calls.map((c) => `${c.name}:${c.outcome}`)).toEqual(mode.calls);
    const [first, second] = busi.calls({ gid, name: "TransIn" });
    expect(second?.receivedAt ?? 0).toBeGreaterThanOrEqual((first?.receivedAt ?? 0) + 4_000);
    expect(busi.calls({ gid, op: "compensate" })).toEqual([]);
    // The trans ended once, as B wrote it: A's late writes changed nothing.
    expect(await a.client.query(gid)).toEqual(finished);
    expect(finished.transaction).toMatchObject({ status: "succeed" });
    expect(finished.branches.map((x) => x.status)).toEqual(["prepared", "succeed", "prepared", "succeed"]);
    // B never lost a claim; A lost exactly this one.
    expect(b.logs.filter((l) => l["msg"] === LOST_CLAIM)).toEqual([]);
    expect(a.logs.filter((l) => l["msg"] === LOST_CLAIM).map((l) => l["gid"])).toEqual([gid]);
    expect(LEASE_MS).toBeLessThan(BRANCH_MS);
  }, 90_000);
});
