/**
 * gRPC end-to-end benchmark: a two-branch saga submitted over dtmgimp.Dtm/Submit (wait_result)
 * whose branches are gRPC calls to a no-op gRPC participant, closed loop at concurrency C, on
 * SQLite. For comparison the same coordinator process also runs the HTTP equivalent (HTTP submit,
 * HTTP branches to bench/noop-participant.ts) in alternating rounds, so both figures come from the
 * same machine state.
 *
 *   npx tsx bench/grpc-saga-bench.ts [--seconds 8] [--warmup 2] [--concurrency 64] [--rounds 2]
 *                                    [--no-http | --no-grpc] [--synchronous full|normal] [--out DIR]
 *                                    [--profile DIR]   (coordinator CPU profile, see bench/top-functions.ts)
 *                                    [--grpc-js-peers] (grpc-js driver and participant; default: plain node:http2)
 *                                    [--build] [--node-flags "FLAGS"] (run the coordinator as `npm start` does:
 *                                    tsc-compiled, plain node, e.g. --node-flags "--max-semi-space-size=8 --max-old-space-size=160")
 *
 * Processes: the coordinator (`node --import tsx server/src/main.ts`), the gRPC participant (this
 * file with `participant`), the HTTP participant (bench/noop-participant.ts), and this driver.
 * Results: printed, and written to bench/results/grpc-saga-sqlite-<time>.json (+ -latest.json).
 */
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import { connect, createServer as createNetServer } from "node:net";
import type { Socket } from "node:net";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import type { sendUnaryData, ServerUnaryCall, ServiceDefinition, StatusObject } from "@grpc/grpc-js";
import { Channel, credentials, Metadata, Server, ServerCredentials, status } from "@grpc/grpc-js";
import type { MethodDefinition } from "@grpc/proto-loader";
import { Pool } from "undici";
import { loadDtmProto } from "../server/src/api/grpc/proto.ts";
import { buildServer } from "./lib/build-server.ts";
import { forEachLine, freePort, median, percentile, sleep } from "./lib/util.ts";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const METHODS = ["TransOut", "TransOutRevert", "TransIn", "TransInRevert"];

// ---------------------------------------------------------------------------------------------
// Participant mode: a no-op `busi.Busi` gRPC server with identity (de)serializers.

/**
 * The default participant: plain node:http2, no gRPC library, the gRPC twin of
 * bench/noop-participant.ts (which is plain node:http for the same reason: it must cost as little
 * CPU as possible so it does not distort the coordinator's figures). It answers every call with
 * an empty message and grpc-status 0, as a Go (grpc-go) participant would, quickly.
 */
function runRawParticipant(): void {
  const EMPTY_MESSAGE = Buffer.from([0, 0, 0, 0, 0]); // uncompressed, length 0
  let calls = 0;
  const server = http2.createServer();
  server.on("connection", (socket: Socket) => socket.setNoDelay(true));
  server.on("stream", (stream) => {
    calls++;
    stream.on("data", () => {});
    stream.on("end", () => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(EMPTY_MESSAGE);
    });
    stream.on("error", () => {});
  });
  server.listen({ host: "127.0.0.1", port: 0 }, () => {
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : 0;
    process.stdout.write(`${JSON.stringify({ msg: "participant listening", port })}\n`);
  });
  const stop = (): void => {
    process.stdout.write(`${JSON.stringify({ msg: "participant calls", calls })}\n`);
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdin.on("end", stop);
  process.stdin.resume();
}

