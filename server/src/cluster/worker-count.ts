import type { Config } from "../config.ts";

/** Where the default worker count came from, for the start log line. */
export type WorkerCountReason = "setting" | "sqlite" | "test-control" | "cores" | "cores-less-local-store";

/**
 * How many coordinator processes to run (docs/operations.md#workers): the `workers` setting, else
 * one per core (`cores`, e.g. `os.availableParallelism()`) on a network store, less one when that
 * store's server runs on this machine (a loopback host or a Unix socket): the database then needs
 * a core of the same machine, and a worker there only splits the load it shares with it. Measured
 * on 2 cores with PostgreSQL beside the coordinator, two workers cost 40–100 % more CPU per saga
 * than one and gave 0.66–0.96 of its throughput (docs/performance.md, "Workers").
 *
 * SQLite stays in one process: its group commit and its single writer live in that process, and a
 * second process would contend for the file lock instead of sharing the batch. The test-control
 * API's clock and crash points are one process's, so it also means one.
 */
export function workerCount(config: Config, cores: number): { workers: number; reason: WorkerCountReason } {
  if (config.workers !== undefined) return { workers: config.workers, reason: "setting" };
  if (config.store.driver === "sqlite") return { workers: 1, reason: "sqlite" };
  if (config.testControl) return { workers: 1, reason: "test-control" };
  const all = Math.max(1, Math.min(64, Math.floor(cores)));
  if (!storeIsOnThisMachine(config.store.url)) return { workers: all, reason: "cores" };
  return { workers: Math.max(1, all - 1), reason: "cores-less-local-store" };
}

/**
 * Whether a network store's URL names a server on this machine: a loopback host (`localhost`,
 * 127.0.0.0/8, ::1) or a Unix socket (Postgres' `?host=/run/postgresql`, mysql2's `?socketPath=`).
 */
export function storeIsOnThisMachine(storeUrl: string): boolean {
  let url: URL;
  try {
    url = new URL(storeUrl);
  } catch {
    return false;
  }
  const socket = url.searchParams.get("host") ?? url.searchParams.get("socketPath");
  if (socket?.startsWith("/")) return true;
  const host = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return host === "localhost" || host.endsWith(".localhost") || host === "::1" || /^127(?:\.\d{1,3}){3}$/.test(host);
}
