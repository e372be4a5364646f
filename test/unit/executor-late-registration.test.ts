/**
 * A branch registered while a cron pass is already running on its prepared TCC / XA (after the
 * pass read the branches, before it timed the trans out) is rolled back too. Found by the chaos
 * harness, seed 8, store mysql, profile smoke (gids c8-94, c8-95): the pass went prepared ->
 * aborting -> failed by the branch list it had read first, so the XA branch stayed prepared
 * (holding its row locks) and the TCC try was never cancelled.
 *
 * Real SQLite store, real HTTP invoker and busi participant; the registration is made to land
 * between the pass's read and its status write by doing it right after that read.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { AdjustableClock } from "../../server/src/core/clock.ts";
import { DEFAULT_OPTIONS } from "../../server/src/core/options.ts";
import { createProcessors } from "../../server/src/core/processors.ts";
import type { TimingConfig } from "../../server/src/core/retry.ts";
import { HttpInvoker } from "../../server/src/driver/http-invoker.ts";
import { CrashPoints } from "../../server/src/service/crash-points.ts";
import { Executor } from "../../server/src/service/executor.ts";
import type { NewBranch, NewTrans, Store } from "../../server/src/store/store.ts";
import { SqliteStore } from "../../server/src/store/sqlite/sqlite-store.ts";
import type { Busi } from "../busi/index.ts";
import { startBusi } from "../busi/index.ts";

const TIMING: TimingConfig = { retryInterval: 1_000, maxRetryInterval: 1_000, timeoutToFail: 5_000, requestTimeout: 5_000, retryJitter: 0 };
const LEASE = { leaseMs: 3_000, marginMs: 200 };

let busi: Busi;
let dir: string;
let store: SqliteStore;
let clock: AdjustableClock;
let invoker: HttpInvoker;

beforeAll(async () => {
  busi = await startBusi();
});
afterAll(async () => {
  await busi.close();
});
beforeEach(() => {
  busi.reset();
  dir = mkdtempSync(join(tmpdir(), "dtx-late-registration-"));
  store = new SqliteStore({ path: join(dir, "dtx.db") });
  clock = new AdjustableClock();
  invoker = new HttpInvoker(false);
});
afterEach(async () => {
  await invoker.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The store, except that the first findBranches of `gid` is followed at once by `register`. */
function registeringAfterFirstRead(gid: string, register: () => Promise<void>): Store {
  let done = false;
  return new Proxy(store, {
    get(target, name, receiver) {
      const value: unknown = Reflect.get(target, name, receiver);
      if (typeof value !== "function") return value;
      if (name !== "findBranches") return value.bind(target);
      return async (wanted: string) => {
        const branches = await target.findBranches(wanted);
        if (wanted === gid && !done) {
          done = true;
          await register();
        }
        return branches;
      };
    },
  });
}

describe("a branch registered while a pass times its trans out", () => {
  it.each([
    { type: "tcc" as const, ops: ["cancel", "confirm"], rollback: "cancel" },
    { type: "xa" as const, ops: ["rollback", "commit"], rollback: "rollback" },
  ])("$type: the timed-out trans rolls back the late branch too", async ({ type, ops, rollback }) => {
    const gid = `late-${type}`;
    const now = clock.now();
    const trans: NewTrans = {
      gid, transType: type, status: "prepared", protocol: "http", queryPrepared: "", customData: "",
      options: { ...DEFAULT_OPTIONS, branchHeaders: {} }, extData: "", createTime: now - 2 * TIMING.timeoutToFail, updateTime: now,
      finishTime: null, rollbackTime: null, rollbackReason: "", result: "", nextCronInterval: TIMING.retryInterval,
      nextCronTime: now + LEASE.leaseMs, owner: "A",
    };
    expect(await store.saveNewTrans(trans, [])).toBe("created");
    const branch = (op: string): NewBranch => ({
      gid, branchId: "01", op, url: busi.url(`Late-${op}`), binData: new Uint8Array(), status: "prepared", createTime: now, updateTime: now, finishTime: null,
    });
    const racing = registeringAfterFirstRead(gid, async () => {
      expect(await store.appendBranches(gid, "prepared", ops.map(branch), now)).toBe("saved");
    });
    const executor = new Executor({
      store: racing, invoker, clock, timing: TIMING, processors: createProcessors(TIMING), logger: pino({ level: "silent" }),
      crash: new CrashPoints(), random: () => 0, lease: LEASE,
    });

    const result = await executor.process({ ...trans, id: 0 });

    expect(result.trans.status).toBe("failed");
    expect(busi.calls({ gid }).map((c) => `${c.branchId} ${c.op}`)).toEqual([`01 ${rollback}`]);
    expect((await store.findBranches(gid)).map((b) => `${b.op} ${b.status}`)).toEqual(ops.map((op) => `${op} ${op === rollback ? "succeed" : "prepared"}`));
  });
});
