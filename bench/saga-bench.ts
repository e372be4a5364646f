/**
 * Closed-loop load generator for the coordinator: a two-branch saga against a no-op participant,
 * submitted with wait_result, at several concurrency levels. See bench/README.md.
 *
 *   npx tsx bench/saga-bench.ts [--seconds 8] [--warmup 2] [--concurrency 1,20,64]
 *                               [--store sqlite|postgres|mysql|redis] [--store-url URL]
 *                               [--synchronous full|normal] [--pin] [--build] [--profile]
 *                               [--profile-dir DIR] [--critical-path] [--out DIR]
 *                               [--target URL [--target-pid PID] [--target-name NAME]]
 *                               [--seed-finished N]
 *
 * With --target, no coordinator is started: the same driver and participant measure an external,
 * already-running dtm-compatible coordinator (e.g. dtm itself, see bench/dtm-compare.sh), and the
 * coordinator's CPU/RSS are read from /proc only if --target-pid names its process.
 *
 * Starts the coordinator (`node --import tsx server/src/main.ts`, cwd = repo root) on a fresh store
 * (a temp SQLite file; or a new Postgres schema, MySQL database or Redis key prefix on the test
 * services, dropped afterwards) and a no-op participant (bench/noop-participant.ts), each in its own child process,
 * then for each C runs C workers that submit, await the answer, and submit again.
 */
import type { ChildProcess } from "node:child_process";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { Pool, request } from "undici";
import type { TimeWindow } from "./top-functions.ts";
import { formatSummary, loadProfile, summarize } from "./top-functions.ts";
import { buildServer } from "./lib/build-server.ts";
import { nodeVersionOf } from "./lib/node-binary.ts";
import { openBenchStore } from "./lib/bench-store.ts";
import { seedPostgres, seedSqlite } from "./lib/seed-finished.ts";
import { forEachLine, freePort, percentile, sleep } from "./lib/util.ts";
import { processTree, readCpuSeconds, readMachineCpu, readRssMB, readTreeCpuTimes, readTreeStatusMB } from "./lib/proc-stats.ts";
import { criticalPath, formatCriticalPath, readCriticalPathEvents } from "./lib/critical-path.ts";
import { waitFor200 } from "./lib/slices.ts";
import type { CriticalPath } from "./lib/critical-path.ts";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SUBMIT_PATH = "/api/dtmsvr/submit";

/**
 * Preloaded into the coordinator (`--import data:...`) so its own code stays untouched: the driver
 * holds the write end of the coordinator's stdin, so if the driver dies, even by SIGKILL, stdin
 * reaches EOF and the coordinator sends itself SIGTERM and stops gracefully (writing its
 * --cpu-prof profile) instead of being left behind.
 */
const ORPHAN_GUARD = `data:text/javascript,${encodeURIComponent(
  'const stop=()=>process.kill(process.pid,"SIGTERM");process.stdin.on("end",stop);process.stdin.on("error",stop);process.stdin.resume();',
)}`;

// ---------------------------------------------------------------------------------------------
// Options

type StoreDriver = "sqlite" | "postgres" | "mysql" | "redis";
const STORE_DRIVERS: readonly StoreDriver[] = ["sqlite", "postgres", "mysql", "redis"];

interface Options {
  store: StoreDriver;
  /** Server URL for a network store; default: the test services' (test/helpers/services.ts). */
  storeUrl: string | undefined;
  /** Branch URLs "" (dtm's benchEmptyUrl): the coordinator records the steps but calls nothing. */
  emptyUrls: boolean;
  seconds: number;
  warmup: number;
  /**
   * Extra warm-up seconds before the first level only: a coordinator on V8 runs its first
   * thousands of sagas in the interpreter and baseline code, so a level measured right after
   * start measures the JIT's tier-up, not the coordinator (bench/README.md, "Warm-up").
   */
  startWarmup: number;
  concurrency: number[];
  synchronous: "full" | "normal";
  pin: boolean;
  build: boolean;
  nodeFlags: string[];
  /** The node binary that runs the spawned coordinator (default: the one running this bench). */
  coordinatorNode: string;
  profile: boolean;
  profileDir: string;
  /** Stamp the coordinator's socket reads and writes and report where C = 1 latency goes. */
  criticalPath: boolean;
  outDir: string;
  /** Base URL of an external coordinator's API (…/api/dtmsvr); undefined = spawn dtx. */
  target: string | undefined;
  /** pid of the external coordinator, for /proc CPU and RSS figures. */
  targetPid: number | undefined;
  /** Name of the external coordinator in the results file name, e.g. "dtm". */
  targetName: string;
  /** Finished transactions put in the store before the coordinator starts (sqlite, postgres). */
  seedFinished: number;
  /** DTX_WORKERS for the spawned dtx; undefined = its default (one per core on a network store). */
  workers: number | undefined;
}

