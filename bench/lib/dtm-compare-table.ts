/**
 * The summary of bench/dtm-compare.sh: reads the saga-bench JSON of every run (dtm with
 * UpdateBranchSync 0 and 1, dtx; several passes), prints dtx / dtm per store and concurrency for
 * each pass with their spread, and writes the combined JSON.
 *
 *   npx tsx bench/lib/dtm-compare-table.ts OUT.json system:store:pass:file ...
 *
 * env: DTM_VERSION, DTM_BUILD_SECONDS, GO_VERSION, LOAD_BEFORE, LOAD_AFTER (set by the script).
 */
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { HEAP_FLAGS } from "../../server/src/cli/heap-flags.ts";

interface Level {
  concurrency: number;
  throughput: number;
  latencyMs: { p50: number | null; p99: number | null };
  coordinator: { cpuMsPerSaga?: number | null; processes?: number | null; cpuPct: number | null };
  otherCpuPct?: number | null;
  stealCpuPct?: number | null;
  errors: number;
}
interface Report {
  command: string;
  machine: Record<string, unknown>;
  config?: { warmupSeconds?: number; startWarmupSeconds?: number; measureSeconds?: number };
  results: Level[];
}
interface Run {
  system: string;
  store: string;
  pass: number;
  file: string;
  report: Report;
}

const [out, ...specs] = process.argv.slice(2);
if (!out || specs.length === 0) {
  console.error("usage: dtm-compare-table.ts OUT.json system:store:pass:file ...");
  process.exit(2);
}
const runs: Run[] = specs.map((spec) => {
  const [system = "", store = "", pass = "0", ...rest] = spec.split(":");
  const file = rest.join(":");
  return { system, store, pass: Number(pass), file: path.relative(process.cwd(), file), report: JSON.parse(readFileSync(file, "utf8")) as Report };
});

const fixed = (n: number | null | undefined, digits = 0): string => (n === null || n === undefined || Number.isNaN(n) ? "n/a" : n.toFixed(digits));
const level = (system: string, store: string, pass: number, c: number): Level | undefined =>
  runs.find((r) => r.system === system && r.store === store && r.pass === pass)?.report.results.find((l) => l.concurrency === c);
const spread = (xs: number[]): string => (xs.length === 0 ? "n/a" : `${fixed(Math.min(...xs), 2)}-${fixed(Math.max(...xs), 2)} (${xs.map((x) => fixed(x, 2)).join(", ")})`);

const stores = [...new Set(runs.map((r) => r.store))];
const levels = [...new Set(runs.flatMap((r) => r.report.results.map((l) => l.concurrency)))].sort((a, b) => a - b);
const passes = [...new Set(runs.map((r) => r.pass))].sort((a, b) => a - b);
const otherMax = Math.max(0, ...runs.flatMap((r) => r.report.results.map((l) => l.otherCpuPct ?? 0)));
const stealMax = Math.max(0, ...runs.flatMap((r) => r.report.results.map((l) => l.stealCpuPct ?? 0)));
const dtxProcesses = runs.find((r) => r.system === "dtx")?.report.results[0]?.coordinator.processes ?? null;
const config = runs[0]?.report.config;
const redisBackgroundWrites = Number(process.env["REDIS_BG_WRITES"] ?? 0);
const redisKeysBefore = Number(process.env["REDIS_KEYS_BEFORE"] ?? 0);
/**
 * Keys Redis may hold before a run for its background saves to be negligible: each save forks and
 * writes the whole dataset; with 700,000 keys left by earlier runs one took most of a core.
 */
const REDIS_KEYS_QUIET = 50_000;
const warmup = `warm-up ${fixed(config?.startWarmupSeconds ?? 0)} s before the first level and ${fixed(config?.warmupSeconds)} s before each, ${fixed(config?.measureSeconds)} s measured per level`;
const machine = `${os.cpus().length} x ${os.cpus()[0]?.model ?? "?"}; load average before ${process.env["LOAD_BEFORE"] ?? "?"}, after ${process.env["LOAD_AFTER"] ?? "?"}; other processes used up to ${fixed(otherMax)}% of a core during the measured phases (the hypervisor's steal up to ${fixed(stealMax, 1)}%); dtx ran as ${dtxProcesses ?? "?"} process(es)${redisBackgroundWrites > 0 ? `; Redis (${redisKeysBefore} keys before) saved or rewrote its files ${redisBackgroundWrites} time(s)` : ""}`;

