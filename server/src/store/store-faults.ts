/**
 * Which driver errors mean "the store is unavailable" (a fault of the database or the network,
 * retryable later) rather than a bug: each driver says it differently. See docs/store-outages.md.
 */

/** Socket-level errors Node and the drivers report with a `code`. */
const NETWORK_CODES = new Set([
  "ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN",
  // mysql2
  "PROTOCOL_SEQUENCE_TIMEOUT", "PROTOCOL_CONNECTION_LOST", "PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR", "PROTOCOL_ENQUEUE_AFTER_QUIT",
  "ER_CON_COUNT_ERROR", "ER_LOCK_WAIT_TIMEOUT", "ER_STATEMENT_TIMEOUT", "ER_QUERY_TIMEOUT",
  // better-sqlite3: another connection holds the lock past busy_timeout
  "SQLITE_BUSY", "SQLITE_BUSY_SNAPSHOT", "SQLITE_BUSY_RECOVERY", "SQLITE_LOCKED",
]);

/** Messages of errors that carry no code (pg, pg-pool, ioredis, mysql2's pool). */
const NETWORK_MESSAGES = [
  "Query read timeout",
  "Connection terminated",
  "timeout exceeded when trying to connect",
  "Client has encountered a connection error",
  "Client was closed and is not queryable",
  "Command timed out",
  "Connection is closed",
  "Stream isn't writeable",
  "Reached the max retries per request limit",
  "Queue limit reached",
  "Pool is closed",
  "connect ETIMEDOUT",
];

/**
 * PostgreSQL SQLSTATE classes of unavailability: 08 connection exception, 53 insufficient
 * resources (too many connections, disk full), 57 operator intervention (statement_timeout's
 * 57014 query_canceled, admin shutdown), 58 system error.
 */
const PG_UNAVAILABLE_CLASSES = new Set(["08", "53", "57", "58"]);

/** True when `error` is a fault of the store or the network under it (see the file comment). */
export function isStoreFault(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error instanceof AggregateError) return error.errors.some(isStoreFault);
  const e = error as Error & { code?: unknown; sqlState?: unknown; fatal?: unknown };
  if (typeof e.code === "string") {
    if (NETWORK_CODES.has(e.code)) return true;
    // pg's DatabaseError carries the SQLSTATE as `code` (five characters).
    if (e.code.length === 5 && PG_UNAVAILABLE_CLASSES.has(e.code.slice(0, 2)) && /^[0-9A-Z]{5}$/.test(e.code)) return true;
  }
  // mysql2 marks errors that killed the connection as fatal.
  if (e.fatal === true) return true;
  if (e.name === "MaxRetriesPerRequestError") return true;
  return NETWORK_MESSAGES.some((m) => e.message.includes(m));
}
