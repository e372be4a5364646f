/**
 * Two coordinators side by side, one on an empty store and one on a store seeded with finished
 * transactions, loaded in turn: short slices of the same closed-loop saga load (saga-bench's
 * workload: two-step sagas with wait_result against a no-op participant) alternate between them,
 * so a change in what the rest of the machine does hits both sides alike. Used by
 * bench/retention-bench.ts, where the machine is shared and whole runs minutes apart disagree.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { request } from "undici";
import { openBenchStore } from "./bench-store.ts";
import type { BenchStore } from "./bench-store.ts";
import { readCpuTimes } from "./proc-stats.ts";
import { seedPostgres, seedSqlite } from "./seed-finished.ts";
import { load, startCoordinator, startParticipant, stop } from "./slices.ts";
import type { Proc } from "./slices.ts";

const HOUR = 3600 * 1000;
/** The coordinator from source, as the tests run it. */
const TSX_MAIN = ["--import", "tsx", "server/src/main.ts"];

export interface InterleavedOptions {
  store: "sqlite" | "postgres";
  rows: number;
  concurrency: number;
  /** Seconds per slice. */
  sliceSeconds: number;
  /** Slices per side. */
  slices: number;
  warmupSeconds: number;
  /**
   * Seed rows 8 to 14 days old (past the 7-day retention) and run the seeded coordinator's
   * retention every second: the slices then measure saga throughput while retention deletes.
   */
  expired: boolean;
}

export interface InterleavedResult {
  /** Sagas per second of each slice, in order, per side. */
  empty: number[];
  seeded: number[];
  /** The coordinator process's CPU ms per saga over all slices of a side (SQLite's work included). */
  cpuMsPerSaga: { empty: number; seeded: number };
  errors: { empty: number; seeded: number };
  seedSeconds: number;
  /** Transactions the seeded coordinator's retention deleted by the end (dtx_retention_removed_total). */
  retentionDeleted: number;
}

/** utime + stime of a process, in ms (0 if it is gone). */
function cpuMs(pid: number | undefined): number {
  const t = pid === undefined ? undefined : readCpuTimes(pid);
  return t ? (t.user + t.system) * 1000 : 0;
}

async function removedByRetention(origin: string): Promise<number> {
  const res = await request(`${origin}/api/metrics`);
  const text = await res.body.text();
  const line = text.split("\n").find((l) => l.startsWith('dtx_retention_removed_total{kind="trans"}'));
  return Number(line?.split(" ")[1] ?? 0);
}

export async function runInterleaved(o: InterleavedOptions): Promise<InterleavedResult> {
  const runId = `${process.pid.toString(36)}${Date.now().toString(36)}`;
  const tmp = mkdtempSync(path.join(os.tmpdir(), "dtx-retention-ab-"));
  const stores: BenchStore[] = [];
  const procs: Proc[] = [];
  try {
    const empty = await openBenchStore(o.store, undefined, `${runId}e`);
    stores.push(empty);
    const seeded = await openBenchStore(o.store, undefined, `${runId}s`);
    stores.push(seeded);
    const emptyPath = path.join(tmp, "empty.db");
    const seededPath = path.join(tmp, "seeded.db");
    const spec = o.expired
      ? { count: o.rows, newest: Date.now() - 8 * 24 * HOUR, spanMs: 6 * 24 * HOUR, prefix: `seed-${runId}-` }
      : { count: o.rows, newest: Date.now() - HOUR, spanMs: 6 * 24 * HOUR - HOUR, prefix: `seed-${runId}-` };
    const t0 = Date.now();
    if (o.store === "sqlite") await seedSqlite(seededPath, spec);
    else await seedPostgres(seeded.env["DTX_STORE_URL"] ?? "", seeded.env["DTX_STORE_SCHEMA"] ?? "public", spec);
    const seedSeconds = (Date.now() - t0) / 1000;

    const participant = await startParticipant();
    procs.push(participant.proc);
    const busi = participant.busi;
    const a = await startCoordinator("empty", TSX_MAIN, { DTX_STORE_PATH: emptyPath, ...empty.env });
    procs.push(a.proc);
    const b = await startCoordinator("seeded", TSX_MAIN, { DTX_STORE_PATH: seededPath, ...seeded.env, ...(o.expired ? { DTX_RETENTION_INTERVAL: "1" } : {}) });
    procs.push(b.proc);

    await load(`${a.origin}/api/dtmsvr`, busi, o.concurrency, o.warmupSeconds, `warm-e-${runId}`);
    await load(`${b.origin}/api/dtmsvr`, busi, o.concurrency, o.warmupSeconds, `warm-s-${runId}`);
    const result: InterleavedResult = {
      empty: [], seeded: [], errors: { empty: 0, seeded: 0 }, seedSeconds, retentionDeleted: 0,
      cpuMsPerSaga: { empty: 0, seeded: 0 },
    };
    const pids = { empty: a.proc.child.pid, seeded: b.proc.child.pid };
    const cpu = { empty: { coordinator: 0, sagas: 0 }, seeded: { coordinator: 0, sagas: 0 } };
    for (let i = 0; i < o.slices; i++) {
      // ABBA: each side goes first in every other pair.
      const order: ["empty" | "seeded", string][] = i % 2 === 0 ? [["empty", a.origin], ["seeded", b.origin]] : [["seeded", b.origin], ["empty", a.origin]];
      for (const [side, origin] of order) {
        const c0 = cpuMs(pids[side]);
        const r = await load(`${origin}/api/dtmsvr`, busi, o.concurrency, o.sliceSeconds, `${side}-${runId}-${i}`);
        cpu[side].coordinator += cpuMs(pids[side]) - c0;
        cpu[side].sagas += r.done;
        result[side].push(r.done / o.sliceSeconds);
        result.errors[side] += r.errors;
      }
    }
    result.retentionDeleted = await removedByRetention(b.origin);
    for (const side of ["empty", "seeded"] as const) {
      const n = Math.max(1, cpu[side].sagas);
      result.cpuMsPerSaga[side] = cpu[side].coordinator / n;
    }
    return result;
  } finally {
    await Promise.all(procs.map(stop));
    for (const s of stores) await s.drop();
    rmSync(tmp, { recursive: true, force: true });
  }
}
