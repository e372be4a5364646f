/**
 * The database clients of the participant's setup, handlers and snapshot: a pg Pool, a mysql2
 * Pool and an ioredis client, each with bounded waits, so that a database that hangs (SIGSTOP, a
 * black-holed link) turns into an error the coordinator retries instead of a call that never ends.
 */
import { Redis } from "ioredis";
import mysql from "mysql2/promise";
import pg from "pg";
import { DEFAULT_REDIS_PREFIX, type DbUrls, type ParticipantDbOptions } from "./db-urls.ts";

/** Upper bound of one statement or Redis command, in ms. */
export const STORE_CALL_TIMEOUT_MS = 10_000;
/**
 * Upper bound of one wait for a row lock, in ms: no longer than the coordinator waits for the
 * answer (the chaos timings' request timeout, 1 s). A participant that waits longer keeps a slot
 * and a connection busy for an answer nobody reads; with a prepared XA branch holding a row that
 * many calls want, those waits filled every slot of both participants (full profile, seed 1,
 * postgres: the workflows whose XA steps held the locks then could not get their own phase 2
 * through, 4,000 gids open 60 s after the last fault). Statements keep the longer bound above.
 */
export const LOCK_WAIT_TIMEOUT_MS = 1_000;
/** Upper bound of opening a connection, in ms. */
export const CONNECT_TIMEOUT_MS = 5_000;

export interface ParticipantClients {
  pg: pg.Pool;
  mysql: mysql.Pool;
  /**
   * Pools of their own for XA phase 2 (COMMIT / ROLLBACK PREPARED), which releases the row locks
   * a prepared branch holds: in the shared pools it would wait behind the very calls that wait on
   * those locks (seen in the postgres smoke, seed 1: prepared XA stranded for minutes, every
   * pool connection in a lock wait, the commits queued behind them).
   */
  xaPg: pg.Pool;
  xaMysql: mysql.Pool;
  /** Every key this client names gets the Redis prefix (ioredis `keyPrefix`, Lua keys included). */
  redis: Redis;
  /** The prefix `redis` puts in front of every key. */
  redisPrefix: string;
  urls: DbUrls;
}

/** A pg Pool with a connect timeout and a statement timeout (server side and client side). */
export function openPgPool(url: string, max: number): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    statement_timeout: STORE_CALL_TIMEOUT_MS,
    lock_timeout: LOCK_WAIT_TIMEOUT_MS,
    query_timeout: STORE_CALL_TIMEOUT_MS + 1_000,
    idle_in_transaction_session_timeout: STORE_CALL_TIMEOUT_MS * 3,
  });
  // An idle client whose server went away emits 'error'; without a listener that kills the process.
  pool.on("error", () => undefined);
  // So does a checked-out client between two queries (an XA session waiting on the coordinator)
  // when its server crashes: the pool only listens while the client is idle. Its next query fails.
  pool.on("connect", (client) => client.on("error", () => undefined));
  return pool;
}

/** The session settings every MariaDB connection gets: bounded lock waits and statements. */
export const MYSQL_SESSION_SQL = `SET SESSION innodb_lock_wait_timeout = ${LOCK_WAIT_TIMEOUT_MS / 1000}, max_statement_time = ${STORE_CALL_TIMEOUT_MS / 1000}`;

/** A mysql2 pool with a connect timeout and bounded waits per session. */
export function openMysqlPool(url: string, connectionLimit: number): mysql.Pool {
  const pool = mysql.createPool({ uri: url, connectionLimit, connectTimeout: CONNECT_TIMEOUT_MS, enableKeepAlive: true, maxIdle: connectionLimit, queueLimit: 100 });
  pool.pool.on("connection", (conn) => {
    conn.query(MYSQL_SESSION_SQL);
  });
  return pool;
}

/** A dedicated MariaDB session (XA needs one per branch: it is closed after XA PREPARE). */
export async function openMysqlConnection(url: string): Promise<mysql.Connection> {
  const conn = await mysql.createConnection({ uri: url, connectTimeout: CONNECT_TIMEOUT_MS });
  await conn.query(MYSQL_SESSION_SQL);
  return conn;
}

/** An ioredis client whose commands time out and whose keys all carry `prefix`. */
export function openRedis(url: string, prefix: string): Redis {
  const redis = new Redis(url, { keyPrefix: prefix, commandTimeout: STORE_CALL_TIMEOUT_MS, connectTimeout: CONNECT_TIMEOUT_MS, maxRetriesPerRequest: 2, lazyConnect: false });
  redis.on("error", () => undefined);
  return redis;
}

/** Opens the three clients; `poolSize` connections at most per SQL pool. */
export function openClients(urls: DbUrls, options: ParticipantDbOptions & { poolSize?: number } = {}): ParticipantClients {
  const size = options.poolSize ?? 8;
  const redisPrefix = options.redisPrefix ?? DEFAULT_REDIS_PREFIX;
  return {
    pg: openPgPool(urls.postgres, size),
    mysql: openMysqlPool(urls.mysql, size),
    xaPg: openPgPool(urls.postgres, XA_PHASE2_POOL_SIZE),
    xaMysql: openMysqlPool(urls.mysql, XA_PHASE2_POOL_SIZE),
    redis: openRedis(urls.redis, redisPrefix),
    redisPrefix,
    urls,
  };
}

/** Connections reserved for XA phase 2 per database (pools connect lazily: none are opened unless used). */
export const XA_PHASE2_POOL_SIZE = 4;

/** Closes every pool and the Redis client (errors of already-broken connections are ignored). */
export async function closeClients(c: ParticipantClients): Promise<void> {
  await Promise.allSettled([c.pg.end(), c.mysql.end(), c.xaPg.end(), c.xaMysql.end(), c.redis.quit()]);
}
