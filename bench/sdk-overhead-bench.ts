/**
 * What the SDK adds over a raw HTTP call (issue 7, item 7). See bench/README.md.
 *
 *   npx tsx bench/sdk-overhead-bench.ts [--seconds 5] [--warmup 2] [--concurrency 1,16]
 *                                       [--round-ms 1000] [--out DIR]
 *
 * Starts the coordinator (`node --import tsx server/src/main.ts`, temp SQLite, DTX_LOG_LEVEL=warn)
 * and the no-op participant (bench/noop-participant.ts), each in its own child process, so that
 * process.cpuUsage() of this driver counts the client side only. Then, for each C, closed loop with
 * C workers, it runs these variants in interleaved rounds (ABBA order, `--round-ms` each, until
 * every variant has `--seconds` of measured time), after `--warmup` seconds per variant:
 *
 *   saga-raw-fetch   fetch POST /api/dtmsvr/submit, body a prebuilt template string (wait_result)
 *   saga-raw-undici  the same with an undici Pool (connections = C): floor of the HTTP stack
 *   saga-sdk         new Saga(client, gid, { waitResult: true }).add(..).add(..).submit()
 *   newGid-raw-fetch fetch GET /api/dtmsvr/newGid, res.json()
 *   newGid-sdk       client.newGid()
 *
 * The SDK talks through the global fetch, so saga-sdk vs saga-raw-fetch (and newGid-sdk vs
 * newGid-raw-fetch) isolates what the SDK's own code adds on the same HTTP stack.
 */
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { Pool, request } from "undici";
import { DtxClient, Saga } from "../sdk/src/index.ts";
import { forEachLine, freePort, percentile, sleep } from "./lib/util.ts";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Preloaded into the coordinator: stop when the driver's stdin pipe closes (driver died). */
const ORPHAN_GUARD = `data:text/javascript,${encodeURIComponent(
  'const stop=()=>process.kill(process.pid,"SIGTERM");process.stdin.on("end",stop);process.stdin.on("error",stop);process.stdin.resume();',
)}`;

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  seconds: number;
  warmup: number;
  concurrency: number[];
  roundMs: number;
  outDir: string;
}

const USAGE = `usage: npx tsx bench/sdk-overhead-bench.ts [options]
  --seconds N         measured seconds per variant and concurrency level (default 5)
  --warmup N          warm-up seconds per variant and level (default 2)
  --concurrency LIST  comma-separated levels (default 1,16)
  --round-ms N        length of one interleaved round in ms (default 1000)
  --out DIR           where sdk-overhead-latest.json goes (default bench/results)`;

