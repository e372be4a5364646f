/**
 * Retention bench (bench/README.md, "Retention"): what a week of finished history costs the hot
 * path, and what one retention batch costs.
 *
 *   npx tsx bench/retention-bench.ts [--rows 1000000] [--stores postgres,sqlite] [--concurrency 64]
 *                                    [--slices 10] [--slice-seconds 2] [--warmup 2] [--batch 500]
 *                                    [--expired] [--pairs [--rounds 1] [--seconds 8]] [--skip-saga] [--skip-delete]
 *
 * 1. Saga throughput, side by side (default): two coordinators at once, one on an empty store and
 *    one on a store seeded with --rows finished sagas, loaded in turn in slices (ABBA order,
 *    bench/lib/interleaved-saga.ts), so the rest of a shared machine weighs on both alike; the
 *    result is seeded / empty over the sums of the slices, and the spread of the slice pairs.
 *    With --expired the seeded rows are all past the 7-day retention and the seeded coordinator's
 *    retention runs every second: throughput while a backlog is being deleted.
 *    With --pairs instead: for each store and round, bench/saga-bench.ts on an empty
 *    store and on one seeded with --rows finished sagas (`--seed-finished`), each a fresh
 *    coordinator, empty first in odd rounds and seeded first in even ones; the table gives
 *    seeded / empty per round and the median (target: loss under 10 %).
 * 2. One deletion batch: a fresh store seeded with --rows finished sagas all older than the 7-day
 *    retention, then deleteFinished(now - 7 days, --batch) timed 10 times through the store class
 *    itself; on Postgres also EXPLAIN (ANALYZE, BUFFERS) of the batch's statement (rolled back).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { PostgresStore } from "../server/src/store/sql/postgres-store.ts";
import { SqliteStore } from "../server/src/store/sqlite/sqlite-store.ts";
import type { Store } from "../server/src/store/store.ts";
import { PgArea } from "../test/helpers/store-areas.ts";
import { runInterleaved } from "./lib/interleaved-saga.ts";
import { seedPostgres, seedSqlite } from "./lib/seed-finished.ts";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const DAY = 24 * 3600 * 1000;
type BenchStore = "postgres" | "sqlite";

interface Options {
  rows: number;
  stores: BenchStore[];
  rounds: number;
  concurrency: number;
  seconds: number;
  warmup: number;
  batch: number;
  saga: boolean;
  delete: boolean;
  pairs: boolean;
  expired: boolean;
  slices: number;
  sliceSeconds: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { rows: 1_000_000, stores: ["postgres", "sqlite"], rounds: 1, concurrency: 64, seconds: 8, warmup: 2, batch: 500, saga: true, delete: true, pairs: false, expired: false, slices: 10, sliceSeconds: 2 };
  const num = (v: string | undefined, flag: string, min: number): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`${flag} must be a number >= ${min}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    switch (flag) {
      case "--rows": o.rows = num(argv[++i], flag, 1); break;
      case "--rounds": o.rounds = num(argv[++i], flag, 1); break;
      case "--concurrency": o.concurrency = num(argv[++i], flag, 1); break;
      case "--seconds": o.seconds = num(argv[++i], flag, 1); break;
      case "--warmup": o.warmup = num(argv[++i], flag, 0); break;
      case "--batch": o.batch = num(argv[++i], flag, 1); break;
      case "--skip-saga": o.saga = false; break;
      case "--pairs": o.pairs = true; break;
      case "--expired": o.expired = true; break;
      case "--slices": o.slices = num(argv[++i], flag, 1); break;
      case "--slice-seconds": o.sliceSeconds = num(argv[++i], flag, 0.5); break;
      case "--skip-delete": o.delete = false; break;
      case "--stores": {
        const list = (argv[++i] ?? "").split(",");
        if (list.some((s) => s !== "postgres" && s !== "sqlite")) throw new Error("--stores takes postgres and/or sqlite");
        o.stores = list as BenchStore[];
        break;
      }
      default: throw new Error(`unknown argument ${flag}`);
    }
  }
  return o;
}

interface SagaRun {
  store: BenchStore;
  seeded: boolean;
  throughput: number;
  p50: number | null;
  p99: number | null;
  errors: number;
  otherCpuPct: number | null;
  seedSeconds: number | null;
  load: number[];
}

/** One saga-bench run in a child process; its JSON result. */
async function sagaBench(o: Options, store: BenchStore, seeded: boolean): Promise<SagaRun> {
  const out = mkdtempSync(path.join(os.tmpdir(), "dtx-retention-bench-"));
  const args = ["--import", "tsx", "bench/saga-bench.ts", "--store", store, "--concurrency", String(o.concurrency),
    "--seconds", String(o.seconds), "--warmup", String(o.warmup), "--out", out, ...(seeded ? ["--seed-finished", String(o.rows)] : [])];
  const load = os.loadavg().map((n) => Number(n.toFixed(2)));
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ["ignore", "inherit", "inherit"] });
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  try {
    if (code !== 0) throw new Error(`saga-bench (${store}${seeded ? ", seeded" : ""}) exited with ${code}`);
    const file = readdirSync(out).find((f) => f.endsWith(".json") && !f.includes("latest"));
    if (!file) throw new Error("saga-bench wrote no result");
    const report = JSON.parse(readFileSync(path.join(out, file), "utf8")) as {
      config: { seedSeconds?: number | null };
      results: { throughput: number; latencyMs: { p50: number | null; p99: number | null }; errors: number; otherCpuPct: number | null }[];
    };
    const r = report.results[0];
    if (!r) throw new Error("saga-bench result has no level");
    return { store, seeded, throughput: r.throughput, p50: r.latencyMs.p50, p99: r.latencyMs.p99, errors: r.errors, otherCpuPct: r.otherCpuPct, seedSeconds: report.config.seedSeconds ?? null, load };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

const f = (n: number | null | undefined, d = 0): string => (n === null || n === undefined ? "n/a" : n.toFixed(d));

interface DeleteTiming {
  store: BenchStore;
  seedSeconds: number;
  batchesMs: number[];
  explain: string | null;
}

/** A store seeded with `rows` finished sagas, all older than 7 days; deleteFinished timed. */
async function deletionBatch(o: Options, which: BenchStore): Promise<DeleteTiming> {
  const now = Date.now();
  const spec = { count: o.rows, newest: now - 8 * DAY, spanMs: 6 * DAY, prefix: "old-" };
  const before = now - 7 * DAY;
  let store: Store;
  let cleanup: () => Promise<void>;
  let explain: string | null = null;
  const t0 = performance.now();
  if (which === "postgres") {
    const area = new PgArea("retention_bench");
    await area.open();
    await seedPostgres(area.url, area.schema, spec);
    store = new PostgresStore({ url: area.url, schema: area.schema, poolSize: 2 });
    explain = await explainDelete(area.url, area.schema, before, o.batch);
    cleanup = async () => {
      await store.close();
      await area.close();
    };
  } else {
    const dir = mkdtempSync(path.join(os.tmpdir(), "dtx-retention-bench-"));
    const file = path.join(dir, "dtx.db");
    await seedSqlite(file, spec);
    store = new SqliteStore({ path: file });
    cleanup = async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    };
  }
  const seedSeconds = (performance.now() - t0) / 1000;
  const batchesMs: number[] = [];
  try {
    for (let i = 0; i < 10; i++) {
      const t = performance.now();
      const r = await store.deleteFinished(before, o.batch);
      batchesMs.push(performance.now() - t);
      if (r.deleted !== o.batch) throw new Error(`batch ${i} deleted ${r.deleted}, expected ${o.batch}`);
    }
  } finally {
    await cleanup();
  }
  return { store: which, seedSeconds, batchesMs, explain };
}

