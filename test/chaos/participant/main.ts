/**
 * A chaos participant process (docs/chaos.md). Started by the world as
 *
 *   node --import tsx test/chaos/participant/main.ts --port 0 --index 0 --seed 42 \
 *     --calls <run dir>/calls.jsonl --pg <url> --mysql <url> --redis <url> \
 *     --fault-rates '{"error-before":0.05,...,"duplicate":0.01}' --late-ms 1500 [--redis-prefix chaos:] [--max-in-flight 64]
 *
 * prints one line `{"ready":true,"port":N}` on stdout once it listens, logs (pino JSON) to stderr,
 * and serves the branch URLs of routes.ts until SIGTERM / SIGINT (or SIGKILL by the nemesis).
 * The databases must have been set up first (setup.ts).
 */
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import pino from "pino";
import { CallLog } from "./call-log.ts";
import { closeClients, openClients } from "./clients.ts";
import { DEFAULT_REDIS_PREFIX } from "./db-urls.ts";
import { FaultPlan, parseFaultRates } from "./faults.ts";
import { MAX_IN_FLIGHT, createParticipantServer } from "./server.ts";

function wholeNumber(name: string, text: string | undefined, fallback?: number): number {
  if (text === undefined) {
    if (fallback !== undefined) return fallback;
    throw new Error(`--${name} is required`);
  }
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} must be a whole number ≥ 0, got ${text}`);
  return n;
}

function required(name: string, text: string | undefined): string {
  if (!text) throw new Error(`--${name} is required`);
  return text;
}

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    index: { type: "string" },
    seed: { type: "string" },
    calls: { type: "string" },
    pg: { type: "string" },
    mysql: { type: "string" },
    redis: { type: "string" },
    "fault-rates": { type: "string" },
    "late-ms": { type: "string" },
    "redis-prefix": { type: "string" },
    "max-in-flight": { type: "string" },
  },
  strict: true,
});

const index = wholeNumber("index", values.index, 0);
const logger = pino({ base: { role: "chaos-participant", index, pid: process.pid } }, pino.destination(2));
const clients = openClients(
  { postgres: required("pg", values.pg), mysql: required("mysql", values.mysql), redis: required("redis", values.redis) },
  { redisPrefix: values["redis-prefix"] ?? DEFAULT_REDIS_PREFIX, poolSize: 10 },
);
const server = createParticipantServer({
  clients,
  plan: new FaultPlan(wholeNumber("seed", values.seed), index, parseFaultRates(values["fault-rates"] ?? "{}")),
  log: new CallLog(required("calls", values.calls)),
  lateMs: wholeNumber("late-ms", values["late-ms"], 1_500),
  logger,
  maxInFlight: wholeNumber("max-in-flight", values["max-in-flight"], MAX_IN_FLIGHT),
});
server.keepAliveTimeout = 5_000;
server.headersTimeout = 10_000;
server.requestTimeout = 30_000;
// A bound on open connections: C = 32 load plus the coordinators' retries need far fewer.
server.maxConnections = 1_024;
server.listen(wholeNumber("port", values.port, 0), "127.0.0.1");
await once(server, "listening");
process.stdout.write(`${JSON.stringify({ ready: true, port: (server.address() as AddressInfo).port })}\n`);

async function stop(): Promise<void> {
  server.closeAllConnections();
  server.close();
  await closeClients(clients);
  process.exit(0);
}
process.once("SIGTERM", () => void stop());
process.once("SIGINT", () => void stop());