/** `--grpc-js-peers`: the participant as a grpc-js server (own TCP listener, TCP_NODELAY). */
function runParticipant(): void {
  const identity = (b: Buffer): Buffer => b;
  const empty = Buffer.alloc(0);
  const server = new Server();
  const definition: Record<string, unknown> = {};
  const implementation: Record<string, (call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) => void> = {};
  let calls = 0;
  for (const name of METHODS) {
    definition[name] = {
      path: `/busi.Busi/${name}`, requestStream: false, responseStream: false, originalName: name,
      requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity,
    };
    implementation[name] = (_call, cb) => {
      calls++;
      cb(null, empty);
    };
  }
  server.addService(definition as ServiceDefinition, implementation);
  // Own TCP listener with TCP_NODELAY, as the coordinator does (grpc-js's bindAsync leaves Nagle
  // on; Go participants have it off).
  const injector = server.createConnectionInjector(ServerCredentials.createInsecure());
  const listener = createNetServer({ noDelay: true }, (socket) => injector.injectConnection(socket));
  listener.listen({ host: "127.0.0.1", port: 0 }, () => {
    const address = listener.address();
    const port = typeof address === "object" && address ? address.port : 0;
    process.stdout.write(`${JSON.stringify({ msg: "participant listening", port })}\n`);
  });
  const stop = (): void => {
    process.stdout.write(`${JSON.stringify({ msg: "participant calls", calls })}\n`);
    listener.close();
    server.forceShutdown();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdin.on("end", stop);
  process.stdin.resume();
}

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  seconds: number;
  warmup: number;
  concurrency: number;
  rounds: number;
  http: boolean;
  /** false with --no-grpc: HTTP only (e.g. to profile the HTTP path alone). */
  grpc: boolean;
  synchronous: "full" | "normal";
  outDir: string;
  /** Directory for a --cpu-prof profile of the coordinator, if any. */
  profileDir: string | undefined;
  /** Use grpc-js for the driver and the participant instead of plain node:http2. */
  grpcJsPeers: boolean;
  /** Compile the coordinator with tsc and run it on plain node (as `npm start`), not through tsx. */
  build: boolean;
  nodeFlags: string[];
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { seconds: 8, warmup: 2, concurrency: 64, rounds: 2, http: true, grpc: true, synchronous: "full", outDir: path.join(REPO_ROOT, "bench", "results"), profileDir: undefined, grpcJsPeers: false, build: false, nodeFlags: [] };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) fail(`${flag} needs a value`);
      return v;
    };
    const num = (min: number): number => {
      const n = Number(next());
      if (!Number.isFinite(n) || n < min) fail(`${flag} must be a number >= ${min}`);
      return n;
    };
    switch (flag) {
      case "--seconds": opts.seconds = num(0.1); break;
      case "--warmup": opts.warmup = num(0); break;
      case "--concurrency": opts.concurrency = Math.floor(num(1)); break;
      case "--rounds": opts.rounds = Math.floor(num(1)); break;
      case "--no-http": opts.http = false; break;
      case "--no-grpc": opts.grpc = false; break;
      case "--synchronous": {
        const v = next();
        if (v !== "full" && v !== "normal") fail("--synchronous must be full or normal");
        opts.synchronous = v;
        break;
      }
      case "--out": opts.outDir = path.resolve(next()); break;
      case "--profile": opts.profileDir = path.resolve(next()); break;
      case "--grpc-js-peers": opts.grpcJsPeers = true; break;
      case "--build": opts.build = true; break;
      case "--node-flags": opts.nodeFlags = next().split(/\s+/).filter(Boolean); break;
      case "-h":
      case "--help":
        console.log("usage: npx tsx bench/grpc-saga-bench.ts [--seconds N] [--warmup N] [--concurrency C] [--rounds N] [--no-http | --no-grpc] [--synchronous full|normal] [--out DIR] [--profile DIR] [--grpc-js-peers] [--build] [--node-flags FLAGS]");
        process.exit(0);
        break;
      default:
        fail(`unknown argument ${flag}`);
    }
  }
  return opts;
}

function fail(message: string): never {
  console.error(`grpc-saga-bench: ${message}`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Children

interface Child {
  name: string;
  proc: ChildProcess;
  exited: Promise<void>;
  lines: (match: (line: string) => boolean, timeoutMs: number) => Promise<string>;
  stderr: () => string;
}

const children = new Set<Child>();
const tempDirs: string[] = [];

function spawnChild(name: string, args: string[], env: NodeJS.ProcessEnv): Child {
  // stdin stays an open pipe: if this driver dies, the child reads EOF and stops itself.
  const proc = spawn(process.execPath, args, { cwd: REPO_ROOT, env, stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  proc.stderr?.setEncoding("utf8");
  proc.stderr?.on("data", (d: string) => {
    stderr = (stderr + d).slice(-8000);
  });
  const seen: string[] = [];
  const listeners = new Set<(line: string) => void>();
  forEachLine(proc.stdout, (line) => {
    if (seen.length < 200) seen.push(line);
    if (/"level":(40|50|60)/.test(line)) console.error(`[${name}] ${line.slice(0, 400)}`);
    for (const fn of listeners) fn(line);
  });
  proc.stdin?.on("error", () => {});
  const exited = new Promise<void>((resolve) => proc.on("exit", () => resolve()));
  const child: Child = {
    name, proc, exited,
    stderr: () => stderr.trim(),
    lines: (match, timeoutMs) => new Promise((resolve, reject) => {
      const hit = seen.find(match);
      if (hit) return resolve(hit);
      const timer = setTimeout(() => reject(new Error(`${name}: no matching line after ${timeoutMs} ms\n${stderr}`)), timeoutMs);
      const fn = (line: string): void => {
        if (!match(line)) return;
        clearTimeout(timer);
        listeners.delete(fn);
        resolve(line);
      };
      listeners.add(fn);
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`${name} exited early\n${stderr}`));
      });
    }),
  };
  children.add(child);
  void exited.then(() => children.delete(child));
  return child;
}