/** `system` (a dtx variant) / `against` at (store, C), one ratio per pass that has both. */
function ratios(system: string, against: string, store: string, c: number): number[] {
  return passes.flatMap((p) => {
    const x = level(system, store, p, c);
    const d = level(against, store, p, c);
    return x && d && d.throughput > 0 ? [x.throughput / d.throughput] : [];
  });
}

// dtx runs as it ships (`dtx`, deferBranchResults on: docs/deviations.md D14, dtm's UpdateBranchSync
// 0 counterpart) and, when measured, with it off (`dtx-sync`); results of runs made before the
// default changed name the deferred variant `dtx-deferred`.
const dtxVariants = ["dtx", "dtx-sync", "dtx-deferred"].filter((v) => runs.some((r) => r.system === v));
const lines = [
  `machine: ${machine}`,
  `runs: ${warmup}`,
  "",
  "| store | C | dtx variant | ÷ dtm default (UpdateBranchSync 0), per pass | ÷ dtm UpdateBranchSync 1, per pass | sagas/s dtx / dtm 0 / dtm 1 (pass 1) | p50 ms dtx / dtm 0 / dtm 1 (pass 1) | CPU ms per saga dtx / dtm 0 / dtm 1 (pass 1) |",
  "|---|---:|---|---|---|---|---|---|",
];
const rows = [];
for (const store of stores) {
  const redis = store.startsWith("redis");
  for (const c of levels) {
    for (const variant of dtxVariants) {
      const vsDefault = ratios(variant, "dtm-async", store, c);
      const vsSync = redis ? vsDefault : ratios(variant, "dtm-sync", store, c);
      const first = [variant, "dtm-async", redis ? "dtm-async" : "dtm-sync"].map((system) => level(system, store, passes[0] ?? 1, c));
      rows.push({ store, concurrency: c, dtx: variant, ratioVsDefault: vsDefault, ratioVsSync: vsSync });
      const name = variant === "dtx" ? "as shipped" : variant === "dtx-sync" ? "deferBranchResults: false" : "deferBranchResults";
      lines.push(`| ${store} | ${c} | ${name} | ${spread(vsDefault)} | ${redis ? "same: dtm's Redis store always writes at once" : spread(vsSync)} | ${first.map((l) => fixed(l?.throughput)).join(" / ")} | ${first.map((l) => fixed(l?.latencyMs.p50, 2)).join(" / ")} | ${first.map((l) => fixed(l?.coordinator.cpuMsPerSaga, 3)).join(" / ")} |`);
    }
  }
}
const table = lines.join("\n");
writeFileSync(out, `${JSON.stringify({
  benchmark: "dtm-compare",
  timestamp: new Date().toISOString(),
  dtm: { version: process.env["DTM_VERSION"], buildSeconds: process.env["DTM_BUILD_SECONDS"], go: process.env["GO_VERSION"], config: "LogLevel warn; dtm-async = UpdateBranchSync 0 (dtm's default), dtm-sync = UpdateBranchSync 1 (SQL stores only)" },
  dtx: { runtime: "tsc-compiled, plain node, workers = its default", nodeFlags: HEAP_FLAGS.join(" "), processes: dtxProcesses },
  warmup,
  machine: { ...runs[0]?.report.machine, loadBefore: process.env["LOAD_BEFORE"], loadAfter: process.env["LOAD_AFTER"], otherCpuPctMax: otherMax, stealCpuPctMax: stealMax, redisBackgroundWrites, redisKeysBefore },
  runs: runs.map((r) => ({ system: r.system, store: r.store, pass: r.pass, file: r.file, command: r.report.command })),
  rows,
  table,
}, null, 2)}\n`);
console.log(`\n${table}\n`);
if (redisBackgroundWrites > 0 && redisKeysBefore > REDIS_KEYS_QUIET) {
  console.log(`WARNING: Redis held ${redisKeysBefore} keys and saved or rewrote its files in the background ${redisBackgroundWrites} time(s) during the run (each a fork that writes the whole dataset): the Redis figures are disturbed; remove the old keys and re-run.`);
}
if (otherMax > 25) console.log(`WARNING: the machine was busy (other processes used up to ${fixed(otherMax)}% of a core): these ratios need a re-run on a quiet machine.`);
console.log(`combined: ${path.relative(process.cwd(), out)}`);
