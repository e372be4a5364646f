/**
 * dtx and dtm loaded in turn, in short slices, with every coordinator running the whole time: the
 * finer-grained form of bench/dtm-compare.sh (which runs each system alone for ~50 s, in passes).
 * This VM's speed wanders by up to 2× within minutes, for every process alike (the participant's
 * CPU per call moves with it), so two whole runs minutes apart compare two machines; slices a few
 * seconds apart compare the coordinators. See bench/README.md, "dtm side by side, interleaved".
 *
 *   npx tsx bench/dtm-interleave.ts --store postgres|mysql|redis [--concurrency 1,20,64] [--rounds 4]
 *        [--slice 6] [--slice-warmup 2] [--start-warmup 10] [--level-warmup 5]
 *        [--dtx NAME=defer|sync[/WORKERS] ...] [--node-flags NAME=FLAGS ...] [--coordinator-node NAME=PATH ...]
 *        [--target NAME=API_URL@PID ...] [--out DIR]
 *
 * --dtx starts a dtx as shipped (tsc-compiled, plain node with npm start's heap flags, `workers` at
 * its default) on a fresh schema / database / key prefix of the test services, with
 * deferBranchResults on (defer) or off (sync), and `workers` at WORKERS if given (`dtx-2w=defer/2`:
 * two processes, whatever the default; docs/operations.md#workers); default: dtx=defer.
 * --node-flags gives the dtx system NAME these node flags (space-separated) instead of npm start's,
 * to A/B the heap settings. --coordinator-node runs the dtx system NAME on another node binary
 * (bench/lib/fetch-node.sh fetches a release; the participant and the load stay on this one), to
 * A/B Node releases. --target names a coordinator that is already running (dtm, started by
 * dtm-compare.sh --interleave): its dtm API base and pid.
 *
 * Per concurrency C: every system gets `--level-warmup` s of unmeasured load at C (plus
 * `--start-warmup` before the first level), then `--rounds` rounds; a round gives each system one
 * slice (`--slice-warmup` s unmeasured, then `--slice` s measured), in the order of the list in
 * even rounds and reversed in odd ones. A slice records sagas/s, p50, and the system's CPU ms per
 * saga (its process tree: a dtx primary and its workers). Each system keeps one pool of C
 * connections from its level warm-up to its last slice at that level, as one client would (with
 * new connections per slice, node:cluster would hand a C = 1 slice to a worker the warm-up never
 * loaded). The ratio of two systems is taken per round (their slices are seconds apart); the
 * table shows the median over rounds and the range.
 * Writes bench/results/dtm-interleave-<store>-<stamp>.json.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { HEAP_FLAGS } from "../server/src/cli/heap-flags.ts";
import { buildServer } from "./lib/build-server.ts";
import { nodeVersionOf } from "./lib/node-binary.ts";
import { openBenchStore } from "./lib/bench-store.ts";
import type { BenchStore } from "./lib/bench-store.ts";
import { processTree, readMachineCpu, readTreeCpuTimes } from "./lib/proc-stats.ts";
import type { Pool } from "undici";
import { load, loadPool, REPO_ROOT, startCoordinator, startParticipant, stop, waitFor200 } from "./lib/slices.ts";
import type { Proc } from "./lib/slices.ts";
import { median } from "./lib/util.ts";

type StoreName = "postgres" | "mysql" | "redis";

interface Options {
  store: StoreName;
  concurrency: number[];
  rounds: number;
  sliceSeconds: number;
  sliceWarmupSeconds: number;
  startWarmupSeconds: number;
  levelWarmupSeconds: number;
  dtx: { name: string; defer: boolean; workers?: number }[];
  /** Node flags per dtx system, instead of npm start's (--node-flags NAME=FLAGS). */
  nodeFlags: Record<string, string[]>;
  /** Node binary per dtx system, instead of the one running this script (--coordinator-node NAME=PATH). */
  coordinatorNode: Record<string, string>;
  targets: { name: string; api: string; pid: number }[];
  out: string;
}

/** A coordinator under test: where its dtm API is and which process tree to read CPU from. */
interface System {
  name: string;
  kind: "dtx" | "external";
  api: string;
  pid: number;
}

interface Slice {
  round: number;
  /** Sagas completed in the measured part, and the system's CPU ms meanwhile (null: not readable). */
  sagas: number;
  cpuMs: number | null;
  sagasPerSec: number;
  p50Ms: number;
  errors: number;
  cpuMsPerSaga: number | null;
  /** The machine's busy and steal time during the slice, in % of one core. */
  machineBusyPct: number | null;
  stealPct: number | null;
}

