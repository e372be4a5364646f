/**
 * A fresh store for one benchmark run: the coordinator's DTX_STORE_* environment, and a way to
 * drop what the run wrote. SQLite needs nothing (the bench passes a temp file); a network store
 * gets a Postgres schema, a MySQL database or a Redis key prefix of its own on the test services
 * (scripts/services.sh), so a run never reads another's rows and leaves nothing behind.
 */
import { MysqlArea, PgArea, RedisArea } from "../../test/helpers/store-areas.ts";
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
      const area = new RedisArea(`bench_${runId}`, url ?? services.redis);
      await area.open();
      return {
        env: { DTX_STORE_DRIVER: "redis", DTX_STORE_URL: area.url, DTX_STORE_PREFIX: area.prefix },
        describe: `redis ${redactUrl(area.url)} prefix ${area.prefix}`,
        drop: () => area.close(),
      };
    }
  }
}
