/**
 * The mysql2 pool as kysely's MysqlDialect sees it, with a timeout on every query. mysql2 has a
 * per-query `timeout` but no pool-wide one, and after it fires the connection still waits for the
 * answer of the timed-out query, so every later query on it would hang too: a connection whose
 * query failed without an answer from the server is destroyed instead of going back to the pool
 * (docs/store-outages.md).
 */
import type { MysqlPool, MysqlPoolConnection, MysqlQueryResult } from "kysely";
import type { Pool, PoolConnection } from "mysql2";

type QueryCallback = (error: unknown, result: MysqlQueryResult) => void;

/** An error the server answered (it has an SQLSTATE and did not kill the connection): the connection is fine. */
function isServerAnswer(error: unknown): boolean {
  const e = error as { sqlState?: unknown; fatal?: unknown } | null;
  return typeof e?.sqlState === "string" && e.fatal !== true;
}

/** `pool` for kysely: one wrapper per mysql2 connection (kysely runs onCreateConnection per object it is handed). */
export function timedPool(pool: Pool, timeoutMs: number): MysqlPool {
  const wrappers = new WeakMap<PoolConnection, MysqlPoolConnection>();
  const broken = new WeakSet<PoolConnection>();
  const wrap = (conn: PoolConnection): MysqlPoolConnection => {
    const query = (sql: string, parameters: unknown[], callback?: QueryCallback): unknown => {
      if (callback && broken.has(conn)) {
        // mysql2 starts a query's timer only when the query starts, so a query queued behind the
        // hung one (kysely's ROLLBACK after a failed statement) would wait for ever: fail it now.
        const error = Object.assign(new Error("dtx: the connection stopped answering and is being dropped"), { code: "ECONNABORTED" });
        process.nextTick(() => callback(error, undefined as unknown as MysqlQueryResult));
        return undefined;
      }
      const options = { sql, timeout: timeoutMs };
      if (!callback) return conn.query(options, parameters); // kysely's streamQuery, unused by the store
      conn.query(options, parameters, (error, result) => {
        if (error && !isServerAnswer(error)) broken.add(conn);
        callback(error, result as unknown as MysqlQueryResult);
      });
      return undefined;
    };
    const release = (): void => {
      if (!broken.has(conn)) return conn.release();
      broken.delete(conn);
      wrappers.delete(conn);
      // destroy() also takes it out of the pool, which opens a fresh connection when needed.
      conn.destroy();
    };
    return { query: query as MysqlPoolConnection["query"], release };
  };
  return {
    getConnection(callback) {
      pool.getConnection((error, conn) => {
        if (error) return callback(error, undefined as unknown as MysqlPoolConnection);
        let wrapper = wrappers.get(conn);
        if (!wrapper) wrappers.set(conn, (wrapper = wrap(conn)));
        callback(null, wrapper);
      });
    },
    end: (callback) => pool.end(callback),
  };
}