const USAGE = "usage: npx tsx bench/dtm-interleave.ts --store postgres|mysql|redis [--concurrency 1,20,64] [--rounds 4] [--slice 6] [--slice-warmup 2] [--start-warmup 10] [--level-warmup 5] [--dtx NAME=defer|sync[/WORKERS] ...] [--node-flags NAME=FLAGS ...] [--coordinator-node NAME=PATH ...] [--target NAME=API_URL@PID ...] [--out DIR]";

function fail(message: string): never {
  console.error(`dtm-interleave: ${message}\n${USAGE}`);
  process.exit(2);
}

function positive(flag: string, value: string | undefined, allowZero = false): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || (!allowZero && n === 0)) fail(`${flag} needs a ${allowZero ? "non-negative" : "positive"} number, got ${String(value)}`);
  return n;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    store: "postgres", concurrency: [1, 20, 64], rounds: 4, sliceSeconds: 6, sliceWarmupSeconds: 2, startWarmupSeconds: 10,
    levelWarmupSeconds: 5, dtx: [], nodeFlags: {}, coordinatorNode: {}, targets: [], out: path.join(REPO_ROOT, "bench", "results"),
  };
  let store: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    i++;
    switch (flag) {
      case "--store": store = value; break;
      case "--concurrency": o.concurrency = (value ?? "").split(",").map((c) => positive("--concurrency", c)); break;
      case "--rounds": o.rounds = positive("--rounds", value); break;
      case "--slice": o.sliceSeconds = positive("--slice", value); break;
      case "--slice-warmup": o.sliceWarmupSeconds = positive("--slice-warmup", value, true); break;
      case "--start-warmup": o.startWarmupSeconds = positive("--start-warmup", value, true); break;
      case "--level-warmup": o.levelWarmupSeconds = positive("--level-warmup", value, true); break;
      case "--out": o.out = path.resolve(value ?? fail("--out needs a directory")); break;
      case "--dtx": {
        const m = /^([\w-]+)=(defer|sync)(?:\/([1-9]\d*))?$/.exec(value ?? "");
        if (!m?.[1] || !m[2]) fail(`--dtx needs NAME=defer|sync[/WORKERS], got ${String(value)}`);
        o.dtx.push({ name: m[1], defer: m[2] === "defer", ...(m[3] ? { workers: Number(m[3]) } : {}) });
        break;
      }
      case "--node-flags": {
        const m = /^([\w-]+)=(.*)$/.exec(value ?? "");
        if (!m?.[1] || m[2] === undefined) fail(`--node-flags needs NAME=FLAGS, got ${String(value)}`);
        o.nodeFlags[m[1]] = m[2].split(/\s+/).filter(Boolean);
        break;
      }
      case "--coordinator-node": {
        const m = /^([\w-]+)=(.+)$/.exec(value ?? "");
        if (!m?.[1] || !m[2]) fail(`--coordinator-node needs NAME=PATH, got ${String(value)}`);
        const bin = path.resolve(m[2]);
        if (!existsSync(bin)) fail(`--coordinator-node: no file ${bin}`);
        o.coordinatorNode[m[1]] = bin;
        break;
      }
      case "--target": {
        const m = /^([\w-]+)=(https?:\/\/[^@\s]+)@(\d+)$/.exec(value ?? "");
        if (!m?.[1] || !m[2] || !m[3]) fail(`--target needs NAME=API_URL@PID, got ${String(value)}`);
        o.targets.push({ name: m[1], api: m[2], pid: Number(m[3]) });
        break;
      }
      default: fail(`unknown flag ${String(flag)}`);
    }
  }
  if (store !== "postgres" && store !== "mysql" && store !== "redis") fail(`--store must be postgres, mysql or redis, got ${String(store)}`);
  o.store = store;
  if (o.dtx.length === 0) o.dtx.push({ name: "dtx", defer: true });
  const names = [...o.dtx.map((d) => d.name), ...o.targets.map((t) => t.name)];
  if (new Set(names).size !== names.length) fail(`system names must differ: ${names.join(", ")}`);
  for (const [flag, named] of [["--node-flags", o.nodeFlags], ["--coordinator-node", o.coordinatorNode]] as const) {
    for (const name of Object.keys(named)) if (!o.dtx.some((d) => d.name === name)) fail(`${flag} names ${name}, which no --dtx starts`);
  }
  return o;
}

