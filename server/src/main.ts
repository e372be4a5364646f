#!/usr/bin/env -S node --max-semi-space-size=8 --max-old-space-size=160
// The heap flags in the line above are the ones `npm start` passes (docs/overload.md): the `dtx` command gets the same sizing.
import cluster from "node:cluster";
import { availableParallelism } from "node:os";
import { getHeapStatistics } from "node:v8";
import { parseCliArgs, USAGE } from "./cli/args.ts";
import { branchUrlPolicyState, startWarnings } from "./cli/banner.ts";
import { HEAP_FLAGS } from "./cli/heap-flags.ts";
import { dtxVersion } from "./cli/version.ts";
import { WorkerSupervisor } from "./cluster/supervisor.ts";
import { workerCount } from "./cluster/worker-count.ts";
import type { WorkerCountReason } from "./cluster/worker-count.ts";
import type { Config } from "./config.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { createLogger } from "./logger.ts";

/**
 * Entry point: the `dtx` command (package.json `bin`), `npm start`, `node dist/server/src/main.js`.
 * The only file that reads the process environment or handles signals. See docs/cli.md.
 */
async function main(): Promise<void> {
  const command = parseCliArgs(process.argv.slice(2));
  switch (command.kind) {
    case "help":
      process.stdout.write(USAGE);
      return;
    case "version":
      process.stdout.write(`dtx ${dtxVersion()}\n`);
      return;
    case "error":
      process.stderr.write(`dtx: ${command.message}\n\n${USAGE}`);
      process.exit(2);
  }
  let config;
  try {
    config = loadConfig(process.env, command.configFile === undefined ? [] : ["--config", command.configFile]);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`dtx: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const { workers, reason } = workerCount(config, availableParallelism());
  if (cluster.isPrimary && workers > 1) return runPrimary(config, workers, reason);
  const worker = cluster.worker;
  const logger = worker ? createLogger(config.logLevel).child({ worker: worker.id }) : createLogger(config.logLevel);
  if (!worker) warnIfHeapUncapped(logger);
  // Loaded here, not at the top: the primary of a cluster serves nothing and would carry fastify,
  // grpc-js and the store drivers for nothing (docs/operations.md#workers).
  const { createCoordinator } = await import("./server.ts");
  const coordinator = await createCoordinator(config, logger, worker ? { clusterPrimary: { send: (message) => worker.send(message) } } : {});
  const { httpPort, grpcPort } = await coordinator.start();
  if (!worker) {
    logger.info({ version: dtxVersion(), host: config.host, httpPort, grpcPort, store: config.store.driver, pid: process.pid, workers: 1, workersFrom: reason, branchUrlPolicy: branchUrlPolicyState(config) }, "dtx started");
    for (const warning of startWarnings(config)) logger[warning.level]({ code: warning.code }, warning.message);
  }
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "dtx stopping");
    coordinator.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, "error while stopping");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

/**
 * The primary of `workers` coordinator processes (docs/operations.md#workers): it serves nothing
 * itself, forwards SIGTERM/SIGINT as a graceful stop, and exits non-zero when a worker cannot
 * start or workers keep crashing. The workers run main() again and take the other branch.
 */
async function runPrimary(config: Config, workers: number, reason: WorkerCountReason): Promise<void> {
  const logger = createLogger(config.logLevel).child({ role: "primary" });
  warnIfHeapUncapped(logger);
  const supervisor = new WorkerSupervisor({ workers, logger });
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "dtx stopping");
    void supervisor.stop();
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
  void supervisor.stopped.then((code) => process.exit(code));
  try {
    const { httpPort, grpcPort } = await supervisor.start();
    logger.info({ version: dtxVersion(), host: config.host, httpPort, grpcPort, store: config.store.driver, pid: process.pid, workers, workersFrom: reason }, "dtx started");
    for (const warning of startWarnings(config)) logger.warn({ code: warning.code }, warning.message);
  } catch (error) {
    logger.error({ err: error }, "dtx failed to start");
  }
}

/**
 * The overload caps are sized for the heap `npm start` and the Docker image give (docs/overload.md);
 * started as plain `node dist/...`, V8 sizes the heap from the machine's memory and, being lazy
 * about collecting, lets RSS grow far past that under load.
 */
function warnIfHeapUncapped(logger: ReturnType<typeof createLogger>): void {
  const flags = [...process.execArgv, process.env["NODE_OPTIONS"] ?? ""].join(" ");
  if (/--max-old-space-size/.test(flags)) return;
  const heapLimitMB = Math.round(getHeapStatistics().heap_size_limit / 2 ** 20);
  logger.warn({ heapLimitMB }, `started without --max-old-space-size: RSS may grow well past the sizing of the overload caps; start as \`npm start\` does (node ${HEAP_FLAGS.join(" ")}), see docs/overload.md`);
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    process.stderr.write(`dtx: ${error.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`dtx: failed to start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
