/**
 * The coordinators of a chaos run: real `dtx` processes (server/src/main.ts under tsx) on fixed
 * ports, so a restart keeps their URLs, sharing one store with the profile's short test timings.
 * Each reaches a server store through its own TCP proxy, which the nemesis can black-hole.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { StoreKind } from "../contracts.ts";
import type { CoordinatorTimings } from "../profile.ts";
import { freePort, ROOT } from "../../helpers/processes.ts";
import { TcpProxy } from "../../helpers/tcp-proxy.ts";
import { Child } from "./child.ts";

const READY_TIMEOUT_MS = 60_000;
/** Store calls time out fast, so a black-holed store turns into errors (and retries) quickly. */
const STORE_TIMEOUT_S = 2;

export interface RunningCoordinator {
  readonly index: number;
  readonly child: Child;
  readonly httpUrl: string;
  /** `127.0.0.1:<port>` of its gRPC server. */
  readonly grpcTarget: string;
  /** Its link to a server store (undefined for SQLite). */
  readonly storeProxy: TcpProxy | undefined;
}

/** Resolves when the coordinator logs that it listens. */
function listening(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      if (line.includes('"msg":"dtx listening"')) {
        // close() pauses the stream; resume it, or nothing more reaches the log file and, once the
        // pipe is full, the coordinator blocks on its own log writes (pino writes stdout synchronously).
        lines.close();
        child.stdout!.resume();
        resolve();
      }
    });
  });
}

function storeEnv(store: StoreKind, storeUrl: string | undefined, runDir: string): Record<string, string> {
  if (store === "sqlite") return { DTX_STORE_DRIVER: "sqlite", DTX_STORE_PATH: join(runDir, "dtx.db") };
  return { DTX_STORE_DRIVER: store, DTX_STORE_URL: storeUrl!, DTX_STORE_TIMEOUT: String(STORE_TIMEOUT_S) };
}

export async function startCoordinator(opts: {
  index: number;
  store: StoreKind;
  /** The store's real URL (server stores); the coordinator gets it through a fresh proxy. */
  storeUrl?: string;
  runDir: string;
  timings: CoordinatorTimings;
  /** Where the HTTP and gRPC ports come from (tests hand out a taken one); default freePort. */
  ports?: () => Promise<number>;
}): Promise<RunningCoordinator> {
  const { index, store, runDir, timings } = opts;
  let storeProxy: TcpProxy | undefined;
  let storeUrl: string | undefined;
  if (store !== "sqlite") {
    const target = new URL(opts.storeUrl!);
    storeProxy = await TcpProxy.start({ host: target.hostname, port: Number(target.port) });
    storeUrl = TcpProxy.through(opts.storeUrl!, storeProxy);
  }
  const logFile = join(runDir, `coordinator-${index}.log`);
  // freePort() hands out a port the OS had free a moment ago; before the coordinator binds it, an
  // outgoing connection of this busy world can take it as its local port (CI, smoke, seed
  // 20261206, mysql: "bind EADDRINUSE"). A start that failed for that alone is tried on new ports.
  const nextPort = opts.ports ?? freePort;
  for (let attempt = 1; ; attempt++) {
    const [httpPort, grpcPort] = [await nextPort(), await nextPort()];
    const child = new Child({
      name: `coordinator-${index}`,
      cmd: process.execPath,
      args: ["--import", "tsx", join(ROOT, "server/src/main.ts")],
      cwd: ROOT,
      env: {
        DTX_ENV: "test",
        DTX_HOST: "127.0.0.1",
        DTX_HTTP_PORT: String(httpPort),
        DTX_GRPC_PORT: String(grpcPort),
        // debug: the checker's G5 reads every "status changed" line from coordinator-<i>.log.
        DTX_LOG_LEVEL: "debug",
        DTX_RETRY_INTERVAL: String(timings.retryInterval),
        DTX_MAX_RETRY_INTERVAL: String(timings.maxRetryInterval),
        DTX_REQUEST_TIMEOUT: String(timings.requestTimeout),
        DTX_CRON_INTERVAL: String(timings.cronInterval),
        DTX_TIMEOUT_TO_FAIL: String(timings.timeoutToFail),
        DTX_LEASE_MARGIN: String(timings.leaseMargin),
        DTX_RETRY_JITTER: String(timings.retryJitter),
        ...storeEnv(store, storeUrl, runDir),
      },
      logFile,
      ready: listening,
      readyTimeoutMs: READY_TIMEOUT_MS,
    });
    const logBefore = logLength(logFile);
    try {
      await child.start();
      return { index, child, httpUrl: `http://127.0.0.1:${httpPort}`, grpcTarget: `127.0.0.1:${grpcPort}`, storeProxy };
    } catch (error) {
      if (attempt < START_ATTEMPTS && readFileSync(logFile).subarray(logBefore).includes("EADDRINUSE")) continue;
      await storeProxy?.close();
      throw error;
    }
  }
}

/** Starts tried on fresh ports when the last one failed only because a port was taken. */
const START_ATTEMPTS = 3;

/** Bytes in the log so far (the log of a restarted coordinator is long: it is not read for this). */
function logLength(file: string): number {
  return existsSync(file) ? statSync(file).size : 0;
}