const USAGE = `usage: npx tsx bench/saga-bench.ts [options]
  --seconds N           measured seconds per concurrency level (default 8)
  --warmup N            warm-up seconds before each measured phase (default 2)
  --start-warmup N      extra warm-up seconds before the first level only (default 0): time
                        for the JIT to reach steady state after the coordinator starts
  --concurrency LIST    comma-separated concurrency levels (default 1,20,64)
  --store DRIVER        sqlite (default), postgres, mysql or redis
  --store-url URL       server of a network store (default: the test services of scripts/services.sh)
  --empty-urls          branch URLs "" (dtm's Redis benchmark, benchEmptyUrl): no branch calls
  --synchronous MODE    SQLite synchronous mode for the store: full | normal (default full)
  --pin                 pin with taskset: coordinator on CPU 0, participant + driver on CPU 1
  --build               compile server/ with tsc into a temp dir and run it with plain node
                        (production-like: no tsx loader thread) instead of node --import tsx
  --node-flags "FLAGS"  extra node flags for the coordinator, e.g. "--max-semi-space-size=4"
  --coordinator-node PATH
                        node binary for the spawned coordinator only (the participant and the
                        driver keep this one), e.g. the release the image ships:
                        bench/lib/fetch-node.sh 24.22.3 prints its path
  --profile             run the coordinator with --cpu-prof and print its top functions
  --profile-dir DIR     where --profile writes .cpuprofile files (default /tmp/dtx-profiles)
  --critical-path       stamp the coordinator's socket reads and writes and print, for each
                        C = 1 level, where one saga's latency goes (its own work, store and
                        participant round trips; bench/lib/critical-path.ts)
  --out DIR             where results are written (default bench/results)
  --target URL          drive an already-running coordinator at URL (its API base, e.g.
                        http://127.0.0.1:36789/api/dtmsvr) instead of spawning dtx; --store then
                        only names the store it uses (for the results file), nothing is created
  --target-pid PID      pid of the --target coordinator, for its CPU % and RSS (from /proc)
  --target-name NAME    name of the --target coordinator in the results file (default "dtm")
  --workers N           DTX_WORKERS for the spawned dtx (default: its own, one process per core on
                        a network store less one for a local store server, one on SQLite); CPU and
                        RSS are summed over its processes
  --seed-finished N     fill the store with N finished sagas (2 branch rows each, updated 1 h to
                        6 days ago) before the coordinator starts (sqlite, postgres; see
                        bench/retention-bench.ts)`;