/** One measured slice of `system` at concurrency c. */
async function measureSlice(system: System, pool: Pool, busi: string, c: number, o: Options, tag: string, round: number): Promise<Slice> {
  if (o.sliceWarmupSeconds > 0) await load(system.api, busi, c, o.sliceWarmupSeconds, `${tag}-w`, pool);
  const pids = processTree(system.pid);
  const cpu0 = readTreeCpuTimes(pids);
  const machine0 = readMachineCpu();
  const r = await load(system.api, busi, c, o.sliceSeconds, tag, pool);
  const cpu1 = readTreeCpuTimes(pids);
  const machine1 = readMachineCpu();
  const cpuSeconds = cpu0 && cpu1 ? cpu1.user + cpu1.system - cpu0.user - cpu0.system : undefined;
  const machinePct = (key: "busy" | "steal"): number | null => {
    if (!machine0 || !machine1 || machine1.total === machine0.total) return null;
    // % of one core: the share of all CPUs' time, times the number of CPUs.
    return round1(((machine1[key] - machine0[key]) / (machine1.total - machine0.total)) * 100 * os.cpus().length);
  };
  return {
    round,
    sagas: r.done,
    cpuMs: cpuSeconds === undefined ? null : Math.round(cpuSeconds * 1000),
    sagasPerSec: round1(r.done / o.sliceSeconds),
    p50Ms: Number(r.p50Ms.toFixed(2)),
    errors: r.errors,
    cpuMsPerSaga: cpuSeconds === undefined || r.done === 0 ? null : Number(((cpuSeconds * 1000) / r.done).toFixed(3)),
    machineBusyPct: machinePct("busy"),
    stealPct: machinePct("steal"),
  };
}

const round1 = (n: number): number => Number(n.toFixed(1));

/** The ratio of a's slice to b's slice in each round (a and b measured seconds apart). */
function roundRatios(a: readonly Slice[], b: readonly Slice[]): number[] {
  return a.map((s, i) => s.sagasPerSec / Math.max(1e-9, b[i]?.sagasPerSec ?? NaN)).filter(Number.isFinite);
}


