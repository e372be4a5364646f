/**
 * Starts a chaos participant process (main.ts) and waits for its ready line. For the world
 * helper and the participant's own test; the caller owns the child (SIGKILL / SIGSTOP it at will).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import type { DbUrls } from "./db-urls.ts";
import type { FaultRates } from "./faults.ts";

const ROOT = new URL("../../../", import.meta.url).pathname;
const MAIN = new URL("./main.ts", import.meta.url).pathname;

export interface ParticipantProcessOptions {
  /** 0: any free port (read back from the ready line). */
  port: number;
  index: number;
  seed: number;
  /** The run's calls file (contracts RunPaths.calls). */
  calls: string;
  dbs: DbUrls;
  faultRates: FaultRates;
  lateMs: number;
  redisPrefix?: string;
  /** Calls served at once before it answers 503 (main.ts default 64). */
  maxInFlight?: number;
  /** Where the child's stderr (pino JSON) goes: a file descriptor, or "inherit" / "ignore". */
  stderr?: number | "inherit" | "ignore";
}

export interface ParticipantProcess {
  child: ChildProcess;
  port: number;
  /** `http://127.0.0.1:<port>`, for routes.ts branchUrls. */
  base: string;
}

/** The argv of main.ts for `o` (after `node --import tsx`). */
export function participantArgs(o: ParticipantProcessOptions): string[] {
  return [
    MAIN,
    ...["--port", String(o.port), "--index", String(o.index), "--seed", String(o.seed), "--calls", o.calls],
    ...["--pg", o.dbs.postgres, "--mysql", o.dbs.mysql, "--redis", o.dbs.redis],
    ...["--fault-rates", JSON.stringify(o.faultRates), "--late-ms", String(o.lateMs)],
    ...(o.redisPrefix === undefined ? [] : ["--redis-prefix", o.redisPrefix]),
    ...(o.maxInFlight === undefined ? [] : ["--max-in-flight", String(o.maxInFlight)]),
  ];
}

/** Spawns main.ts and resolves once it prints `{"ready":true,"port":N}`; rejects if it exits or takes over `timeoutMs`. */
export function spawnParticipant(o: ParticipantProcessOptions, timeoutMs = 30_000): Promise<ParticipantProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", ...participantArgs(o)], { cwd: ROOT, stdio: ["ignore", "pipe", o.stderr ?? "inherit"] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`participant ${o.index} did not get ready within ${timeoutMs} ms`));
    }, timeoutMs);
    const lines = createInterface({ input: child.stdout! });
    lines.once("line", (line) => {
      clearTimeout(timer);
      try {
        const ready = JSON.parse(line) as { ready?: boolean; port?: number };
        if (ready.ready !== true || typeof ready.port !== "number") throw new Error(`unexpected first line ${line}`);
        resolve({ child, port: ready.port, base: `http://127.0.0.1:${ready.port}` });
      } catch (err) {
        child.kill("SIGKILL");
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`participant ${o.index} exited (${String(code ?? signal)}) before it was ready`));
    });
  });
}
