/**
 * Loading coordinators in turn: child processes the benchmark owns, the no-op participant, and a
 * closed-loop slice of saga-bench's workload (two-step sagas with wait_result) against one
 * coordinator. Used where two or more coordinators run side by side and short slices of load
 * alternate between them (bench/lib/interleaved-saga.ts, bench/dtm-interleave.ts), so a change in
 * what the rest of the machine does hits all of them alike.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Pool, request } from "undici";
import { forEachLine, freePort, percentile, sleep } from "./util.ts";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export interface Proc {
  child: ChildProcess;
  exited: Promise<void>;
}

/** `node <args>` in the repo root (`nodeBin`: another node binary); its stderr is echoed with `name` in front. */
export function start(name: string, args: string[], env: NodeJS.ProcessEnv, nodeBin = process.execPath): Proc {
  const child = spawn(nodeBin, args, { cwd: REPO_ROOT, env, stdio: ["pipe", "pipe", "pipe"] });
  child.stdin?.on("error", () => {});
  child.stderr?.on("data", (d: Buffer) => process.stderr.write(`[${name}] ${d.toString().slice(0, 500)}`));
  return { child, exited: new Promise((resolve) => child.once("exit", () => resolve())) };
}

/** SIGTERM, then SIGKILL after 10 s. */
export async function stop(p: Proc): Promise<void> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGTERM");
  const timer = setTimeout(() => p.child.kill("SIGKILL"), 10_000);
  await p.exited;
  clearTimeout(timer);
}

/** Waits until GET `url` answers 200 (a coordinator's /api/ping, or dtm's …/newGid). */
export async function waitFor200(url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await request(url, { headersTimeout: 1000, bodyTimeout: 1000 });
      await res.body.dump();
      if (res.statusCode === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`);
    await sleep(200);
  }
}

/**
 * Starts a dtx coordinator, `node <nodeArgs>` on `nodeBin` (e.g. `--import tsx server/src/main.ts`, or heap flags
 * and a compiled main.js), on free ports of 127.0.0.1 with `env` on top of this process's
 * environment; resolves once /api/ping answers. DTX_CONFIG and DTX_WORKERS from the shell are
 * dropped: what the coordinator runs with is the benchmark's to say.
 */
export async function startCoordinator(
  name: string, nodeArgs: string[], env: Record<string, string>, nodeBin = process.execPath,
): Promise<{ proc: Proc; origin: string }> {
  const httpPort = await freePort();
  const full: NodeJS.ProcessEnv = {
    ...process.env,
    DTX_HTTP_PORT: String(httpPort), DTX_GRPC_PORT: String(await freePort()), DTX_HOST: "127.0.0.1", DTX_LOG_LEVEL: "warn", ...env,
  };
  delete full["DTX_CONFIG"];
  if (env["DTX_WORKERS"] === undefined) delete full["DTX_WORKERS"];
  const proc = start(name, nodeArgs, full, nodeBin);
  const origin = `http://127.0.0.1:${httpPort}`;
  await waitFor200(`${origin}/api/ping`);
  return { proc, origin };
}

/** Starts bench/noop-participant.ts; resolves with it and its branch base URL (…/api/busi). */
export async function startParticipant(): Promise<{ proc: Proc; busi: string }> {
  const proc = start("participant", ["--import", "tsx", "bench/noop-participant.ts", "0"], { ...process.env });
  const port = await new Promise<number>((resolve, reject) => {
    forEachLine(proc.child.stdout, (line) => {
      if (line.includes("participant listening")) resolve((JSON.parse(line) as { port: number }).port);
    });
    void proc.exited.then(() => reject(new Error("the participant exited at start")));
  });
  return { proc, busi: `http://127.0.0.1:${port}/api/busi` };
}

/** What one slice of load did. */
export interface SliceLoad {
  /** Sagas answered 200 SUCCESS within the slice. */
  done: number;
  errors: number;
  /** Median submit-to-answer latency of those sagas, ms (NaN if none). */
  p50Ms: number;
}

/** The connections a load keeps: one undici Pool of `c` to the coordinator's origin. */
export function loadPool(api: string, c: number): Pool {
  return new Pool(new URL(api).origin, { connections: c, pipelining: 1, keepAliveTimeout: 60_000 });
}

/**
 * Closed-loop saga load on the coordinator at `api` (its dtm API base, e.g.
 * `http://127.0.0.1:36789/api/dtmsvr`) for `seconds`: `c` workers over one undici Pool, each
 * submitting the next saga when the last one answered. Gids start with `tag`. With `pool`
 * ({@link loadPool}) the load reuses its connections and leaves it open: a coordinator with
 * workers then serves every slice with the processes the warm-up warmed (node:cluster hands each
 * new connection to the next worker).
 */
export async function load(api: string, participant: string, c: number, seconds: number, tag: string, pool?: Pool): Promise<SliceLoad> {
  const submitPath = `${new URL(api).pathname.replace(/\/$/, "")}/submit`;
  const steps = JSON.stringify([
    { action: `${participant}/TransOut`, compensate: `${participant}/TransOutRevert` },
    { action: `${participant}/TransIn`, compensate: `${participant}/TransInRevert` },
  ]);
  const connections = pool ?? loadPool(api, c);
  const end = Date.now() + seconds * 1000;
  const latencies: number[] = [];
  let errors = 0;
  const worker = async (w: number): Promise<void> => {
    for (let n = 0; Date.now() < end; n++) {
      const body = `{"gid":"${tag}-w${w}-${n}","trans_type":"saga","steps":${steps},"payloads":["{}","{}"],"wait_result":true}`;
      const t0 = performance.now();
      try {
        const res = await connections.request({ path: submitPath, method: "POST", headers: { "content-type": "application/json" }, body, headersTimeout: 30_000, bodyTimeout: 30_000 });
        const text = await res.body.text();
        if (Date.now() > end) break;
        if (res.statusCode === 200 && text.includes("SUCCESS")) latencies.push(performance.now() - t0);
        else errors++;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: c }, (_, w) => worker(w)));
  if (!pool) await connections.close();
  const sorted = Float64Array.from(latencies).sort();
  return { done: latencies.length, errors, p50Ms: percentile(sorted, 0.5) };
}
