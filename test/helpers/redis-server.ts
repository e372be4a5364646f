/**
 * A private redis-server process for one test: started on a free port with the settings the test
 * wants (e.g. an unsafe `appendonly no`), killed with SIGKILL afterwards. Its data directory is
 * a temp dir, removed with it.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { freePort } from "./processes.ts";

export interface PrivateRedis {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}


/** How long a starting redis-server may take to answer PING. */
const READY_TIMEOUT_MS = 10_000;

/**
 * Starts `redis-server --port N --bind 127.0.0.1 --save '' --dir <tmp> ...args` and waits (bounded
 * poll) until it answers PING. `args` are redis-server options, e.g. ["--appendonly", "no"].
 */
export async function startRedisServer(args: readonly string[]): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "dtx-redis-"));
  const proc: ChildProcess = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir, ...args], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  proc.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  const url = `redis://127.0.0.1:${port}`;
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on("error", () => {});
  const deadline = Date.now() + READY_TIMEOUT_MS;
  try {
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`redis-server exited at start (code ${proc.exitCode}): ${stderr.trim()}`);
      try {
        await probe.connect();
        await probe.ping();
        break;
      } catch {
        probe.disconnect();
        if (Date.now() > deadline) throw new Error(`redis-server on :${port} did not answer within ${READY_TIMEOUT_MS} ms: ${stderr.trim()}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  } catch (error) {
    await stop();
    throw error;
  } finally {
    probe.disconnect();
  }
  return { url, port, stop };
}
