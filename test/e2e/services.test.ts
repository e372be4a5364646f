// The services the integration tests rely on (set up by scripts/services.sh) answer and are
// configured as needed. An unreachable service fails here, loudly: never skipped.
import { afterAll, describe, expect, it } from "vitest";
import pg from "pg";
import mysql from "mysql2/promise";
import type { RowDataPacket } from "mysql2/promise";
import { Redis } from "ioredis";
import { testServiceUrls, unreachableMessage } from "../helpers/services.ts";

const urls = testServiceUrls();
const CONNECT_TIMEOUT_MS = 5_000;

/** Runs `connect`; a failure becomes an error that says how to bring the service up. */
async function reach<T>(service: string, url: string, connect: () => Promise<T>): Promise<T> {
  try {
    return await connect();
  } catch (cause) {
    throw new Error(unreachableMessage(service, url, cause), { cause });
  }
}

const closers: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  await Promise.allSettled(closers.map((close) => close()));
});

describe("test services (scripts/services.sh)", () => {
  it("PostgreSQL answers and allows prepared transactions", async () => {
    const client = new pg.Client({ connectionString: urls.pg, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
    client.on("error", () => {}); // a dropped connection must not crash the worker
    closers.push(() => client.end());
    await reach("PostgreSQL", urls.pg, () => client.connect());

    const one = await client.query<{ one: number }>("select 1 as one");
    expect(one.rows[0]?.one).toBe(1);

    const prepared = await client.query<{ max_prepared_transactions: string }>("SHOW max_prepared_transactions");
    const maxPrepared = Number(prepared.rows[0]?.max_prepared_transactions);
    expect(maxPrepared, "Postgres max_prepared_transactions must be >= 64 for XA: run scripts/services.sh").toBeGreaterThanOrEqual(64);

    const conns = await client.query<{ max_connections: string }>("SHOW max_connections");
    expect(Number(conns.rows[0]?.max_connections), "Postgres max_connections: run scripts/services.sh").toBeGreaterThanOrEqual(200);
  });

  it("MariaDB/MySQL answers", async () => {
    const conn = await reach("MariaDB/MySQL", urls.mysql, () =>
      mysql.createConnection({ uri: urls.mysql, connectTimeout: CONNECT_TIMEOUT_MS }),
    );
    conn.on("error", () => {});
    closers.push(() => conn.end());

    const [rows] = await conn.query<RowDataPacket[]>("select 1 as one, @@max_connections as max_connections");
    expect(Number(rows[0]?.["one"])).toBe(1);
    expect(Number(rows[0]?.["max_connections"]), "MariaDB max_connections: run scripts/services.sh").toBeGreaterThanOrEqual(300);
  });

  it("Redis answers PING, and keeps what it acknowledges (the settings dtx's Redis store requires)", async () => {
    const redis = new Redis(urls.redis, {
      lazyConnect: true,
      connectTimeout: CONNECT_TIMEOUT_MS,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null, // fail fast instead of reconnecting forever
    });
    let lastError: unknown;
    redis.on("error", (error: unknown) => {
      lastError = error; // reported through connect()'s rejection instead
    });
    closers.push(async () => {
      if (redis.status === "ready") await redis.quit();
      else redis.disconnect();
    });
    // connect() rejects with a bare "Connection is closed."; the error event says why.
    await reach("Redis", urls.redis, () => redis.connect().catch((error: unknown) => Promise.reject(lastError ?? error)));

    expect(await redis.ping()).toBe("PONG");
    for (const [name, safe] of [["appendonly", "yes"], ["appendfsync", "always"], ["maxmemory-policy", "noeviction"]]) {
      const [, value] = (await redis.config("GET", name ?? "")) as string[];
      expect(value, `Redis ${name} must be ${safe} (docs/redis.md): run scripts/services.sh`).toBe(safe);
    }
  });
});
