/**
 * Where the integration and e2e tests find PostgreSQL, MariaDB/MySQL and Redis.
 *
 * Defaults match what `scripts/services.sh` sets up on 127.0.0.1; set
 * DTX_TEST_PG_URL / DTX_TEST_MYSQL_URL / DTX_TEST_REDIS_URL to use servers of your own.
 */
export interface TestServiceUrls {
  pg: string;
  mysql: string;
  redis: string;
}

export const DEFAULT_TEST_SERVICE_URLS: Readonly<TestServiceUrls> = Object.freeze({
  pg: "postgres://postgres@127.0.0.1:5432/dtx_test",
  mysql: "mysql://root@127.0.0.1:3306/dtx_test",
  redis: "redis://127.0.0.1:6379",
});

function fromEnv(name: string, fallback: string): string {
  const value = process.env[name]?.trim();
  return value ? value : fallback;
}

export function testServiceUrls(): TestServiceUrls {
  return {
    pg: fromEnv("DTX_TEST_PG_URL", DEFAULT_TEST_SERVICE_URLS.pg),
    mysql: fromEnv("DTX_TEST_MYSQL_URL", DEFAULT_TEST_SERVICE_URLS.mysql),
    redis: fromEnv("DTX_TEST_REDIS_URL", DEFAULT_TEST_SERVICE_URLS.redis),
  };
}

/** A URL with its password masked, for error messages. */
export function redactUrl(url: string): string {
  return url.replace(/(:\/\/[^:/@]*):[^@/]*@/, "$1:***@");
}

/** The message for a test that could not reach one of the services. */
export function unreachableMessage(service: string, url: string, cause: unknown): string {
  return (
    `${service} is not reachable at ${redactUrl(url)} (${describeError(cause)}). ` +
    `Run 'bash scripts/services.sh' (as root it installs and starts PostgreSQL, MariaDB and Redis), ` +
    `or point DTX_TEST_PG_URL / DTX_TEST_MYSQL_URL / DTX_TEST_REDIS_URL at servers of your own.`
  );
}

function describeError(cause: unknown): string {
  if (!(cause instanceof Error)) return String(cause);
  // Node's AggregateError (e.g. ECONNREFUSED on both ::1 and 127.0.0.1) has an empty message.
  if (cause instanceof AggregateError && cause.errors.length > 0) {
    return cause.errors.map((e: unknown) => describeError(e)).join("; ");
  }
  const code = (cause as { code?: unknown }).code;
  const text = cause.message || cause.name;
  return typeof code === "string" && !text.includes(code) ? `${code}: ${text}` : text;
}
