import { getHeapStatistics } from "node:v8";
import { ConfigError, loadConfig } from "./config.ts";
import { createLogger } from "./logger.ts";
import { createCoordinator } from "./server.ts";

/** Entry point: `npm start`. The only file that reads the process environment or handles signals. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`dtx: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config.logLevel);
  warnIfHeapUncapped(logger);
  const coordinator = await createCoordinator(config, logger);
  await coordinator.start();
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
 * The overload caps are sized for the heap `npm start` and the Docker image give (docs/overload.md);
 * started as plain `node dist/...`, V8 sizes the heap from the machine's memory and, being lazy
 * about collecting, lets RSS grow far past that under load.
 */
function warnIfHeapUncapped(logger: ReturnType<typeof createLogger>): void {
  const flags = [...process.execArgv, process.env["NODE_OPTIONS"] ?? ""].join(" ");
  if (/--max-old-space-size/.test(flags)) return;
  const heapLimitMB = Math.round(getHeapStatistics().heap_size_limit / 2 ** 20);
  logger.warn({ heapLimitMB }, "started without --max-old-space-size: RSS may grow well past the sizing of the overload caps; start as `npm start` does (node --max-semi-space-size=8 --max-old-space-size=160), see docs/overload.md");
}

main().catch((error: unknown) => {
  process.stderr.write(`dtx: failed to start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