function parseArgs(argv: string[]): Options {
  const opts: Options = {
    store: "sqlite",
    storeUrl: undefined,
    emptyUrls: false,
    seconds: 8,
    warmup: 2,
    startWarmup: 0,
    concurrency: [1, 20, 64],
    synchronous: process.env["DTX_STORE_SYNCHRONOUS"] === "normal" ? "normal" : "full",
    pin: false,
    build: false,
    nodeFlags: [],
    coordinatorNode: process.execPath,
    profile: false,
    profileDir: "/tmp/dtx-profiles",
    criticalPath: false,
    outDir: path.join(REPO_ROOT, "bench", "results"),
    target: undefined,
    targetPid: undefined,
    targetName: "dtm",
    seedFinished: 0,
    workers: undefined,
  };
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined) fail(`${flag} needs a value`);
    return v;
  };
  const positive = (text: string, flag: string): number => {
    const n = Number(text);
    if (!Number.isFinite(n) || n <= 0) fail(`${flag} must be a positive number, got ${text}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i] ?? "";
    const eq = raw.indexOf("=");
    const flag = raw.startsWith("--") && eq > 0 ? raw.slice(0, eq) : raw;
    const inline = raw.startsWith("--") && eq > 0 ? raw.slice(eq + 1) : undefined;
    const next = (): string => {
      if (inline !== undefined) return inline;
      const v = value(i, flag);
      i++;
      return v;
    };
    switch (flag) {
      case "--seconds": opts.seconds = positive(next(), flag); break;
      case "--warmup": {
        const v = Number(next());
        if (!Number.isFinite(v) || v < 0) fail("--warmup must be >= 0");
        opts.warmup = v;
        break;
      }
      case "--start-warmup": {
        const v = Number(next());
        if (!Number.isFinite(v) || v < 0) fail("--start-warmup must be >= 0");
        opts.startWarmup = v;
        break;
      }
      case "--concurrency": {
        const list = next().split(",").map((s) => Number(s.trim()));
        if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n <= 0)) fail("--concurrency must be a list of positive integers, e.g. 1,20,64");
        opts.concurrency = list;
        break;
      }
      case "--store": {
        const v = next();
        if (!(STORE_DRIVERS as readonly string[]).includes(v)) fail(`--store must be one of ${STORE_DRIVERS.join(", ")}`);
        opts.store = v as StoreDriver;
        break;
      }
      case "--store-url": opts.storeUrl = next(); break;
      case "--empty-urls": opts.emptyUrls = true; break;
      case "--synchronous": {
        const v = next();
        if (v !== "full" && v !== "normal") fail("--synchronous must be full or normal");
        opts.synchronous = v;
        break;
      }
      case "--pin": opts.pin = true; break;
      case "--build": opts.build = true; break;
      case "--node-flags": opts.nodeFlags = next().split(/\s+/).filter(Boolean); break;
      case "--coordinator-node": {
        const bin = path.resolve(next());
        if (!existsSync(bin)) fail(`--coordinator-node: no file ${bin}`);
        opts.coordinatorNode = bin;
        break;
      }
      case "--profile": opts.profile = true; break;
      case "--profile-dir": opts.profileDir = path.resolve(next()); break;
      case "--critical-path": opts.criticalPath = true; break;
      case "--out": opts.outDir = path.resolve(next()); break;
      case "--target": opts.target = next().replace(/\/+$/, ""); break;
      case "--target-pid": {
        const v = Number(next());
        if (!Number.isInteger(v) || v <= 0) fail("--target-pid must be a process id");
        opts.targetPid = v;
        break;
      }
      case "--target-name": {
        const v = next();
        if (!/^[\w.-]+$/.test(v)) fail("--target-name may hold only letters, digits, _ . -");
        opts.targetName = v;
        break;
      }
      case "--workers": {
        const v = Number(next());
        if (!Number.isInteger(v) || v < 1) fail("--workers must be a whole number >= 1");
        opts.workers = v;
        break;
      }
      case "--seed-finished": {
        const v = Number(next());
        if (!Number.isInteger(v) || v < 0) fail("--seed-finished must be a whole number >= 0");
        opts.seedFinished = v;
        break;
      }
      case "-h":
      case "--help":
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        fail(`unknown argument ${raw}\n${USAGE}`);
    }
  }
  if (opts.seedFinished > 0 && (opts.target !== undefined || (opts.store !== "sqlite" && opts.store !== "postgres"))) {
    fail("--seed-finished works on a spawned dtx with --store sqlite or postgres");
  }
  if (opts.target !== undefined) {
    if (!/^https?:\/\/[^/]+\/./.test(opts.target)) fail("--target must be a URL with the API path, e.g. http://127.0.0.1:36789/api/dtmsvr");
    if (opts.profile) fail("--profile profiles the spawned dtx; it cannot be used with --target");
    if (opts.criticalPath) fail("--critical-path stamps the spawned dtx; it cannot be used with --target");
    if (opts.workers !== undefined) fail("--workers applies to the spawned dtx; not with --target");
    if (opts.build || opts.nodeFlags.length > 0 || opts.coordinatorNode !== process.execPath) {
      fail("--build, --node-flags and --coordinator-node apply to the spawned dtx; not with --target");
    }
  }
  return opts;
}

function fail(message: string): never {
  console.error(`saga-bench: ${message}`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Child processes: every child is tracked and killed on any exit path.

interface Child {
  name: string;
  proc: ChildProcess;
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderrTail: () => string;
  onStdoutLine: (fn: (line: string) => void) => void;
}

const children = new Set<Child>();
/** Temp directories removed on every exit path. */
const tempDirs: string[] = [];

function removeTempDirs(): void {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

function alive(child: Child): boolean {
  return child.proc.exitCode === null && child.proc.signalCode === null;
}

function spawnChild(name: string, command: string, args: string[], env: NodeJS.ProcessEnv): Child {
  // stdin is a pipe we never write to: if this driver dies, the child sees EOF and stops itself.
  const proc = spawn(command, args, { cwd: REPO_ROOT, env, stdio: ["pipe", "pipe", "pipe"] });
  if (proc.pid === undefined) throw new Error(`could not start ${name}: ${command} ${args.join(" ")}`);
  let stderr = "";
  proc.stderr?.setEncoding("utf8");
  proc.stderr?.on("data", (d: string) => {
    stderr = (stderr + d).slice(-8000);
  });
  const listeners: ((line: string) => void)[] = [];
  forEachLine(proc.stdout, (line) => {
    for (const fn of listeners) fn(line);
  });
  proc.stdin?.on("error", () => {});
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.on("exit", (code, signal) => resolve({ code, signal }));
    proc.on("error", () => resolve({ code: -1, signal: null }));
  });
  const child: Child = {
    name, proc, pid: proc.pid, exited,
    stderrTail: () => stderr.trim(),
    onStdoutLine: (fn) => listeners.push(fn),
  };
  children.add(child);
  void exited.then(() => children.delete(child));
  return child;
}

/** Asks a child to stop (the coordinator exits 0 on SIGTERM/SIGINT); SIGKILL after the grace period. */
async function stopChild(child: Child, signal: NodeJS.Signals = "SIGTERM", graceMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (alive(child)) child.proc.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), graceMs);
  });
  const first = await Promise.race([child.exited, timeout]);
  clearTimeout(timer);
  if (first !== "timeout") return first;
  console.error(`saga-bench: ${child.name} did not stop within ${graceMs} ms; killing it`);
  if (alive(child)) child.proc.kill("SIGKILL");
  return child.exited;
}

async function stopAll(): Promise<void> {
  await Promise.all([...children].map((c) => stopChild(c, "SIGTERM", 5000)));
}

function killAllNow(): void {
  for (const child of children) {
    if (alive(child)) child.proc.kill("SIGKILL");
  }
}

process.on("exit", () => {
  killAllNow();
  removeTempDirs();
});
let interrupted = false;
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    if (interrupted) {
      killAllNow();
      process.exit(130);
    }
    interrupted = true;
    console.error(`\nsaga-bench: ${sig}, stopping children...`);
    void stopAll().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------
// Helpers



function waitForLine(child: Child, match: (line: string) => boolean, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${child.name} not ready after ${timeoutMs} ms\n${child.stderrTail()}`)), timeoutMs);
    child.onStdoutLine((line) => {
      if (match(line)) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    void child.exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${child.name} exited early (code ${code}, signal ${signal})\n${child.stderrTail()}`));
    });
  });
}

async function waitForHttp(child: Child, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!alive(child)) throw new Error(`${child.name} exited early (code ${child.proc.exitCode}, signal ${child.proc.signalCode})\n${child.stderrTail()}`);
    try {
      const res = await request(url, { headersTimeout: 1000, bodyTimeout: 1000 });
      await res.body.dump();
      if (res.statusCode === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${child.name} did not answer ${url} within ${timeoutMs} ms\n${child.stderrTail()}`);
    await sleep(100);
  }
}

async function participantCalls(port: number): Promise<number | undefined> {
  try {
    const res = await request(`http://127.0.0.1:${port}/__stats`);
    const json = (await res.body.json()) as { calls?: number };
    return typeof json.calls === "number" ? json.calls : undefined;
  } catch {
    return undefined;
  }
}


const round = (n: number | undefined, digits = 2): number | null => (n === undefined || !Number.isFinite(n) ? null : Number(n.toFixed(digits)));

function taskset(cpus: string, command: string, args: string[]): [string, string[]] {
  return ["taskset", ["-c", cpus, command, ...args]];
}

