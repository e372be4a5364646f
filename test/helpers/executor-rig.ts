/**
 * The pieces the executor-level unit tests share (test/unit/executor-*.test.ts,
 * recovery-loop.test.ts): a fresh SQLite store in a temp directory, the coordinator's
 * AdjustableClock, the real HTTP invoker, and builders for the rows those tests start from.
 * Each test opens its own and closes it, so no test sees another's rows.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "pino";
import { afterEach, beforeEach } from "vitest";
import { pino } from "pino";
import { AdjustableClock } from "../../server/src/core/clock.ts";
import { DEFAULT_OPTIONS } from "../../server/src/core/options.ts";
import { createProcessors } from "../../server/src/core/processors.ts";
import type { TimingConfig } from "../../server/src/core/retry.ts";
import type { GlobalStatus, TransType } from "../../server/src/core/types.ts";
import { HttpInvoker } from "../../server/src/driver/http-invoker.ts";
import type { LeaseConfig } from "../../server/src/service/claim.ts";
import { CrashPoints } from "../../server/src/service/crash-points.ts";
import { Executor } from "../../server/src/service/executor.ts";
import type { NewBranch, NewTrans, Store } from "../../server/src/store/store.ts";
import { SqliteStore } from "../../server/src/store/sqlite/sqlite-store.ts";
import type { Busi } from "../busi/index.ts";
import { useBusi } from "./busi-hooks.ts";

export interface ExecutorRig {
  readonly store: SqliteStore;
  readonly clock: AdjustableClock;
  readonly invoker: HttpInvoker;
  /** An executor over `store` (or the store given, e.g. a proxy of it), with `random` fixed at 0. */
  executor(options: { timing: TimingConfig; lease: LeaseConfig; logger?: Logger; store?: Store }): Executor;
  /** Closes the invoker and the store and removes the directory. */
  close(): Promise<void>;
}

export function openExecutorRig(prefix: string, clock = new AdjustableClock()): ExecutorRig {
  const dir = mkdtempSync(join(tmpdir(), `dtx-${prefix}-`));
  const store = new SqliteStore({ path: join(dir, "dtx.db") });
  const invoker = new HttpInvoker(false);
  return {
    store,
    clock,
    invoker,
    executor: ({ timing, lease, logger, store: over }) => new Executor({
      store: over ?? store, invoker, clock, timing, processors: createProcessors(timing), logger: logger ?? pino({ level: "silent" }),
      crash: new CrashPoints(), random: () => 0, lease,
    }),
    async close() {
      await invoker.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A trans row as a test starts it: no options of its own, created `now` unless told. */
export function newTransRow(gid: string, transType: TransType, status: GlobalStatus, now: number, fields: Partial<NewTrans> = {}): NewTrans {
  return {
    gid, transType, status, protocol: "http", queryPrepared: "", customData: "",
    options: { ...DEFAULT_OPTIONS, branchHeaders: {} }, extData: "", createTime: now, updateTime: now, finishTime: null,
    rollbackTime: null, rollbackReason: "", result: "", nextCronInterval: 0, nextCronTime: now, owner: "",
    ...fields,
  };
}

/** A prepared branch row calling `url`. */
export function newBranchRow(gid: string, branchId: string, op: string, url: string, now: number): NewBranch {
  return { gid, branchId, op, url, binData: new Uint8Array(), status: "prepared", createTime: now, updateTime: now, finishTime: null };
}

/**
 * Registers the hooks of an executor-level test file: one busi participant for the file (reset
 * before each test, hung calls released after it) and a fresh rig per test, closed after the
 * test's own afterEach hooks have run (vitest runs after-hooks in reverse order).
 */
export function useExecutorRig(prefix: string, clock?: AdjustableClock): { readonly busi: Busi; readonly rig: ExecutorRig } {
  const busi = useBusi("useExecutorRig");
  let rig: ExecutorRig | undefined;
  beforeEach(() => {
    rig = openExecutorRig(prefix, clock);
  });
  afterEach(async () => {
    await rig?.close();
  });
  return {
    get busi(): Busi {
      return busi();
    },
    get rig(): ExecutorRig {
      if (!rig) throw new Error("the rig of useExecutorRig is used before beforeEach ran");
      return rig;
    },
  };
}