async function stopChild(child: Child): Promise<void> {
  if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill("SIGTERM");
  const timer = setTimeout(() => child.proc.kill("SIGKILL"), 10_000);
  await child.exited;
  clearTimeout(timer);
}

process.on("exit", () => {
  for (const c of children) if (c.proc.exitCode === null) c.proc.kill("SIGKILL");
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => process.exit(130));



function cpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

function rssMB(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m?.[1] ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// One measured phase

interface PhaseResult {
  mode: "grpc" | "http";
  round: number;
  concurrency: number;
  measuredSeconds: number;
  completed: number;
  throughput: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  errors: number;
  firstError: string | null;
  coordinatorCpuPct: number | null;
  /** Coordinator CPU time per completed saga: steadier than throughput on a shared machine. */
  coordinatorCpuUsPerSaga: number | null;
  coordinatorRssMB: number | null;
  /** CPU of the participant serving this mode's branches, and of this driver; 100 = one core. */
  participantCpuPct: number | null;
  driverCpuPct: number;
}

type SubmitOnce = (gid: string) => Promise<string | null>; // null = success, else the error text


const r2 = (n: number): number => Math.round(n * 100) / 100;

async function runPhase(mode: "grpc" | "http", round: number, submit: SubmitOnce, opts: Options, coordinatorPid: number | undefined, participantPid: number | undefined, runId: string): Promise<PhaseResult> {
  let measureStart = Infinity;
  let measureEnd = Infinity;
  let stop = false;
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  const worker = async (w: number): Promise<void> => {
    for (let seq = 0; !stop; seq++) {
      const t0 = performance.now();
      let error: string | null;
      try {
        error = await submit(`gb-${runId}-${mode}${round}-w${w}-${seq}`);
      } catch (e) {
        error = e instanceof Error ? e.message : String(e);
      }
      const t1 = performance.now();
      if (t1 < measureStart || t1 > measureEnd) continue;
      if (error === null) latencies.push(t1 - t0);
      else {
        errors++;
        firstError ??= error.slice(0, 500);
      }
    }
  };
  const workers = Array.from({ length: opts.concurrency }, (_, w) => worker(w));
  await sleep(opts.warmup * 1000);
  const cpu0 = cpuSeconds(coordinatorPid);
  const pcpu0 = cpuSeconds(participantPid);
  const driver0 = process.cpuUsage();
  measureStart = performance.now();
  let rssMax = 0;
  const sampler = setInterval(() => {
    rssMax = Math.max(rssMax, rssMB(coordinatorPid) ?? 0);
  }, 250);
  await sleep(opts.seconds * 1000);
  measureEnd = performance.now();
  clearInterval(sampler);
  const cpu1 = cpuSeconds(coordinatorPid);
  const pcpu1 = cpuSeconds(participantPid);
  const driver = process.cpuUsage(driver0);
  stop = true;
  await Promise.all(workers);
  const wall = (measureEnd - measureStart) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  return {
    mode, round, concurrency: opts.concurrency, measuredSeconds: r2(wall), completed: latencies.length,
    throughput: Math.round((latencies.length / wall) * 10) / 10,
    latencyMs: {
      p50: r2(percentile(sorted, 0.5)), p90: r2(percentile(sorted, 0.9)), p99: r2(percentile(sorted, 0.99)),
      max: r2(sorted[sorted.length - 1] ?? NaN), mean: r2(latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length)),
    },
    errors, firstError,
    coordinatorCpuPct: cpu0 !== undefined && cpu1 !== undefined ? Math.round((100 * (cpu1 - cpu0)) / wall) : null,
    coordinatorCpuUsPerSaga: cpu0 !== undefined && cpu1 !== undefined && latencies.length > 0 ? Math.round(((cpu1 - cpu0) * 1e6) / latencies.length) : null,
    coordinatorRssMB: rssMax ? Math.round(rssMax) : null,
    participantCpuPct: pcpu0 !== undefined && pcpu1 !== undefined ? Math.round((100 * (pcpu1 - pcpu0)) / wall) : null,
    driverCpuPct: Math.round((driver.user + driver.system) / 1e4 / wall),
  };
}

/** The median, to 2 digits. */
function median2(values: number[]): number {
  return r2(median(values));
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  if (!opts.grpc && !opts.http) fail("--no-http and --no-grpc leave nothing to run");
  const started = new Date();
  const runId = `${process.pid.toString(36)}${Date.now().toString(36)}`;
  const tmp = mkdtempSync(path.join(os.tmpdir(), "dtx-grpc-bench-"));
  tempDirs.push(tmp);

  const grpcParticipant = spawnChild("grpc-participant", ["--import", "tsx", "bench/grpc-saga-bench.ts", opts.grpcJsPeers ? "participant-grpc-js" : "participant"], { ...process.env });
  const httpParticipant = opts.http ? spawnChild("http-participant", ["--import", "tsx", "bench/noop-participant.ts", "0"], { ...process.env }) : undefined;
  const portOf = async (c: Child): Promise<number> => (JSON.parse(await c.lines((l) => l.includes("participant listening"), 30_000)) as { port: number }).port;
  const grpcBusiPort = await portOf(grpcParticipant);
  const httpBusiPort = httpParticipant ? await portOf(httpParticipant) : 0;

  const httpPort = await freePort();
  const grpcPort = await freePort();
  const coordinatorEnv: NodeJS.ProcessEnv = {
    ...process.env,
    DTX_HOST: "127.0.0.1",
    DTX_HTTP_PORT: String(httpPort),
    DTX_GRPC_PORT: String(grpcPort),
    DTX_STORE_PATH: path.join(tmp, "dtx.db"),
    DTX_STORE_SYNCHRONOUS: opts.synchronous,
    DTX_LOG_LEVEL: "info",
  };
  delete coordinatorEnv["DTX_CONFIG"];
  const profileFlags = opts.profileDir ? ["--cpu-prof", `--cpu-prof-dir=${opts.profileDir}`] : [];
  const entry = opts.build ? buildServer(tmp, REPO_ROOT) : ["--import", "tsx", "server/src/main.ts"];
  const coordinator = spawnChild("coordinator", [...profileFlags, ...opts.nodeFlags, ...entry], coordinatorEnv);
  await coordinator.lines((l) => l.includes('"dtx listening"'), 30_000);

  // The load generator sends the same Submit bytes as any dtm gRPC client (the proto's serializer),
  // by default framed by hand on one plain node:http2 session, the gRPC twin of the HTTP side's
  // undici Pool: the driver should take as little CPU as possible from the coordinator on a small
  // machine. With --grpc-js-peers it calls straight on a grpc-js channel instead.
  const channel = new Channel(`127.0.0.1:${grpcPort}`, credentials.createInsecure(), {});
  const serializeSubmit = (loadDtmProto()["dtmgimp.Dtm"] as Record<string, MethodDefinition<unknown, unknown>>)["Submit"]!.requestSerialize;
  const noop = (): void => {};
  const grpcSteps = JSON.stringify([
    { action: `127.0.0.1:${grpcBusiPort}/busi.Busi/TransOut`, compensate: `127.0.0.1:${grpcBusiPort}/busi.Busi/TransOutRevert` },
    { action: `127.0.0.1:${grpcBusiPort}/busi.Busi/TransIn`, compensate: `127.0.0.1:${grpcBusiPort}/busi.Busi/TransInRevert` },
  ]);
  const payload = Buffer.from("{}");
  const session = opts.grpcJsPeers ? undefined : http2.connect(`http://127.0.0.1:${grpcPort}`, {
    createConnection: () => connect({ host: "127.0.0.1", port: grpcPort, noDelay: true }),
  });
  session?.on("error", () => {});
  const rawSubmit: SubmitOnce = (gid) => new Promise((resolve) => {
    const message = serializeSubmit({ Gid: gid, TransType: "saga", Steps: grpcSteps, BinPayloads: [payload, payload], TransOptions: { WaitResult: true } });
    const frame = Buffer.allocUnsafe(5 + message.length);
    frame.writeUInt8(0, 0);
    frame.writeUInt32BE(message.length, 1);
    message.copy(frame, 5);
    const req = session!.request({ ":method": "POST", ":path": "/dtmgimp.Dtm/Submit", "content-type": "application/grpc", te: "trailers" });
    let grpcStatus: string | undefined;
    let details = "";
    req.on("response", (headers) => {
      // a trailers-only answer carries the status in the headers
      if (headers["grpc-status"] !== undefined) grpcStatus = String(headers["grpc-status"]);
    });
    req.on("trailers", (trailers) => {
      grpcStatus = String(trailers["grpc-status"]);
      details = decodeURIComponent(String(trailers["grpc-message"] ?? ""));
    });
    req.on("data", () => {});
    req.on("end", () => resolve(grpcStatus === "0" ? null : `grpc-status ${grpcStatus ?? "missing"} ${details}`));
    req.on("error", (e) => resolve(e.message));
    req.end(frame);
  });
  const grpcJsSubmit: SubmitOnce = (gid) => new Promise((resolve) => {
    const message = serializeSubmit({ Gid: gid, TransType: "saga", Steps: grpcSteps, BinPayloads: [payload, payload], TransOptions: { WaitResult: true } });
    const call = channel.createCall("/dtmgimp.Dtm/Submit", Date.now() + 30_000, undefined, null, undefined);
    call.start(new Metadata(), {
      onReceiveMetadata: noop,
      onReceiveMessage: () => call.startRead(),
      onReceiveStatus: (st: StatusObject) => resolve(st.code === status.OK ? null : `${status[st.code]} ${st.details}`),
    });
    call.sendMessageWithContext({}, message);
    call.halfClose();
    call.startRead();
  });
  const grpcSubmit = opts.grpcJsPeers ? grpcJsSubmit : rawSubmit;

  const pool = new Pool(`http://127.0.0.1:${httpPort}`, { connections: opts.concurrency, pipelining: 1, keepAliveTimeout: 60_000 });
  const httpBase = `http://127.0.0.1:${httpBusiPort}/api/busi`;
  const httpSteps = JSON.stringify([
    { action: `${httpBase}/TransOut`, compensate: `${httpBase}/TransOutRevert` },
    { action: `${httpBase}/TransIn`, compensate: `${httpBase}/TransInRevert` },
  ]);
  const httpSubmit: SubmitOnce = async (gid) => {
    const res = await pool.request({
      path: "/api/dtmsvr/submit", method: "POST", headers: { "content-type": "application/json" },
      body: `{"gid":"${gid}","trans_type":"saga","steps":${httpSteps},"payloads":["{}","{}"],"wait_result":true}`,
    });
    const text = await res.body.text();
    return res.statusCode === 200 && text.includes("SUCCESS") ? null : `${res.statusCode} ${text}`;
  };

  console.log(`grpc-saga-bench: coordinator pid ${coordinator.proc.pid} (gRPC :${grpcPort}, HTTP :${httpPort}, sqlite synchronous=${opts.synchronous}); ` +
    `gRPC participant :${grpcBusiPort}${opts.http ? `, HTTP participant :${httpBusiPort}` : ""}; C=${opts.concurrency}, ${opts.rounds} round(s) of ${opts.warmup}s warm-up + ${opts.seconds}s`);
  const results: PhaseResult[] = [];
  for (let round = 1; round <= opts.rounds; round++) {
    const order: ["grpc" | "http", SubmitOnce, Child][] = opts.grpc ? [["grpc", grpcSubmit, grpcParticipant]] : [];
    if (httpParticipant) {
      // alternate which goes first, so neither always runs on the larger database
      if (round % 2 === 1) order.push(["http", httpSubmit, httpParticipant]);
      else order.unshift(["http", httpSubmit, httpParticipant]);
    }
    for (const [mode, submit, participant] of order) {
      const r = await runPhase(mode, round, submit, opts, coordinator.proc.pid, participant.proc.pid, runId);
      results.push(r);
      console.log(`  round ${round} ${mode.padEnd(4)}: ${r.throughput} sagas/s, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, errors ${r.errors}, CPU % coordinator ${r.coordinatorCpuPct ?? "n/a"} participant ${r.participantCpuPct ?? "n/a"} driver ${r.driverCpuPct}, coordinator ${r.coordinatorCpuUsPerSaga ?? "n/a"} µs CPU/saga, RSS ${r.coordinatorRssMB ?? "n/a"} MB`);
      if (r.firstError) console.log(`    first error: ${r.firstError}`);
      await sleep(300);
    }
  }
  channel.close();
  session?.close();
  await pool.close();
  await stopChild(coordinator);
  await Promise.all([grpcParticipant, ...(httpParticipant ? [httpParticipant] : [])].map(stopChild));

  const summary = (mode: "grpc" | "http") => {
    const rs = results.filter((r) => r.mode === mode);
    if (rs.length === 0) return null;
    return {
      throughputMedian: median2(rs.map((r) => r.throughput)),
      p50Median: median2(rs.map((r) => r.latencyMs.p50)),
      p99Median: median2(rs.map((r) => r.latencyMs.p99)),
      coordinatorCpuUsPerSagaMedian: median2(rs.flatMap((r) => (r.coordinatorCpuUsPerSaga === null ? [] : [r.coordinatorCpuUsPerSaga]))),
      errors: rs.reduce((a, r) => a + r.errors, 0),
    };
  };
  const grpc = summary("grpc");
  const http = summary("http");
  const ratio = grpc && http ? Math.round((grpc.throughputMedian / http.throughputMedian) * 1000) / 1000 : null;
  const cpus = os.cpus();
  const report = {
    benchmark: "grpc-saga-sqlite",
    timestamp: started.toISOString(),
    command: `npx tsx bench/grpc-saga-bench.ts ${process.argv.slice(2).join(" ")}`.trim(),
    machine: { cpus: cpus.length, model: cpus[0]?.model ?? "unknown", node: process.version, platform: `${os.platform()} ${os.release()}` },
    config: {
      store: "sqlite", synchronous: opts.synchronous,
      coordinatorRuntime: opts.build ? "tsc-compiled JS on plain node" : "node --import tsx", coordinatorNodeFlags: opts.nodeFlags, concurrency: opts.concurrency, rounds: opts.rounds, warmupSeconds: opts.warmup, measureSeconds: opts.seconds,
      workload: `saga with 2 gRPC branches (busi.Busi no-op: ${opts.grpcJsPeers ? "grpc-js server" : "plain node:http2 server"}), BinPayloads ["{}","{}"], submitted with dtmgimp.Dtm/Submit WaitResult=true (proto-loader serializer) over ${opts.grpcJsPeers ? "one grpc-js channel" : "one plain node:http2 session"}; ` +
        "HTTP comparison: same saga over POST /api/dtmsvr/submit (undici Pool, connections = C) with HTTP branches to bench/noop-participant.ts; same coordinator process, alternating rounds",
    },
    results,
    summary: { grpc, http, grpcOverHttp: ratio, target: { grpcOverHttpAtLeast: 0.8, met: ratio === null ? null : ratio >= 0.8 } },
  };
  mkdirSync(opts.outDir, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, "-");
  const outFile = path.join(opts.outDir, `grpc-saga-sqlite-${stamp}.json`);
  writeFileSync(outFile, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(path.join(opts.outDir, "grpc-saga-sqlite-latest.json"), `${JSON.stringify(report, null, 2)}\n`);
  console.log("");
  console.log(`${cpus.length} x ${cpus[0]?.model ?? "?"}, node ${process.version}, C=${opts.concurrency}`);
  if (grpc) console.log(`gRPC: ${grpc.throughputMedian} sagas/s (median of ${opts.rounds}), p50 ${grpc.p50Median} ms, p99 ${grpc.p99Median} ms, coordinator ${grpc.coordinatorCpuUsPerSagaMedian} µs CPU/saga, errors ${grpc.errors}`);
  if (http) console.log(`HTTP: ${http.throughputMedian} sagas/s (median of ${opts.rounds}), p50 ${http.p50Median} ms, p99 ${http.p99Median} ms, coordinator ${http.coordinatorCpuUsPerSagaMedian} µs CPU/saga, errors ${http.errors}`);
  if (ratio !== null) console.log(`gRPC / HTTP = ${ratio} (target >= 0.8: ${ratio >= 0.8 ? "met" : "NOT met"})`);
  console.log(`results: ${path.relative(process.cwd(), outFile)} (and grpc-saga-sqlite-latest.json)`);
}

if (process.argv[2] === "participant") {
  runRawParticipant();
} else if (process.argv[2] === "participant-grpc-js") {
  runParticipant();
} else {
  main().catch((error: unknown) => {
    console.error(`grpc-saga-bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  });
}