function tasksetAvailable(): boolean {
  try {
    execFileSync("taskset", ["-p", String(process.pid)], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// One concurrency level

interface LevelResult {
  concurrency: number;
  measuredSeconds: number;
  completed: number;
  throughput: number;
  latencyMs: { mean: number | null; p50: number | null; p90: number | null; p99: number | null; max: number | null };
  errors: number;
  errorsByStatus: Record<string, number>;
  firstError: string | null;
  coordinator: { rssStartMB: number | null; rssMaxMB: number | null; rssEndMB: number | null; rssAnonEndMB: number | null; rssFileEndMB: number | null; cpuPct: number | null; processes: number | null; cpuMsPerSaga: number | null; userPct: number | null; systemPct: number | null };
  participant: { rssMaxMB: number | null; cpuPct: number | null; callsPerSaga: number | null };
  driver: { cpuPct: number | null };
  /** Whole machine busy %, 100 = all cores busy. */
  machineCpuPct: number | null;
  /** CPU used by everything else on the machine (other work, kernel), in % of one core. */
  otherCpuPct: number | null;
  /** CPU time the hypervisor took from this VM (steal), in % of one core; part of otherCpuPct. */
  stealCpuPct: number | null;
  /** The measured phase on CLOCK_MONOTONIC in µs (the clock of .cpuprofile timestamps). */
  monotonicWindowUs: TimeWindow;
  /** With --critical-path, at C = 1: where one saga's latency went. */
  criticalPath?: CriticalPath | null;
}

interface Procs {
  /** The spawned dtx; undefined with --target. */
  coordinator: Child | undefined;
  /** pid read for CPU/RSS: the spawned dtx's, or --target-pid, or undefined. */
  coordinatorPid: number | undefined;
  participant: Child;
  coordinatorOrigin: string;
  /** Path of the submit endpoint on coordinatorOrigin. */
  submitPath: string;
  participantPort: number;
}

/** Whether the coordinator is still there: the spawned child, or the --target-pid process if given. */
function coordinatorAlive(procs: Procs): boolean {
  if (procs.coordinator) return alive(procs.coordinator);
  if (procs.coordinatorPid === undefined) return true;
  try {
    process.kill(procs.coordinatorPid, 0);
    return true;
  } catch {
    return false;
  }
}

async function runLevel(level: number, c: number, opts: Options, procs: Procs, runId: string): Promise<LevelResult> {
  const participantBase = `http://127.0.0.1:${procs.participantPort}/api/busi`;
  const stepsJson = JSON.stringify(opts.emptyUrls
    ? [{ action: "", compensate: "" }, { action: "", compensate: "" }]
    : [
        { action: `${participantBase}/TransOut`, compensate: `${participantBase}/TransOutRevert` },
        { action: `${participantBase}/TransIn`, compensate: `${participantBase}/TransInRevert` },
      ]);
  const bodyFor = (gid: string): string =>
    `{"gid":"${gid}","trans_type":"saga","steps":${stepsJson},"payloads":["{}","{}"],"wait_result":true}`;

  const pool = new Pool(procs.coordinatorOrigin, { connections: c, pipelining: 1, keepAliveTimeout: 60_000 });
  let measureStart = Infinity;
  let measureEnd = Infinity;
  let stop = false;
  const latencies: number[] = [];
  let errors = 0;
  const errorsByStatus: Record<string, number> = {};
  let firstError: string | null = null;

  const record = (t0: number, t1: number, status: number, text: string): void => {
    if (t1 < measureStart || t1 > measureEnd) return;
    if (status === 200 && text.includes("SUCCESS")) {
      latencies.push(t1 - t0);
      return;
    }
    errors++;
    const key = status < 0 ? "network" : String(status);
    errorsByStatus[key] = (errorsByStatus[key] ?? 0) + 1;
    firstError ??= `status ${status}: ${text.slice(0, 2000)}`;
  };

  const worker = async (w: number): Promise<void> => {
    let seq = 0;
    while (!stop) {
      const gid = `bench-${runId}-l${level}c${c}-w${w}-${seq++}`;
      const body = bodyFor(gid);
      const t0 = performance.now();
      let status = -1;
      let text = "";
      try {
        const res = await pool.request({ path: procs.submitPath, method: "POST", headers: { "content-type": "application/json" }, body, headersTimeout: 30_000, bodyTimeout: 30_000 });
        status = res.statusCode;
        text = await res.body.text();
      } catch (error) {
        text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
        if (!coordinatorAlive(procs)) stop = true;
        else await sleep(10); // don't spin on a refused connection
      }
      record(t0, performance.now(), status, text);
    }
  };

  const workers = Array.from({ length: c }, (_, w) => worker(w));
  await sleep((opts.warmup + (level === 0 ? opts.startWarmup : 0)) * 1000);

  // Measured phase.
  // With --target and no --target-pid, -1 reads nothing: the coordinator's figures stay null.
  const coordPid = procs.coordinatorPid ?? -1;
  // With workers the coordinator is a process tree; its CPU and RSS are the tree's sums.
  const coordPids = processTree(coordPid);
  const partPid = procs.participant.pid;
  const rssStart = readTreeStatusMB(coordPids)["VmRSS"];
  let coordRssMax = rssStart ?? 0;
  let partRssMax = readRssMB(partPid) ?? 0;
  const sample = (): void => {
    coordRssMax = Math.max(coordRssMax, readTreeStatusMB(coordPids)["VmRSS"] ?? 0);
    partRssMax = Math.max(partRssMax, readRssMB(partPid) ?? 0);
  };
  const callsBefore = await participantCalls(procs.participantPort);
  const coordTimes0 = readTreeCpuTimes(coordPids);
  const coordCpu0 = coordTimes0 ? coordTimes0.user + coordTimes0.system : undefined;
  const partCpu0 = readCpuSeconds(partPid);
  const machine0 = readMachineCpu();
  const driver0 = process.cpuUsage();
  const monoStart = Number(process.hrtime.bigint() / 1000n);
  measureStart = performance.now();
  const sampler = setInterval(sample, 250);
  await sleep(opts.seconds * 1000);
  measureEnd = performance.now();
  const monoEnd = Number(process.hrtime.bigint() / 1000n);
  clearInterval(sampler);
  sample();
  const driverCpu = process.cpuUsage(driver0);
  const coordTimes1 = readTreeCpuTimes(coordPids);
  const coordCpu1 = coordTimes1 ? coordTimes1.user + coordTimes1.system : undefined;
  const partCpu1 = readCpuSeconds(partPid);
  const machine1 = readMachineCpu();
  const statusEnd = readTreeStatusMB(coordPids);
  const rssEnd = statusEnd["VmRSS"];
  const callsAfter = await participantCalls(procs.participantPort);

  stop = true;
  await Promise.all(workers);
  await pool.close();

  const wall = (measureEnd - measureStart) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  const mean = latencies.length ? latencies.reduce((a, b) => a + b, 0) / latencies.length : NaN;
  const pct = (a: number | undefined, b: number | undefined): number | null => (a === undefined || b === undefined ? null : round((100 * (b - a)) / wall, 1));
  const completed = latencies.length;
  const machinePct = machine0 && machine1 && machine1.total > machine0.total ? (100 * (machine1.busy - machine0.busy)) / (machine1.total - machine0.total) : undefined;
  // Time the hypervisor gave this VM's vCPUs to someone else, in % of one core: the figures of a
  // phase with steal are low for reasons outside the machine.
  const stealPct = machine0 && machine1 && machine1.total > machine0.total
    ? (100 * os.cpus().length * (machine1.steal - machine0.steal)) / (machine1.total - machine0.total) : undefined;
  const coordPct = pct(coordCpu0, coordCpu1);
  const partPct = pct(partCpu0, partCpu1);
  const driverPct = (100 * (driverCpu.user + driverCpu.system)) / 1e6 / wall;
  const otherPct = machinePct !== undefined && coordPct !== null && partPct !== null ? Math.max(0, machinePct * os.cpus().length - coordPct - partPct - driverPct) : undefined;
  return {
    concurrency: c,
    measuredSeconds: round(wall, 3) ?? opts.seconds,
    completed,
    throughput: round(completed / wall, 1) ?? 0,
    latencyMs: { mean: round(mean, 3), p50: round(percentile(sorted, 0.5), 3), p90: round(percentile(sorted, 0.9), 3), p99: round(percentile(sorted, 0.99), 3), max: round(sorted[sorted.length - 1], 3) },
    errors,
    errorsByStatus,
    firstError,
    coordinator: { rssStartMB: round(rssStart, 1), rssMaxMB: round(coordRssMax || undefined, 1), rssEndMB: round(rssEnd, 1), rssAnonEndMB: round(statusEnd["RssAnon"], 1), rssFileEndMB: round(statusEnd["RssFile"], 1), cpuPct: coordPct,
      processes: coordPid > 0 ? coordPids.length : null,
      cpuMsPerSaga: coordCpu0 !== undefined && coordCpu1 !== undefined && completed > 0 ? round((1000 * (coordCpu1 - coordCpu0)) / completed, 3) : null,
      userPct: pct(coordTimes0?.user, coordTimes1?.user), systemPct: pct(coordTimes0?.system, coordTimes1?.system) },
    participant: {
      rssMaxMB: round(partRssMax || undefined, 1),
      cpuPct: partPct,
      // Approximate: calls counted over the sampling window, sagas by completion time.
      callsPerSaga: callsBefore !== undefined && callsAfter !== undefined && completed > 0 ? round((callsAfter - callsBefore) / completed, 2) : null,
    },
    driver: { cpuPct: round(driverPct, 1) },
    machineCpuPct: round(machinePct, 1),
    otherCpuPct: round(otherPct, 0),
    stealCpuPct: round(stealPct, 1),
    monotonicWindowUs: { startUs: monoStart, endUs: monoEnd },
  };
}

// ---------------------------------------------------------------------------------------------
// Report

const BASE_TARGETS = { throughputC64: 2000, throughputC64Stretch: 4000, p50C1Ms: 3, rssMaxMB: 150 };
/** C = 64 throughput per store (the targets in bench/README.md); the SQLite figures are the foundation issue's. */
const THROUGHPUT_C64: Record<StoreDriver, number> = { sqlite: 2000, postgres: 2000, mysql: 1500, redis: 5000 };
let TARGETS = BASE_TARGETS;

function evaluateTargets(results: LevelResult[]): Record<string, unknown> {
  const c64 = results.find((r) => r.concurrency === 64);
  const c1 = results.find((r) => r.concurrency === 1);
  const rssMax = Math.max(...results.map((r) => r.coordinator.rssMaxMB ?? 0));
  return {
    throughputC64: c64 ? { target: TARGETS.throughputC64, stretch: TARGETS.throughputC64Stretch, value: c64.throughput, met: c64.throughput >= TARGETS.throughputC64, stretchMet: c64.throughput >= TARGETS.throughputC64Stretch } : null,
    p50C1: c1 ? { targetMs: TARGETS.p50C1Ms, value: c1.latencyMs.p50, met: c1.latencyMs.p50 !== null && c1.latencyMs.p50 <= TARGETS.p50C1Ms } : null,
    coordinatorRss: { targetMB: TARGETS.rssMaxMB, value: rssMax, met: rssMax > 0 && rssMax < TARGETS.rssMaxMB },
    noErrors: results.every((r) => r.errors === 0),
  };
}

function fmt(n: number | null | undefined, digits = 1): string {
  return n === null || n === undefined ? "n/a" : n.toFixed(digits);
}

function markdownTable(results: LevelResult[]): string {
  const lines = [
    "| C | sagas/s | p50 ms | p90 ms | p99 ms | max ms | errors | coord RSS max MB | coord CPU % | coord CPU ms/saga | participant CPU % | driver CPU % | other CPU % |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of results) {
    lines.push(
      `| ${r.concurrency} | ${fmt(r.throughput, 0)} | ${fmt(r.latencyMs.p50, 2)} | ${fmt(r.latencyMs.p90, 2)} | ${fmt(r.latencyMs.p99, 2)} | ${fmt(r.latencyMs.max, 1)} | ${r.errors} | ${fmt(r.coordinator.rssMaxMB)} | ${fmt(r.coordinator.cpuPct, 0)} | ${fmt(r.coordinator.cpuMsPerSaga, 3)} | ${fmt(r.participant.cpuPct, 0)} | ${fmt(r.driver.cpuPct, 0)} | ${fmt(r.otherCpuPct, 0)} |`,
    );
  }
  return lines.join("\n");
}

function newestProfile(dir: string): string | undefined {
  if (!existsSync(dir)) return undefined;
  const files = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile")).map((f) => path.join(dir, f));
  // The main thread's profile is the big one (a loader worker, if any, writes a small one).
  files.sort((a, b) => statSync(b).size - statSync(a).size);
  return files[0];
}

// ---------------------------------------------------------------------------------------------
// Main

/** Where --critical-path's hook writes each coordinator process's stamps. */
function criticalPathDir(tmp: string): string {
  return path.join(tmp, "critical-path");
}

/** The --critical-path hook's environment: where to write, and which ports are the store's. */
function criticalPathEnv(tmp: string, storeEnv: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const raw = storeEnv["DTX_STORE_URL"];
  const defaults: Record<string, string> = { "postgres:": "5432", "postgresql:": "5432", "mysql:": "3306", "redis:": "6379", "rediss:": "6379" };
  const url = raw ? new URL(raw) : undefined;
  const port = url ? url.port || defaults[url.protocol] || "" : "";
  return { DTX_BENCH_CRITICAL_PATH: criticalPathDir(tmp), DTX_BENCH_STORE_PORTS: port };
}

/** Starts dtx (the coordinator under test when there is no --target) and waits until it answers. */
async function startDtx(opts: Options, tmp: string, dbPath: string, storeEnv: NodeJS.ProcessEnv, canPin: boolean, profileDir: string): Promise<{ child: Child; origin: string; command: string }> {
  const httpPort = await freePort();
  const grpcPort = await freePort();
  const entry = opts.build ? buildServer(tmp, REPO_ROOT) : ["--import", "tsx", "server/src/main.ts"];
  const nodeArgs = [
    ...opts.nodeFlags,
    ...(opts.profile ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : []),
    ...(opts.criticalPath ? ["--import", path.join(REPO_ROOT, "bench", "lib", "critical-path-hook.mjs")] : []),
    "--import", ORPHAN_GUARD,
    ...entry,
  ];
  const [cCmd, cArgs] = canPin ? taskset("0", opts.coordinatorNode, nodeArgs) : [opts.coordinatorNode, nodeArgs];
  const coordinatorEnv: NodeJS.ProcessEnv = {
    ...process.env,
    DTX_HTTP_PORT: String(httpPort),
    DTX_GRPC_PORT: String(grpcPort),
    DTX_HOST: "127.0.0.1",
    DTX_STORE_PATH: dbPath,
    DTX_LOG_LEVEL: "warn",
    DTX_STORE_SYNCHRONOUS: opts.synchronous,
    ...(opts.workers !== undefined ? { DTX_WORKERS: String(opts.workers) } : {}),
    ...(opts.criticalPath ? criticalPathEnv(tmp, storeEnv) : {}),
    ...storeEnv,
  };
  delete coordinatorEnv["DTX_CONFIG"];
  const child = spawnChild("coordinator", cCmd, cArgs, coordinatorEnv);
  child.onStdoutLine((line) => {
    // warn/error log lines from the coordinator are worth seeing while benchmarking.
    if (/"level":(40|50|60)/.test(line)) console.error(`[coordinator] ${line.slice(0, 500)}`);
  });
  const origin = `http://127.0.0.1:${httpPort}`;
  await waitForHttp(child, `${origin}/api/ping`, 30_000);
  return { child, origin, command: `${cCmd} ${cArgs.join(" ")}` };
}

/**
 * --seed-finished: fills the (migrated) store with finished sagas before the coordinator starts,
 * updated between 6 days and 1 hour ago, so the coordinator's retention (7 days) keeps them all.
 * Returns the seconds it took.
 */
async function seedStore(opts: Options, dbPath: string, storeEnv: Record<string, string>, runId: string): Promise<number | null> {
  if (opts.seedFinished === 0) return null;
  const hour = 3600 * 1000;
  const spec = { count: opts.seedFinished, newest: Date.now() - hour, spanMs: 6 * 24 * hour - hour, prefix: `seed-${runId}-` };
  const t0 = performance.now();
  console.log(`saga-bench: seeding ${opts.seedFinished} finished sagas (+${2 * opts.seedFinished} branch rows) into ${opts.store}...`);
  if (opts.store === "sqlite") await seedSqlite(dbPath, spec);
  else await seedPostgres(storeEnv["DTX_STORE_URL"] ?? "", storeEnv["DTX_STORE_SCHEMA"] ?? "public", spec);
  const seconds = (performance.now() - t0) / 1000;
  console.log(`saga-bench: seeded in ${seconds.toFixed(1)} s`);
  return round(seconds, 1);
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const started = new Date();
  const stamp = started.toISOString().replace(/[:.]/g, "-");
  const runId = `${process.pid.toString(36)}${Date.now().toString(36)}`;
  const tmp = mkdtempSync(path.join(os.tmpdir(), "dtx-bench-"));
  tempDirs.push(tmp);
  const dbPath = path.join(tmp, "dtx.db");
  TARGETS = { ...BASE_TARGETS, throughputC64: THROUGHPUT_C64[opts.store] };
  // With --target the external coordinator has its own store: nothing to create or drop here.
  const area = opts.target === undefined
    ? await openBenchStore(opts.store, opts.storeUrl, runId)
    : { env: {}, describe: `${opts.store} (managed by the external coordinator)`, drop: async () => undefined };
  const profileDir = path.join(opts.profileDir, stamp);

  const canPin = opts.pin && tasksetAvailable();
  if (opts.pin && !canPin) console.error("saga-bench: --pin requested but taskset is not usable; running unpinned");
  if (canPin) {
    // The driver (this process, all threads) shares CPU 1 with the participant.
    execFileSync("taskset", ["-a", "-cp", "1", String(process.pid)], { stdio: "ignore" });
  }

  try {
    // Participant.
    const participantArgs = ["--import", "tsx", "bench/noop-participant.ts", "0"];
    const [pCmd, pArgs] = canPin ? taskset("1", process.execPath, participantArgs) : [process.execPath, participantArgs];
    const participant = spawnChild("participant", pCmd, pArgs, { ...process.env });
    const pLine = await waitForLine(participant, (l) => l.includes("participant listening"), 30_000);
    const participantPort = (JSON.parse(pLine) as { port: number }).port;

    const seedSeconds = await seedStore(opts, dbPath, area.env, runId);

    // Coordinator: spawn dtx, or use the --target one.
    const external = opts.target === undefined ? undefined : new URL(opts.target);
    const dtx = external ? undefined : await startDtx(opts, tmp, dbPath, area.env, canPin, profileDir);
    const coordinator = dtx?.child;
    const origin = external ? external.origin : (dtx?.origin ?? "");
    const submitPath = external ? `${external.pathname}/submit` : SUBMIT_PATH;
    // dtm and dtx both serve …/newGid.
    if (external) await waitFor200(`${opts.target}/newGid`, 10_000);

    const commandLine = `npx tsx bench/saga-bench.ts ${process.argv.slice(2).join(" ")}`.trim();
    const coordinatorPid = coordinator?.pid ?? opts.targetPid;
    const who = external ? `external coordinator ${opts.targetName}${opts.targetPid ? ` pid ${opts.targetPid}` : " (pid unknown: no CPU/RSS figures)"} at ${opts.target}` : `coordinator pid ${coordinatorPid} on ${origin}`;
    console.log(`saga-bench: ${who} (${opts.store === "sqlite" && !external ? `sqlite ${dbPath}, synchronous=${opts.synchronous}` : area.describe}), participant pid ${participant.pid} on :${participantPort}`);
    console.log(`saga-bench: ${opts.startWarmup > 0 ? `start warm-up ${opts.startWarmup}s, then ` : ""}warm-up ${opts.warmup}s + measure ${opts.seconds}s for C = ${opts.concurrency.join(", ")}; pinning ${canPin ? "on" : "off"}; coordinator ${external ? "external" : opts.build ? "compiled (tsc, plain node)" : "via tsx"}${opts.profile ? `; profiling into ${profileDir}` : ""}`);

    const procs: Procs = { coordinator, coordinatorPid, participant, coordinatorOrigin: origin, submitPath, participantPort };
    const results: LevelResult[] = [];
    for (const [level, c] of opts.concurrency.entries()) {
      if (interrupted) break;
      const r = await runLevel(level, c, opts, procs, runId);
      results.push(r);
      console.log(`  C=${c}: ${fmt(r.throughput, 0)} sagas/s, p50 ${fmt(r.latencyMs.p50, 2)} ms, p99 ${fmt(r.latencyMs.p99, 2)} ms, errors ${r.errors}, coord RSS max ${fmt(r.coordinator.rssMaxMB)} MB, coord CPU ${fmt(r.coordinator.cpuPct, 0)}%`);
      if (r.firstError) console.log(`    first error: ${r.firstError}`);
      if (!coordinatorAlive(procs)) throw new Error(`coordinator died during C=${c}${coordinator ? `\n${coordinator.stderrTail()}` : ""}`);
      await sleep(500);
    }
    if (interrupted) return;

    const dbBytes = external ? 0 : ["", "-wal"].reduce((s, suffix) => s + (existsSync(dbPath + suffix) ? statSync(dbPath + suffix).size : 0), 0);

    // Stop the coordinator gracefully (this is when --cpu-prof writes its profile).
    const exit = coordinator ? await stopChild(coordinator, opts.profile ? "SIGINT" : "SIGTERM", 20_000) : null;
    await stopChild(participant, "SIGTERM", 5000);
    if (opts.criticalPath) {
      // The hook writes its stamps when each coordinator process exits.
      const events = readCriticalPathEvents(criticalPathDir(tmp));
      if (events.length === 0) console.error("saga-bench: --critical-path: the coordinator wrote no stamps (did it exit cleanly?)");
      for (const r of results) if (r.concurrency === 1) r.criticalPath = criticalPath(events, r.monotonicWindowUs);
    }

    const cpus = os.cpus();
    /** Results file stem: saga-<store>, or saga-<target-name>-<store> with --target; -empty for --empty-urls. */
    const name = `saga-${external ? `${opts.targetName}-` : ""}${opts.store}${opts.emptyUrls ? "-empty" : ""}${opts.seedFinished > 0 ? "-seeded" : ""}`;
    const coordinatorCommand = dtx ? dtx.command : `external: ${opts.target}`;
    const report = {
      benchmark: name,
      timestamp: started.toISOString(),
      command: commandLine,
      machine: {
        cpus: cpus.length,
        model: cpus[0]?.model ?? "unknown",
        node: process.version,
        platform: `${os.platform()} ${os.release()}`,
        arch: os.arch(),
        totalMemMB: Math.round(os.totalmem() / 1024 / 1024),
        loadavgAtStart: os.loadavg().map((n) => round(n, 2)),
      },
      config: {
        store: opts.store,
        ...(opts.store === "sqlite" ? { synchronous: opts.synchronous } : { storeServer: area.describe }),
        pinning: canPin ? { enabled: true, coordinatorCpus: "0", participantCpus: "1", driverCpus: "1" } : { enabled: false },
        coordinatorNodeFlags: opts.nodeFlags,
        coordinatorNodeVersion: opts.target !== undefined ? null : nodeVersionOf(opts.coordinatorNode),
        coordinatorRuntime: opts.target !== undefined ? `external ${opts.targetName}` : opts.build ? "tsc-compiled JS on plain node" : "node --import tsx (TypeScript compiled on load)",
        ...(opts.target !== undefined ? { target: opts.target, targetName: opts.targetName, targetPid: opts.targetPid ?? null } : {}),
        warmupSeconds: opts.warmup,
        startWarmupSeconds: opts.startWarmup,
        measureSeconds: opts.seconds,
        concurrency: opts.concurrency,
        profile: opts.profile,
        criticalPath: opts.criticalPath,
        workload: `saga with 2 branches (action+compensate each), payloads {} , wait_result: true; ${opts.emptyUrls ? "empty branch URLs (no branch calls, as dtm's benchEmptyUrl)" : "no-op node:http participant"}; closed loop, one undici Pool with connections = C`,
        coordinatorCommand,
        sameCoordinatorForAllLevels: true,
        seedFinished: opts.seedFinished,
        seedSeconds,
      },
      results,
      targets: evaluateTargets(results),
      coordinatorExit: exit,
      dbBytesAfterRun: dbBytes,
    };

    mkdirSync(opts.outDir, { recursive: true });
    // A profiled or stamped run is slowed down by its instruments, so it does not replace "latest".
    const instrumented = opts.profile || opts.criticalPath;
    const base = `${name}${opts.profile ? "-profile" : ""}${opts.criticalPath ? "-critical-path" : ""}-${stamp}.json`;
    const outFile = path.join(opts.outDir, base);
    writeFileSync(outFile, `${JSON.stringify(report, null, 2)}\n`);
    if (!instrumented) writeFileSync(path.join(opts.outDir, `${name}-latest.json`), `${JSON.stringify(report, null, 2)}\n`);

    console.log("");
    console.log(`${report.machine.cpus} x ${report.machine.model}, node ${report.machine.node}, ${opts.store === "sqlite" ? `sqlite synchronous=${opts.synchronous}` : `store ${opts.store}`}, pinning ${canPin ? "on" : "off"}, coordinator ${external ? `external ${opts.targetName}` : opts.build ? "compiled" : "via tsx"}${opts.profile ? ", PROFILING (numbers are slowed by the profiler)" : ""}`);
    console.log("");
    console.log(markdownTable(results));
    console.log("");
    const t = report.targets as ReturnType<typeof evaluateTargets>;
    const mark = (met: unknown): string => (met ? "met" : "NOT met");
    const tc = t["throughputC64"] as { value: number; met: boolean; stretchMet: boolean } | null;
    const tp = t["p50C1"] as { value: number | null; met: boolean } | null;
    const tr = t["coordinatorRss"] as { value: number; met: boolean };
    console.log(`targets: C=64 >= ${TARGETS.throughputC64}/s: ${tc ? `${mark(tc.met)} (${fmt(tc.value, 0)}; stretch ${TARGETS.throughputC64Stretch}: ${mark(tc.stretchMet)})` : "not run"}; ` +
      `p50 at C=1 <= ${TARGETS.p50C1Ms} ms: ${tp ? `${mark(tp.met)} (${fmt(tp.value, 2)})` : "not run"}; ` +
      `coordinator RSS < ${TARGETS.rssMaxMB} MB: ${mark(tr.met)} (${fmt(tr.value)})`);
    const busiest = Math.max(...results.map((r) => r.otherCpuPct ?? 0));
    if (busiest > 25) {
      console.log(`WARNING: other processes used up to ${busiest.toFixed(0)}% of a core during the measured phases (column "other CPU %"); the figures understate what the coordinator can do on an idle machine.`);
    }
    for (const r of results) if (r.criticalPath) console.log(`\n${formatCriticalPath(r.concurrency, r.criticalPath)}`);
    console.log(`results: ${path.relative(process.cwd(), outFile)}${instrumented ? "" : ` (and ${name}-latest.json)`}`);

    if (opts.profile) {
      if (exit && exit.code !== 0) console.error(`saga-bench: coordinator exited with code ${exit.code}, signal ${exit.signal}; the profile may be missing`);
      const file = newestProfile(profileDir);
      if (!file) {
        console.error(`saga-bench: no .cpuprofile found in ${profileDir}`);
      } else {
        console.log(`\nCPU profile: ${file}\n(whole process life; open it in Chrome DevTools > Performance, or: npx tsx bench/top-functions.ts ${file} --inclusive --results ${path.relative(process.cwd(), outFile)})`);
        console.log("Summary of the measured phases only (start-up, warm-up and shutdown excluded):\n");
        console.log(formatSummary(summarize(loadProfile(file), results.map((r) => r.monotonicWindowUs)), 25));
      }
    }
  } finally {
    await stopAll();
    removeTempDirs();
    await area.drop();
  }
}

main().catch(async (error: unknown) => {
  console.error(`saga-bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  await stopAll();
  process.exit(1);
});
