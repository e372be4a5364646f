import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect } from "vitest";
import type { Busi } from "../busi/index.ts";
import { useBusi } from "./busi-hooks.ts";
import type { DtxClient } from "./client.ts";
import type { ChildCoordinator } from "./coordinator.ts";
import { spawnCoordinator } from "./coordinator.ts";

/** Retries (and leases) 30 s (+ <= 10% jitter) apart, never longer: one `cron(60_000)` always reaches the next one. */
export const CRASH_ENV = { DTX_RETRY_INTERVAL: "30", DTX_MAX_RETRY_INTERVAL: "30" } as const;
/** Per-trans request timeout (s) for a participant that hangs: far beyond any test step. */
export const LONG_REQUEST_TIMEOUT = 30;

export interface CrashHarness {
  /** The shared participant (reset before each test). */
  readonly busi: Busi;
  /** Starts a coordinator child process on this test's SQLite file. */
  start(): Promise<ChildCoordinator>;
  /** Restarts on the same file once the previous process is gone; it must have died by SIGKILL. */
  restart(previous: ChildCoordinator): Promise<ChildCoordinator>;
}

/**
 * Registers the hooks of a crash-test file: one busi for the file, a fresh SQLite file per test,
 * and every child still running SIGKILLed after each test, even when it failed. `env` adds to
 * CRASH_ENV (e.g. a setting under test).
 */
export function useCrashHarness(prefix: string, env: Record<string, string> = {}): CrashHarness {
  const busi = useBusi("the crash harness");
  let dir = "";
  let dbPath = "";
  const children = new Set<ChildCoordinator>();

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
    dbPath = join(dir, "dtx.db");
  });
  afterEach(async () => {
    await Promise.all([...children].map((c) => c.kill("SIGKILL")));
    children.clear();
    rmSync(dir, { recursive: true, force: true });
  });

  const start = async (): Promise<ChildCoordinator> => {
    const child = await spawnCoordinator(dbPath, { ...CRASH_ENV, ...env });
    children.add(child);
    return child;
  };
  return {
    get busi(): Busi {
      return busi();
    },
    start,
    async restart(previous) {
      expect(await previous.exited).toBe("SIGKILL");
      children.delete(previous);
      return start();
    },
  };
}

/**
 * Drives recovery: moves the clock past every retry time (`advanceMs`, default 60 s), runs one
 * cron round and waits for its passes.
 */
export async function recover(client: DtxClient, advanceMs = 60_000): Promise<void> {
  await client.cron(advanceMs);
  await client.settle();
}

/**
 * Waits until the coordinator dies at its armed crash point while `pending` (a request) is
 * unanswered; fails fast, with the answer, if the request completes instead.
 */
export async function crashDuring(child: ChildCoordinator, pending: Promise<unknown>): Promise<void> {
  const died = child.exited.then((how) => ({ died: how }));
  const answered = pending.then(
    (r) => ({ answered: r }),
    () => died, // the connection broke: the process died
  );
  const first = await Promise.race([died, answered]);
  if ("answered" in first) throw new Error(`coordinator answered instead of crashing: ${JSON.stringify(first.answered).slice(0, 500)}`);
  expect(first.died).toBe("SIGKILL");
  await expect(pending).rejects.toThrow();
}
