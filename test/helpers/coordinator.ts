import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { ConfigInput } from "../../server/src/config.ts";
import { parseConfig } from "../../server/src/config.ts";
import type { Logger } from "../../server/src/logger.ts";
import { createLogger } from "../../server/src/logger.ts";
import type { Coordinator } from "../../server/src/server.ts";
import { createCoordinator } from "../../server/src/server.ts";
import { DtxClient } from "./client.ts";

export interface TestCoordinator {
  readonly url: string;
  /** The bound gRPC port (`127.0.0.1:<grpcPort>` serves dtmgimp.Dtm). */
  readonly grpcPort: number;
  readonly client: DtxClient;
  readonly coordinator: Coordinator;
  readonly dataDir: string;
  stop(): Promise<void>;
}

/** Timings for tests: short, and the cron only runs when a test asks (`client.cron()`). */
export const TEST_TIMINGS = {
  retryInterval: 1,
  maxRetryInterval: 8,
  timeoutToFail: 5,
  requestTimeout: 1,
  cronInterval: 3600,
  retryJitter: 0.1,
} as const;

/**
 * Starts a coordinator in this process on a random port with a fresh SQLite file. `logger`
 * replaces the usual one (for a test that reads what the coordinator logs).
 */
export async function startCoordinator(overrides: Partial<ConfigInput> = {}, logger?: Logger): Promise<TestCoordinator> {
  const dataDir = mkdtempSync(join(tmpdir(), "dtx-test-"));
  const config = parseConfig({
    host: "127.0.0.1",
    httpPort: 0,
    grpcPort: 0,
    logLevel: "silent",
    testControl: true,
    env: "test",
    ...TEST_TIMINGS,
    ...overrides,
    store: { path: join(dataDir, "dtx.db"), ...(overrides.store ?? {}) },
  });
  const coordinator = await createCoordinator(config, logger ?? createLogger(config.logLevel));
  const { httpPort, grpcPort } = await coordinator.start();
  const url = `http://127.0.0.1:${httpPort}`;
  return {
    url,
    grpcPort,
    client: new DtxClient(url),
    coordinator,
    dataDir,
    async stop() {
      await coordinator.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface ChildCoordinator {
  readonly url: string;
  /** The bound gRPC port, read from the "dtx listening" log line. */
  readonly grpcPort: number;
  readonly client: DtxClient;
  readonly process: ChildProcess;
  /** Resolves when the process has exited (with its signal, if killed). */
  readonly exited: Promise<NodeJS.Signals | number | null>;
  /** Every JSON log line the process has written to stdout so far, parsed. */
  readonly logs: readonly Record<string, unknown>[];
  kill(signal?: NodeJS.Signals): Promise<NodeJS.Signals | number | null>;
}

const ROOT = new URL("../../", import.meta.url).pathname;

/**
 * Runs the real coordinator (`server/src/main.ts`) as a child process on `dbPath`, so tests can
 * SIGKILL it and start another on the same file. Resolves once it logs that it is listening.
 */
export async function spawnCoordinator(dbPath: string, env: Record<string, string> = {}): Promise<ChildCoordinator> {
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "server/src/main.ts")], {
    cwd: ROOT,
    env: {
      ...process.env,
      DTX_HOST: "127.0.0.1",
      DTX_HTTP_PORT: "0",
      DTX_GRPC_PORT: "0",
      DTX_STORE_PATH: dbPath,
      DTX_TEST_CONTROL: "1",
      DTX_ENV: "test",
      DTX_LOG_LEVEL: "info",
      DTX_RETRY_INTERVAL: String(TEST_TIMINGS.retryInterval),
      DTX_MAX_RETRY_INTERVAL: String(TEST_TIMINGS.maxRetryInterval),
      DTX_TIMEOUT_TO_FAIL: String(TEST_TIMINGS.timeoutToFail),
      DTX_REQUEST_TIMEOUT: String(TEST_TIMINGS.requestTimeout),
      DTX_CRON_INTERVAL: String(TEST_TIMINGS.cronInterval),
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.once("exit", (code, signal) => resolve(signal ?? code)));
  const stderr: string[] = [];
  child.stderr?.on("data", (d: Buffer) => stderr.push(d.toString()));
  const logs: Record<string, unknown>[] = [];
  const { port, grpcPort } = await new Promise<{ port: number; grpcPort: number }>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; httpPort?: number; grpcPort?: number };
        logs.push(entry);
        if (entry.msg === "dtx listening" && entry.httpPort) resolve({ port: entry.httpPort, grpcPort: entry.grpcPort ?? 0 });
      } catch {
        // not a log line
      }
    });
    void exited.then((how) => reject(new Error(`coordinator exited (${String(how)}) before listening:\n${stderr.join("")}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    grpcPort,
    client: new DtxClient(url),
    process: child,
    exited,
    logs,
    async kill(signal: NodeJS.Signals = "SIGKILL") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
