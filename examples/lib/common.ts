/**
 * Shared plumbing of the scenario examples (bank-transfer-saga, tcc-frozen-balance-redis,
 * order-inventory-msg, workflow-mixed): options, a fastify participant service on a free port,
 * unique names, the final status of a transaction, and the `npx tsx examples/<file>.ts` entry.
 */
import Fastify from "fastify";
import type { FastifyInstance } from "fastify";
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { Redis } from "ioredis";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { DtxClient } from "../../sdk/src/index.ts";
import { fastifyJsonParser } from "../../sdk/src/index.ts";

/** Where an example finds the coordinator and the databases. */
export interface ExampleOptions {
  /** The coordinator's origin, e.g. `http://127.0.0.1:36789`. */
  readonly dtxUrl: string;
  /** e.g. `postgres://postgres@127.0.0.1:5432/dtx_test`. */
  readonly pgUrl: string;
  /** e.g. `mysql://root@127.0.0.1:3306/dtx_test`. */
  readonly mysqlUrl: string;
  /** e.g. `redis://127.0.0.1:6379`. */
  readonly redisUrl: string;
}

/** The options from the environment (DTX_URL, PG_URL, MYSQL_URL, REDIS_URL) with local defaults. */
export function optionsFromEnv(): ExampleOptions {
  const env = (name: string, fallback: string): string => process.env[name]?.trim() || fallback;
  return {
    dtxUrl: env("DTX_URL", "http://127.0.0.1:36789"),
    pgUrl: env("PG_URL", "postgres://postgres@127.0.0.1:5432/dtx_test"),
    mysqlUrl: env("MYSQL_URL", "mysql://root@127.0.0.1:3306/dtx_test"),
    redisUrl: env("REDIS_URL", "redis://127.0.0.1:6379"),
  };
}

/** A participant service: a fastify app on 127.0.0.1 and a free port. */
export interface Service {
  /** e.g. `http://127.0.0.1:PORT` */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Starts a fastify app whose routes `routes` adds. JSON bodies may be empty (the coordinator
 * sends some phase-2 calls without a body), hence {@link fastifyJsonParser}.
 */
export async function startService(routes: (app: FastifyInstance) => void): Promise<Service> {
  const app = Fastify({ logger: false });
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, fastifyJsonParser);
  routes(app);
  await app.listen({ port: 0, host: "127.0.0.1" });
  const { port } = app.server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => app.close() };
}

/** A name unique to this run, usable as a table name, a Redis key prefix or a gid: `<prefix>_<time>_<random>`. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
}

/**
 * The end of a run: deletes the Redis keys under its account prefixes and the Redis barrier's keys
 * of its transactions (`<gid>-<branch>-<op>`, kept for the barrier's expiry otherwise). Best
 * effort: a failure here must not hide the run's own outcome.
 */
export async function removeRunKeys(redis: Redis, prefixes: readonly string[], gids: readonly string[]): Promise<void> {
  for (const pattern of [...prefixes.map((p) => `${p}*`), ...gids.map((gid) => `${gid}-*`)]) {
    const keys = await redis.keys(pattern).catch(() => [] as string[]);
    if (keys.length > 0) await redis.del(...keys).catch(() => undefined);
  }
}

/** The transaction's status as the coordinator reports it ("" when it does not know the gid). */
export async function statusOf(client: DtxClient, gid: string): Promise<string> {
  return (await client.query(gid)).transaction?.status ?? "";
}

/** The message of an error, for results. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Polls the coordinator until `gid` has `status` (for runs by hand, where the coordinator's own cron drives it). */
export async function waitForStatus(client: DtxClient, gid: string, status: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = await statusOf(client, gid);
    if (now === status) return;
    if (Date.now() > deadline) throw new Error(`transaction ${gid} is still ${now || "unknown"} after ${timeoutMs} ms (expected ${status})`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** True when the module at `moduleUrl` is the script node was started with. */
export function isMain(moduleUrl: string): boolean {
  const script = process.argv[1];
  return script !== undefined && resolve(script) === fileURLToPath(moduleUrl);
}

/** Runs an example with {@link optionsFromEnv} and prints its result as JSON. */
export async function runMain<R>(run: (opts: ExampleOptions) => Promise<R>): Promise<void> {
  try {
    const result = await run(optionsFromEnv());
    console.log(JSON.stringify(result, null, 2));
  } catch (err) {
    console.error(err);
    process.exitCode = 1;
  }
}
