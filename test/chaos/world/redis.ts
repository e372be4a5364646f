/**
 * A private redis-server for one chaos run, durable like production should be (AOF, fsync on
 * every write), so a kill -9 loses nothing acknowledged. Database 0 holds the coordinator store
 * (redis profile), database 1 the participants' accounts.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import { freePort } from "../../helpers/processes.ts";
import { Child } from "./child.ts";
import { pollUntil } from "./poll.ts";

const READY_TIMEOUT_MS = 30_000;

async function ping(url: string): Promise<void> {
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1_000 });
  probe.on("error", () => undefined);
  try {
    await probe.connect();
    await probe.ping();
  } finally {
    probe.disconnect();
  }
}

export async function startRedis(dir: string): Promise<{ server: Child; port: number; url: (db: number) => string }> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const url = (db: number): string => `redis://127.0.0.1:${port}/${db}`;
  const server = new Child({
    name: "redis",
    cmd: "redis-server",
    args: ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--maxmemory-policy", "noeviction"],
    logFile: join(dir, "redis.log"),
    ready: () => pollUntil("redis answers", () => ping(url(0)), READY_TIMEOUT_MS),
    readyTimeoutMs: READY_TIMEOUT_MS,
  });
  await server.start();
  return { server, port, url };
}