function fail(message: string): never {
  console.error(`sdk-overhead-bench: ${message}`);
  process.exit(2);
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { seconds: 5, warmup: 2, concurrency: [1, 16], roundMs: 1000, outDir: path.join(REPO_ROOT, "bench", "results") };
  const num = (text: string | undefined, flag: string, min: number): number => {
    const n = Number(text);
    if (text === undefined || !Number.isFinite(n) || n < min) fail(`${flag} needs a number >= ${min}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i] ?? "";
    const eq = raw.indexOf("=");
    const flag = raw.startsWith("--") && eq > 0 ? raw.slice(0, eq) : raw;
    const next = (): string | undefined => (raw.startsWith("--") && eq > 0 ? raw.slice(eq + 1) : argv[++i]);
    switch (flag) {
      case "--seconds": opts.seconds = num(next(), flag, 0.1); break;
      case "--warmup": opts.warmup = num(next(), flag, 0); break;
      case "--round-ms": opts.roundMs = num(next(), flag, 50); break;
      case "--concurrency": {
        const list = (next() ?? "").split(",").map((s) => Number(s.trim()));
        if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n <= 0)) fail("--concurrency must be a list of positive integers, e.g. 1,16");
        opts.concurrency = list;
        break;
      }
      case "--out": opts.outDir = path.resolve(next() ?? fail("--out needs a value")); break;
      case "-h":
      case "--help":
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        fail(`unknown argument ${raw}\n${USAGE}`);
    }
  }
  return opts;
}

// ---------------------------------------------------------------------------------------------
// Child processes

interface Child {
  name: string;
  proc: ChildProcess;
  pid: number;
  exited: Promise<void>;
  stderrTail: () => string;
  onStdoutLine: (fn: (line: string) => void) => void;
}

const children = new Set<Child>();
const tempDirs: string[] = [];

function alive(child: Child): boolean {
  return child.proc.exitCode === null && child.proc.signalCode === null;
}

function spawnChild(name: string, args: string[], env: NodeJS.ProcessEnv): Child {
  // stdin is a pipe we never write to: if this driver dies, the child sees EOF and stops.
  const proc = spawn(process.execPath, args, { cwd: REPO_ROOT, env, stdio: ["pipe", "pipe", "pipe"] });
  if (proc.pid === undefined) throw new Error(`could not start ${name}`);
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
  const exited = new Promise<void>((resolve) => {
    proc.on("exit", () => resolve());
    proc.on("error", () => resolve());
  });
  const child: Child = { name, proc, pid: proc.pid, exited, stderrTail: () => stderr.trim(), onStdoutLine: (fn) => listeners.push(fn) };
  children.add(child);
  void exited.then(() => children.delete(child));
  return child;
}

async function stopChild(child: Child, graceMs = 5000): Promise<void> {
  if (alive(child)) child.proc.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), graceMs);
  });
  const first = await Promise.race([child.exited, timeout]);
  clearTimeout(timer);
  if (first === "timeout" && alive(child)) {
    child.proc.kill("SIGKILL");
    await child.exited;
  }
}

async function stopAll(): Promise<void> {
  await Promise.all([...children].map((c) => stopChild(c)));
}

function removeTempDirs(): void {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

process.on("exit", () => {
  for (const child of children) if (alive(child)) child.proc.kill("SIGKILL");
  removeTempDirs();
});
let interrupted = false;
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.error(`\nsdk-overhead-bench: ${sig}, stopping children...`);
    void stopAll().finally(() => process.exit(130));
  });
}



function waitForLine(child: Child, match: (line: string) => boolean, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${child.name} not ready after ${timeoutMs} ms\n${child.stderrTail()}`)), timeoutMs);
    child.onStdoutLine((line) => {
      if (match(line)) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    void child.exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${child.name} exited early\n${child.stderrTail()}`));
    });
  });
}

/**
 * Ready when the coordinator logs `dtx listening` (only printed at log level info or lower) or
 * answers GET /api/ping, whichever comes first: at DTX_LOG_LEVEL=warn the line is filtered out.
 */
async function waitForCoordinator(child: Child, origin: string, timeoutMs: number): Promise<void> {
  let done = false;
  const line = waitForLine(child, (l) => l.includes('"msg":"dtx listening"'), timeoutMs).then(() => undefined);
  const ping = (async (): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!done) {
      if (!alive(child)) throw new Error(`coordinator exited early\n${child.stderrTail()}`);
      try {
        const res = await request(`${origin}/api/ping`, { headersTimeout: 1000, bodyTimeout: 1000 });
        await res.body.dump();
        if (res.statusCode === 200) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`coordinator did not answer within ${timeoutMs} ms\n${child.stderrTail()}`);
      await sleep(100);
    }
  })();
  line.catch(() => {});
  ping.catch(() => {});
  try {
    await Promise.any([line, ping]);
  } finally {
    done = true;
  }
}

// ---------------------------------------------------------------------------------------------
// Variants and rounds

type Kind = "saga" | "newGid";

interface Variant {
  name: string;
  kind: Kind;
  /** One call; throws on any failure. */
  call: (gid: string) => Promise<void>;
}

interface Accum {
  latencies: number[];
  calls: number;
  errors: number;
  firstError: string | null;
  wallMs: number;
  cpuUserUs: number;
  cpuSystemUs: number;
}

interface VariantResult {
  variant: string;
  kind: Kind;
  concurrency: number;
  rounds: number;
  measuredSeconds: number;
  calls: number;
  errors: number;
  firstError: string | null;
  throughput: number;
  latencyMs: { mean: number | null; p50: number | null; p90: number | null; p99: number | null; max: number | null };
  /** Client (this process, all threads) CPU per completed call, in µs. */
  cpuUsPerCall: { total: number | null; user: number | null; system: number | null };
  /** Client CPU in % of one core over the measured rounds. */
  clientCpuPct: number | null;
}

let gidSeq = 0;
const runId = `${process.pid.toString(36)}${Date.now().toString(36)}`;

async function runRound(v: Variant, c: number, ms: number, coordinator: Child, acc: Accum | undefined): Promise<void> {
  let stop = false;
  const timer = setTimeout(() => {
    stop = true;
  }, ms);
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (!stop) {
      const gid = `sdkoh-${runId}-${gidSeq++}`;
      const s = performance.now();
      try {
        await v.call(gid);
        latencies.push(performance.now() - s);
      } catch (error) {
        errors++;
        firstError ??= error instanceof Error ? `${error.name}: ${error.message}` : String(error);
        if (!alive(coordinator)) stop = true;
        else await sleep(10);
      }
    }
  };
  await Promise.all(Array.from({ length: c }, () => worker()));
  clearTimeout(timer);
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  if (!acc) return;
  for (const l of latencies) acc.latencies.push(l);
  acc.calls += latencies.length;
  acc.errors += errors;
  acc.firstError ??= firstError;
  acc.wallMs += wallMs;
  acc.cpuUserUs += cpu.user;
  acc.cpuSystemUs += cpu.system;
}


const round = (n: number | undefined, digits = 2): number | null => (n === undefined || !Number.isFinite(n) ? null : Number(n.toFixed(digits)));

function summarize(v: Variant, c: number, rounds: number, acc: Accum): VariantResult {
  const sorted = Float64Array.from(acc.latencies).sort();
  const n = acc.calls;
  const mean = n ? acc.latencies.reduce((a, b) => a + b, 0) / n : NaN;
  const wall = acc.wallMs / 1000;
  return {
    variant: v.name,
    kind: v.kind,
    concurrency: c,
    rounds,
    measuredSeconds: round(wall, 3) ?? 0,
    calls: n,
    errors: acc.errors,
    firstError: acc.firstError,
    throughput: round(n / wall, 1) ?? 0,
    latencyMs: { mean: round(mean, 4), p50: round(percentile(sorted, 0.5), 4), p90: round(percentile(sorted, 0.9), 4), p99: round(percentile(sorted, 0.99), 4), max: round(sorted[sorted.length - 1], 3) },
    cpuUsPerCall: { total: round((acc.cpuUserUs + acc.cpuSystemUs) / n, 1), user: round(acc.cpuUserUs / n, 1), system: round(acc.cpuSystemUs / n, 1) },
    clientCpuPct: round((100 * (acc.cpuUserUs + acc.cpuSystemUs)) / 1e6 / wall, 1),
  };
}

interface Overhead {
  concurrency: number;
  sdk: string;
  baseline: string;
  throughputPct: number | null;
  p50AddedMs: number | null;
  p50AddedPct: number | null;
  p99AddedMs: number | null;
  p99AddedPct: number | null;
  meanAddedMs: number | null;
  meanAddedPct: number | null;
  cpuAddedUsPerCall: number | null;
  cpuAddedPct: number | null;
}

function overhead(sdk: VariantResult, base: VariantResult): Overhead {
  const diff = (a: number | null, b: number | null, digits: number): number | null => (a === null || b === null ? null : round(a - b, digits));
  const pct = (a: number | null, b: number | null): number | null => (a === null || b === null || b === 0 ? null : round((100 * (a - b)) / b, 1));
  return {
    concurrency: sdk.concurrency,
    sdk: sdk.variant,
    baseline: base.variant,
    throughputPct: pct(sdk.throughput, base.throughput),
    p50AddedMs: diff(sdk.latencyMs.p50, base.latencyMs.p50, 4),
    p50AddedPct: pct(sdk.latencyMs.p50, base.latencyMs.p50),
    p99AddedMs: diff(sdk.latencyMs.p99, base.latencyMs.p99, 4),
    p99AddedPct: pct(sdk.latencyMs.p99, base.latencyMs.p99),
    meanAddedMs: diff(sdk.latencyMs.mean, base.latencyMs.mean, 4),
    meanAddedPct: pct(sdk.latencyMs.mean, base.latencyMs.mean),
    cpuAddedUsPerCall: diff(sdk.cpuUsPerCall.total, base.cpuUsPerCall.total, 1),
    cpuAddedPct: pct(sdk.cpuUsPerCall.total, base.cpuUsPerCall.total),
  };
}

// ---------------------------------------------------------------------------------------------
// Report

function fmt(n: number | null | undefined, digits = 1): string {
  return n === null || n === undefined ? "n/a" : n.toFixed(digits);
}

function signed(n: number | null, digits: number, unit = ""): string {
  return n === null ? "n/a" : `${n >= 0 ? "+" : ""}${n.toFixed(digits)}${unit}`;
}

function resultsTable(results: VariantResult[]): string {
  const lines = [
    "| C | variant | calls/s | p50 ms | p99 ms | mean ms | client CPU µs/call | client CPU % | errors |",
    "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of results) {
    lines.push(`| ${r.concurrency} | ${r.variant} | ${fmt(r.throughput, 0)} | ${fmt(r.latencyMs.p50, 3)} | ${fmt(r.latencyMs.p99, 3)} | ${fmt(r.latencyMs.mean, 3)} | ${fmt(r.cpuUsPerCall.total, 0)} | ${fmt(r.clientCpuPct, 0)} | ${r.errors} |`);
  }
  return lines.join("\n");
}

function overheadTable(rows: Overhead[]): string {
  const lines = [
    "| C | SDK vs baseline | throughput | p50 added | p99 added | mean added | client CPU added per call |",
    "|---:|---|---:|---:|---:|---:|---:|",
  ];
  for (const o of rows) {
    lines.push(`| ${o.concurrency} | ${o.sdk} vs ${o.baseline} | ${signed(o.throughputPct, 1, " %")} | ${signed(o.p50AddedMs, 3, " ms")} (${signed(o.p50AddedPct, 1, " %")}) | ${signed(o.p99AddedMs, 3, " ms")} (${signed(o.p99AddedPct, 1, " %")}) | ${signed(o.meanAddedMs, 3, " ms")} (${signed(o.meanAddedPct, 1, " %")}) | ${signed(o.cpuAddedUsPerCall, 0, " µs")} (${signed(o.cpuAddedPct, 1, " %")}) |`);
  }
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const started = new Date();
  const loadStart = os.loadavg();
  const tmp = mkdtempSync(path.join(os.tmpdir(), "dtx-sdkoh-"));
  tempDirs.push(tmp);

  try {
    const participant = spawnChild("participant", ["--import", "tsx", "bench/noop-participant.ts", "0"], { ...process.env });
    const pLine = await waitForLine(participant, (l) => l.includes("participant listening"), 30_000);
    const participantPort = (JSON.parse(pLine) as { port: number }).port;

    const httpPort = await freePort();
    const grpcPort = await freePort();
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      DTX_HTTP_PORT: String(httpPort),
      DTX_GRPC_PORT: String(grpcPort),
      DTX_HOST: "127.0.0.1",
      DTX_STORE_PATH: path.join(tmp, "dtx.db"),
      DTX_LOG_LEVEL: "warn",
    };
    delete env["DTX_CONFIG"];
    const coordinator = spawnChild("coordinator", ["--import", ORPHAN_GUARD, "--import", "tsx", "server/src/main.ts"], env);
    coordinator.onStdoutLine((line) => {
      if (/"level":(40|50|60)/.test(line)) console.error(`[coordinator] ${line.slice(0, 500)}`);
    });
    const origin = `http://127.0.0.1:${httpPort}`;
    const api = `${origin}/api/dtmsvr`;
    await waitForCoordinator(coordinator, origin, 30_000);
    console.log(`sdk-overhead-bench: coordinator pid ${coordinator.pid} on ${origin}, participant pid ${participant.pid} on :${participantPort}`);

    const busi = `http://127.0.0.1:${participantPort}/api/busi`;
    const [a, ac, b, bc] = [`${busi}/TransOut`, `${busi}/TransOutRevert`, `${busi}/TransIn`, `${busi}/TransInRevert`];
    const stepsJson = JSON.stringify([{ action: a, compensate: ac }, { action: b, compensate: bc }]);
    // The same JSON the SDK sends (keys in the same order), prebuilt except for the gid.
    const rawBody = (gid: string): string =>
      `{"gid":"${gid}","trans_type":"saga","steps":${stepsJson},"payloads":["{}","{}"],"protocol":"","wait_result":true,"concurrent":false}`;
    const client = new DtxClient({ server: api });
    const submitUrl = `${api}/submit`;
    const newGidUrl = `${api}/newGid`;

    const results: VariantResult[] = [];
    const overheads: Overhead[] = [];
    for (const c of opts.concurrency) {
      if (interrupted) break;
      const pool = new Pool(origin, { connections: c, pipelining: 1, keepAliveTimeout: 60_000 });
      const variants: Variant[] = [
        {
          name: "saga-raw-fetch",
          kind: "saga",
          call: async (gid) => {
            const res = await fetch(submitUrl, { method: "POST", headers: { "content-type": "application/json" }, body: rawBody(gid) });
            const text = await res.text();
            if (res.status !== 200 || !text.includes("SUCCESS")) throw new Error(`HTTP ${res.status}: ${text.slice(0, 300)}`);
          },
        },
        {
          name: "saga-raw-undici",
          kind: "saga",
          call: async (gid) => {
            const res = await pool.request({ path: "/api/dtmsvr/submit", method: "POST", headers: { "content-type": "application/json" }, body: rawBody(gid) });
            const text = await res.body.text();
            if (res.statusCode !== 200 || !text.includes("SUCCESS")) throw new Error(`HTTP ${res.statusCode}: ${text.slice(0, 300)}`);
          },
        },
        {
          name: "saga-sdk",
          kind: "saga",
          call: (gid) => new Saga(client, gid, { waitResult: true }).add(a, ac, {}).add(b, bc, {}).submit(),
        },
        {
          name: "newGid-raw-fetch",
          kind: "newGid",
          call: async () => {
            const res = await fetch(newGidUrl);
            const json = (await res.json()) as { gid?: unknown };
            if (res.status !== 200 || typeof json.gid !== "string" || json.gid === "") throw new Error(`HTTP ${res.status}: no gid`);
          },
        },
        {
          name: "newGid-sdk",
          kind: "newGid",
          call: async () => {
            await client.newGid();
          },
        },
      ];

      // Warm-up: interleaved too, not recorded.
      const warmRounds = Math.max(1, Math.round((opts.warmup * 1000) / opts.roundMs));
      if (opts.warmup > 0) {
        for (let r = 0; r < warmRounds && !interrupted; r++) {
          for (const v of variants) await runRound(v, c, (opts.warmup * 1000) / warmRounds, coordinator, undefined);
        }
      }
      // Measured: ABBA interleaving (forward order on even rounds, reversed on odd) to cancel drift.
      const rounds = Math.max(1, Math.round((opts.seconds * 1000) / opts.roundMs));
      const roundMs = (opts.seconds * 1000) / rounds;
      const accs = variants.map((): Accum => ({ latencies: [], calls: 0, errors: 0, firstError: null, wallMs: 0, cpuUserUs: 0, cpuSystemUs: 0 }));
      for (let r = 0; r < rounds && !interrupted; r++) {
        const order = variants.map((_, i) => i);
        if (r % 2 === 1) order.reverse();
        for (const i of order) {
          const v = variants[i];
          if (v) await runRound(v, c, roundMs, coordinator, accs[i]);
        }
        if (!alive(coordinator)) throw new Error(`coordinator died during C=${c}\n${coordinator.stderrTail()}`);
      }
      await pool.close();
      if (interrupted) return;

      const level = variants.map((v, i) => summarize(v, c, rounds, accs[i] ?? { latencies: [], calls: 0, errors: 0, firstError: null, wallMs: 1, cpuUserUs: 0, cpuSystemUs: 0 }));
      results.push(...level);
      const by = (name: string): VariantResult | undefined => level.find((r) => r.variant === name);
      const pairs: [string, string][] = [["saga-sdk", "saga-raw-fetch"], ["saga-sdk", "saga-raw-undici"], ["newGid-sdk", "newGid-raw-fetch"]];
      for (const [s, base] of pairs) {
        const sr = by(s);
        const br = by(base);
        if (sr && br) overheads.push(overhead(sr, br));
      }
      for (const r of level) {
        console.log(`  C=${c} ${r.variant.padEnd(16)} ${fmt(r.throughput, 0).padStart(6)}/s  p50 ${fmt(r.latencyMs.p50, 3)} ms  p99 ${fmt(r.latencyMs.p99, 3)} ms  CPU ${fmt(r.cpuUsPerCall.total, 0)} µs/call  errors ${r.errors}`);
        if (r.firstError) console.log(`    first error: ${r.firstError}`);
      }
    }

    await stopChild(coordinator, 10_000);
    await stopChild(participant);

    const cpus = os.cpus();
    const report = {
      benchmark: "sdk-overhead",
      timestamp: started.toISOString(),
      command: `npx tsx bench/sdk-overhead-bench.ts ${process.argv.slice(2).join(" ")}`.trim(),
      machine: {
        cpus: cpus.length,
        model: cpus[0]?.model ?? "unknown",
        node: process.version,
        platform: `${os.platform()} ${os.release()}`,
        loadavgAtStart: loadStart.map((n) => round(n, 2)),
        loadavgAtEnd: os.loadavg().map((n) => round(n, 2)),
      },
      config: {
        warmupSecondsPerVariant: opts.warmup,
        measureSecondsPerVariant: opts.seconds,
        roundMs: opts.roundMs,
        concurrency: opts.concurrency,
        interleaving: "all variants of one level in rounds, forward order on even rounds and reversed on odd (ABBA)",
        workload: "saga with 2 branches (action+compensate), payloads {}, wait_result: true, to a no-op node:http participant (child process); coordinator via node --import tsx on temp SQLite (synchronous full), DTX_LOG_LEVEL=warn",
        clientCpu: "process.cpuUsage() delta of the driver (all threads) over each round / calls completed in the round; coordinator and participant run in other processes",
        rawBody: "prebuilt template string with the same JSON the SDK sends",
      },
      results,
      overhead: overheads,
    };
    mkdirSync(opts.outDir, { recursive: true });
    const outFile = path.join(opts.outDir, "sdk-overhead-latest.json");
    writeFileSync(outFile, `${JSON.stringify(report, null, 2)}\n`);

    console.log("");
    console.log(`${cpus.length} x ${report.machine.model}, node ${process.version}, load avg ${report.machine.loadavgAtStart.join(" ")} -> ${report.machine.loadavgAtEnd.join(" ")}`);
    console.log("");
    console.log(resultsTable(results));
    console.log("");
    console.log(overheadTable(overheads));
    console.log("");
    console.log(`results: ${path.relative(process.cwd(), outFile)}`);
  } finally {
    await stopAll();
    removeTempDirs();
  }
}

main().catch(async (error: unknown) => {
  console.error(`sdk-overhead-bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  await stopAll();
  process.exit(1);
});