async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const runId = `${process.pid.toString(36)}${Date.now().toString(36)}`;
  const tmp = mkdtempSync(path.join(os.tmpdir(), "dtm-interleave-"));
  const procs: Proc[] = [];
  const stores: BenchStore[] = [];
  const loadBefore = os.loadavg();
  try {
    const participant = await startParticipant();
    procs.push(participant.proc);
    const entry = buildServer(tmp, REPO_ROOT);
    const systems: System[] = [];
    for (const d of o.dtx) {
      const store = await openBenchStore(o.store, undefined, `${runId}${systems.length}`);
      stores.push(store);
      const dtx = await startCoordinator(d.name, [...(o.nodeFlags[d.name] ?? HEAP_FLAGS), ...entry], {
        DTX_DEFER_BRANCH_RESULTS: d.defer ? "1" : "0",
        ...(d.workers ? { DTX_WORKERS: String(d.workers) } : {}),
        ...store.env,
      }, o.coordinatorNode[d.name]);
      procs.push(dtx.proc);
      systems.push({ name: d.name, kind: "dtx", api: `${dtx.origin}/api/dtmsvr`, pid: dtx.proc.child.pid ?? 0 });
    }
    for (const t of o.targets) {
      await waitFor200(`${t.api}/newGid`);
      systems.push({ name: t.name, kind: "external", api: t.api, pid: t.pid });
    }
    console.log(`dtm-interleave: ${o.store}, systems ${systems.map((s) => s.name).join(", ")}; ${o.rounds} rounds of ${o.sliceWarmupSeconds} + ${o.sliceSeconds} s slices per level`);

    const levels: { concurrency: number; slices: Record<string, Slice[]> }[] = [];
    for (const [li, c] of o.concurrency.entries()) {
      // One pool per system and level, kept from the warm-up to the last slice (see loadPool).
      const pools = new Map(systems.map((s) => [s.name, loadPool(s.api, c)]));
      const poolOf = (s: System): Pool => pools.get(s.name) ?? fail(`no pool for ${s.name}`);
      const warm = o.levelWarmupSeconds + (li === 0 ? o.startWarmupSeconds : 0);
      for (const s of systems) if (warm > 0) await load(s.api, participant.busi, c, warm, `warm-${runId}-${s.name}-c${c}`, poolOf(s));
      const slices: Record<string, Slice[]> = Object.fromEntries(systems.map((s) => [s.name, []]));
      for (let r = 0; r < o.rounds; r++) {
        const order = r % 2 === 0 ? systems : [...systems].reverse();
        for (const s of order) {
          const slice = await measureSlice(s, poolOf(s), participant.busi, c, o, `il-${runId}-${s.name}-c${c}-r${r}`, r);
          slices[s.name]?.push(slice);
          console.log(`  C=${c} round ${r + 1} ${s.name}: ${slice.sagasPerSec} sagas/s, p50 ${slice.p50Ms} ms, ${slice.cpuMsPerSaga ?? "n/a"} CPU ms/saga, steal ${slice.stealPct ?? "n/a"} %`);
        }
      }
      await Promise.all([...pools.values()].map((p) => p.close()));
      levels.push({ concurrency: c, slices });
    }

    // Every dtx against every external coordinator; with no external one (an A/B of dtx
    // settings), the first dtx against the others.
    const dtxNames = systems.filter((s) => s.kind === "dtx").map((s) => s.name);
    const externalNames = systems.filter((s) => s.kind === "external").map((s) => s.name);
    const [contenders, baselines] = externalNames.length > 0 ? [dtxNames, externalNames] : [dtxNames.slice(0, 1), dtxNames.slice(1)];
    const comparisons = levels.flatMap((l) =>
      contenders.flatMap((a) => baselines.map((b) => {
        const ratios = roundRatios(l.slices[a] ?? [], l.slices[b] ?? []);
        return { concurrency: l.concurrency, a, b, ratios: ratios.map((x) => Number(x.toFixed(2))), median: Number(median(ratios).toFixed(2)), min: Number(Math.min(...ratios).toFixed(2)), max: Number(Math.max(...ratios).toFixed(2)) };
      })));
    const perSystem = levels.flatMap((l) => systems.map((s) => {
      const xs = l.slices[s.name] ?? [];
      const sagas = xs.reduce((acc, x) => acc + x.sagas, 0);
      const cpu = xs.some((x) => x.cpuMs === null) ? null : xs.reduce((acc, x) => acc + (x.cpuMs ?? 0), 0);
      return {
        concurrency: l.concurrency, system: s.name,
        sagasPerSecMedian: round1(median(xs.map((x) => x.sagasPerSec))),
        p50MsMedian: Number(median(xs.map((x) => x.p50Ms)).toFixed(2)),
        cpuMsPerSaga: cpu === null || sagas === 0 ? null : Number((cpu / sagas).toFixed(3)),
        errors: xs.reduce((acc, x) => acc + x.errors, 0),
      };
    }));
    const steal = levels.flatMap((l) => Object.values(l.slices).flat().map((x) => x.stealPct ?? 0));
    const result = {
      benchmark: "dtm-interleave",
      timestamp: new Date().toISOString(),
      command: `npx tsx bench/dtm-interleave.ts ${process.argv.slice(2).join(" ")}`,
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? "?", node: process.version, loadBefore: loadBefore.map((x) => Number(x.toFixed(2))), loadAfter: os.loadavg().map((x) => Number(x.toFixed(2))), stealPctMax: Math.max(0, ...steal) },
      config: { ...o, out: undefined, dtxNodeFlags: HEAP_FLAGS.join(" ") },
      systems: systems.map(({ name, kind }) => ({
        name, kind, ...(kind === "dtx" ? { node: nodeVersionOf(o.coordinatorNode[name] ?? process.execPath) } : {}),
      })),
      comparisons, perSystem, levels,
    };
    mkdirSync(o.out, { recursive: true });
    const file = path.join(o.out, `dtm-interleave-${o.store}-${result.timestamp.replace(/[:.]/g, "-")}.json`);
    writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);

    console.log(`\n${o.store}: ratio per round (slices seconds apart), median (min-max) over ${o.rounds} rounds`);
    console.log("| C | comparison | median | range |\n|---:|---|---:|---|");
    for (const x of comparisons) console.log(`| ${x.concurrency} | ${x.a} ÷ ${x.b} | **${x.median.toFixed(2)}** | ${x.min.toFixed(2)}–${x.max.toFixed(2)} |`);
    console.log("\n| C | system | sagas/s (median slice) | p50 ms | CPU ms/saga | errors |\n|---:|---|---:|---:|---:|---:|");
    for (const x of perSystem) console.log(`| ${x.concurrency} | ${x.system} | ${x.sagasPerSecMedian} | ${x.p50MsMedian} | ${x.cpuMsPerSaga ?? "n/a"} | ${x.errors} |`);
    const failed = perSystem.filter((x) => x.errors > 0);
    if (failed.length > 0) console.log(`\nWARNING: errors in ${failed.map((x) => `${x.system} at C=${x.concurrency} (${x.errors})`).join(", ")}: those slices measured failures too`);
    console.log(`\nmachine: ${result.machine.cpus} × ${result.machine.model}, load ${result.machine.loadBefore.join(" ")} -> ${result.machine.loadAfter.join(" ")}, steal max ${result.machine.stealPctMax} % of a core\nresults: ${path.relative(process.cwd(), file)}`);
  } finally {
    await Promise.all(procs.map(stop));
    for (const s of stores) await s.drop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(`dtm-interleave: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(1);
});
