/**
 * Kysely's Postgres driver sends every query as an unnamed statement, so Postgres parses,
 * analyses and plans it on every call. The store's hot statements are CTEs over unnest(), where
 * that is most of the work: measured on this project's 2-core machine, an updateTrans with one
 * branch cost 350 µs of Postgres CPU unnamed and 140 µs as a named prepared statement.
 *
 * This pool hands kysely clients whose parameterised queries run as named statements, one name
 * per distinct SQL text: node-postgres parses a name once per connection and then only binds and
 * executes it. The store's SQL has a fixed set of shapes (branch lists travel as arrays), but a
 * cap keeps a shape-per-call query from growing every connection's statement cache for ever.
 */
import type { PostgresPool, PostgresPoolClient } from "kysely";
import pg from "pg";

/** Distinct statement texts that get a name; later ones run unnamed. */
const MAX_NAMED_STATEMENTS = 500;

export class StatementNames {
  private readonly names = new Map<string, string>();

  /** The name for `text`, or undefined once the cap is reached. */
  of(text: string): string | undefined {
    let name = this.names.get(text);
    if (name === undefined && this.names.size < MAX_NAMED_STATEMENTS) {
      name = `dtx_${this.names.size}`;
      this.names.set(text, name);
    }
    return name;
  }

  get size(): number {
    return this.names.size;
  }
}

type QueryFn = (text: string, values: readonly unknown[]) => Promise<pg.QueryResult>;

/**
 * `pool` for kysely's PostgresDialect. One wrapper per pg client, because kysely keeps its
 * connection object (and runs onCreateConnection) per client object it is handed.
 *
 * `names` undefined runs every statement unnamed (prepareStatements: false). Either way, a client
 * whose query failed with anything but an answer from the server (pg's query_timeout, a broken
 * socket) is destroyed on release instead of going back to the pool: after a client-side
 * timeout its statement is still the one pg waits for, so every later query on it would hang
 * too (docs/store-outages.md).
 */
export function preparingPool(pool: pg.Pool, names: StatementNames | undefined): PostgresPool {
  const wrappers = new WeakMap<pg.PoolClient, PostgresPoolClient>();
  const broken = new WeakSet<pg.PoolClient>();
  const wrap = (client: pg.PoolClient): PostgresPoolClient => {
    const send: QueryFn = (text, values) => {
      const name = values.length > 0 ? names?.of(text) : undefined;
      return name === undefined ? client.query(text, [...values]) : client.query({ name, text, values: [...values] });
    };
    const run: QueryFn = (text, values) => send(text, values).catch((error: unknown) => {
      if (!(error instanceof pg.DatabaseError)) broken.add(client);
      throw error;
    });
    const release = (): void => {
      if (!broken.has(client)) return client.release();
      broken.delete(client);
      wrappers.delete(client);
      client.release(new Error("dtx: the connection failed or timed out; destroyed"));
    };
    // kysely only ever calls query(text, values) on a dialect without a cursor class.
    return { query: run as unknown as PostgresPoolClient["query"], release };
  };
  return {
    async connect() {
      const client = await pool.connect();
      let wrapper = wrappers.get(client);
      if (!wrapper) wrappers.set(client, (wrapper = wrap(client)));
      return wrapper;
    },
    end: () => pool.end(),
  };
}