/** EXPLAIN (ANALYZE, BUFFERS) of PostgresStore.deleteFinished's statement, in a transaction rolled back. */
async function explainDelete(url: string, schema: string, before: number, limit: number): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`SET search_path TO ${schema}`);
    await client.query("BEGIN");
    const { rows } = await client.query<{ "QUERY PLAN": string }>(`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
      WITH c AS (
        SELECT id, gid FROM trans_global WHERE status IN ('succeed', 'failed') AND update_time < $1
        ORDER BY update_time LIMIT $2 FOR UPDATE SKIP LOCKED
      ),
      t AS (DELETE FROM trans_global WHERE id = ANY (ARRAY(SELECT id FROM c)) RETURNING 1),
      b AS (DELETE FROM trans_branch_op WHERE gid = ANY (ARRAY(SELECT gid FROM c)))
      SELECT count(*) AS deleted FROM t`, [new Date(before), limit]);
    await client.query("ROLLBACK");
    return rows.map((r) => r["QUERY PLAN"]).join("\n");
  } finally {
    await client.end();
  }
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  console.log(`retention-bench: ${o.rows} finished sagas, stores ${o.stores.join(", ")}, C = ${o.concurrency}, ${o.warmup} s + ${o.seconds} s per run, ${o.rounds} round(s); load ${os.loadavg().map((n) => n.toFixed(2)).join(" ")}`);
  const runs: SagaRun[] = [];
  const interleaved: string[] = [];
  if (o.saga && !o.pairs) {
    for (const store of o.stores) {
      const loadStart = os.loadavg()[0] ?? 0;
      const r = await runInterleaved({ store, rows: o.rows, concurrency: o.concurrency, sliceSeconds: o.sliceSeconds, slices: o.slices, warmupSeconds: o.warmup, expired: o.expired });
      const sum = (xs: number[]): number => xs.reduce((n, x) => n + x, 0);
      const pairRatios = r.seeded.map((s, i) => s / (r.empty[i] ?? NaN)).sort((a, b) => a - b);
      const line = `| ${store} | ${f(sum(r.empty) / r.empty.length)} | ${f(sum(r.seeded) / r.seeded.length)} | ${(sum(r.seeded) / sum(r.empty)).toFixed(3)} | ` +
        `${f(pairRatios[Math.floor(pairRatios.length / 2)], 3)} (${f(pairRatios[0], 2)} to ${f(pairRatios[pairRatios.length - 1], 2)}) | ` +
        `${f(r.cpuMsPerSaga.empty, 2)} / ${f(r.cpuMsPerSaga.seeded, 2)} | ` +
        `${r.empty.map((x) => f(x)).join(" ")} | ${r.seeded.map((x) => f(x)).join(" ")} | ${r.errors.empty} / ${r.errors.seeded} | ${loadStart.toFixed(1)} / ${(os.loadavg()[0] ?? 0).toFixed(1)} | ${r.seedSeconds.toFixed(1)} | ${r.retentionDeleted} |`;
      console.log(line);
      interleaved.push(line);
    }
  }
  if (o.saga && o.pairs) {
    for (let round = 0; round < o.rounds; round++) {
      for (const store of o.stores) {
        // Every other round runs the seeded store first, so neither side always gets the
        // warmer (or quieter) slot.
        const order = round % 2 === 0 ? [false, true] : [true, false];
        const pair: SagaRun[] = [];
        for (const seeded of order) pair.push(await sagaBench(o, store, seeded));
        runs.push(...pair.sort((a, b) => Number(a.seeded) - Number(b.seeded)));
      }
    }
  }
  const timings: DeleteTiming[] = [];
  if (o.delete) for (const store of o.stores) timings.push(await deletionBatch(o, store));

  console.log("");
  if (interleaved.length > 0) {
    console.log(`Interleaved${o.expired ? " (seeded rows all past the 7-day retention, which runs every second on the seeded side)" : ""}: C = ${o.concurrency}, ${o.slices} slices of ${o.sliceSeconds} s per side (ABBA), after ${o.warmup} s of warm-up each`);
    console.log("| store | empty sagas/s (mean) | seeded sagas/s (mean) | seeded / empty | per-slice-pair ratio: median (min to max) | coordinator CPU ms/saga empty / seeded | empty slices | seeded slices | errors empty / seeded | load 1-min start / end | seed s | deleted by retention meanwhile |");
    console.log("|---|---:|---:|---:|---|---:|---|---|---:|---:|---:|---:|");
    for (const line of interleaved) console.log(line);
  }
  if (runs.length > 0) {
    console.log(`| store | round | empty sagas/s | seeded sagas/s | seeded / empty | p50 / p99 ms empty | p50 / p99 ms seeded | other CPU % empty / seeded | load at start empty / seeded | seed s |`);
    console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (let i = 0; i + 1 < runs.length; i += 2) {
      const e = runs[i];
      const s = runs[i + 1];
      if (!e || !s) continue;
      const round = Math.floor(i / (2 * o.stores.length)) + 1;
      console.log(`| ${e.store} | ${round} | ${f(e.throughput)} | ${f(s.throughput)} | ${(s.throughput / e.throughput).toFixed(3)} | ${f(e.p50, 2)} / ${f(e.p99, 2)} | ${f(s.p50, 2)} / ${f(s.p99, 2)} | ${f(e.otherCpuPct)} / ${f(s.otherCpuPct)} | ${e.load[0]} / ${s.load[0]} | ${f(s.seedSeconds, 1)} |`);
      if (e.errors + s.errors > 0) console.log(`  errors: empty ${e.errors}, seeded ${s.errors}`);
    }
    for (const store of o.stores) {
      const mine = runs.filter((r) => r.store === store);
      const ratios = mine.filter((r) => r.seeded).map((s, i) => s.throughput / (mine.filter((r) => !r.seeded)[i]?.throughput ?? NaN)).sort((a, b) => a - b);
      const sum = (seeded: boolean): number => mine.filter((r) => r.seeded === seeded).reduce((n, r) => n + r.throughput, 0);
      console.log(`${store}: seeded / empty median of ${ratios.length} round(s) ${f(ratios[Math.floor(ratios.length / 2)], 3)} (range ${f(ratios[0], 3)} to ${f(ratios[ratios.length - 1], 3)}); ratio of the sums ${(sum(true) / sum(false)).toFixed(3)}`);
    }
  }
  for (const t of timings) {
    const sorted = [...t.batchesMs].sort((a, b) => a - b);
    console.log(`\n${t.store}: deleteFinished(now - 7 d, ${o.batch}) on ${o.rows} finished sagas (seeded in ${t.seedSeconds.toFixed(1)} s): ` +
      `batches ${t.batchesMs.map((ms) => ms.toFixed(1)).join(", ")} ms; median ${f(sorted[Math.floor(sorted.length / 2)], 1)} ms, max ${f(sorted[sorted.length - 1], 1)} ms`);
    if (t.explain) console.log(`EXPLAIN (ANALYZE, BUFFERS) of one batch:\n${t.explain}`);
  }
  console.log(`\nload at end: ${os.loadavg().map((n) => n.toFixed(2)).join(" ")}`);
}

main().catch((error: unknown) => {
  console.error(`retention-bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(1);
});
