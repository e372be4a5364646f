/**
 * A fresh store for one benchmark run: the coordinator's DTX_STORE_* environment, and a way to
 * drop what the run wrote. SQLite needs nothing (the bench passes a temp file); a network store
 * gets a Postgres schema, a MySQL database or a Redis key prefix of its own on the test services
 * (scripts/services.sh), so a run never reads another's rows and leaves nothing behind.
 */
import { Redis } from "ioredis";
import { MysqlArea, PgArea } from "../../test/helpers/store-areas.ts";
import { redactUrl, testServiceUrls } from "../../test/helpers/services.ts";

export interface BenchStore {
  /** Environment for the coordinator. */
  readonly env: Record<string, string>;
  /** For the log line and the results (no password). */
  readonly describe: string;
  drop(): Promise<void>;
}

export async function openBenchStore(driver: "sqlite" | "postgres" | "mysql" | "redis", url: string | undefined, runId: string): Promise<BenchStore> {
  const services = testServiceUrls();
  switch (driver) {
    case "sqlite":
      return { env: {}, describe: "sqlite", drop: async () => undefined };
    case "postgres": {
      const area = new PgArea(`bench_${runId}`, url ?? services.pg);
      await area.open();
      return {
        env: { DTX_STORE_DRIVER: "postgres", DTX_STORE_URL: area.url, DTX_STORE_SCHEMA: area.schema },
        describe: `postgres ${redactUrl(area.url)} schema ${area.schema}`,
        drop: () => area.close(),
      };
    }
    case "mysql": {
      const area = new MysqlArea(`bench_${runId}`, url ?? services.mysql);
      await area.open();
      return { env: { DTX_STORE_DRIVER: "mysql", DTX_STORE_URL: area.url }, describe: `mysql ${redactUrl(area.url)}`, drop: () => area.close() };
    }
    case "redis": {
      const redisUrl = url ?? services.redis;
      const prefix = `{dtxbench${runId}}`;
      return {
        env: { DTX_STORE_DRIVER: "redis", DTX_STORE_URL: redisUrl, DTX_STORE_PREFIX: prefix },
        describe: `redis ${redactUrl(redisUrl)} prefix ${prefix}`,
        drop: () => deleteRedisPrefix(redisUrl, prefix),
      };
    }
  }
}

async function deleteRedisPrefix(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 10_000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}
