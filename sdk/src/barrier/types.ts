/**
 * The shapes of the database drivers the barrier drives. They are structural, so the SDK needs
 * none of the optional peer dependencies (pg, mysql2, kysely, mongodb, ioredis) at run time or
 * for type checking; the real driver objects satisfy them.
 */

/** Branch identity, as dtm sends it to every branch call (docs/protocol.md#what-clients-send). */
export interface BranchInfo {
  readonly transType: string;
  readonly gid: string;
  readonly branchId: string;
  readonly op: string;
}

/** Options shared by every barrier. */
export interface BarrierOptions {
  /**
   * The barrier table, `schema.table` (Postgres) or `database.table` (MySQL); for Mongo
   * `database.collection`. Default: the value set with {@link setBarrierTableName}, initially
   * `dtm_barrier.barrier`.
   */
  readonly tableName?: string;
  /** The SQL dialect of a Kysely transaction, when it cannot be told from the compiled SQL. */
  readonly dialect?: SqlDialect;
  /**
   * `callWithPg` sends `BEGIN` and the barrier INSERTs as one multi-statement query (one round
   * trip instead of two or three) when trans_type, gid, branch_id and op only use
   * [A-Za-z0-9_.:-] (values are then written as literals, no escaping involved; other values
   * go as parameters in separate statements). Default true; set false for a pg-compatible
   * client that does not answer multi-statement queries with one result per statement.
   */
  readonly pgBatchBegin?: boolean;
  /**
   * With `pgBatchBegin`, `callWithPg` makes the barrier INSERT a prepared statement on each
   * connection (`PREPARE dtx_barrier_<hash>`, sent once per pg client with its first batch, then
   * `BEGIN;EXECUTE ...`), so Postgres does not parse and plan it on every call. A client whose
   * connection loses the statement (DISCARD ALL, or a pooler such as PgBouncer in transaction
   * mode that moves sessions between server connections) falls back to plain INSERTs by itself.
   * Default true; set false to never create session state on the connection.
   */
  readonly pgPrepare?: boolean;
}

export type SqlDialect = "postgres" | "mysql";

/** The outcome of a barrier call. */
export type BarrierResult<T> =
  | { readonly executed: true; readonly value: T; readonly barrierId: string }
  | {
      readonly executed: false;
      /**
       * `null_compensation`: a cancel/compensate/rollback arrived before its try/action; nothing
       * was done and the late try/action will be refused. `duplicate_or_hanging`: this op already
       * ran (a repeated request), or it is a try/action arriving after its compensation.
       */
      readonly skipped: "null_compensation" | "duplicate_or_hanging";
      readonly barrierId: string;
    };

// ---------------------------------------------------------------------------------------------
// pg

export interface PgQueryResultLike<R = Record<string, unknown>> {
  readonly rowCount: number | null;
  readonly rows: R[];
}

/** A `pg` Client or PoolClient (or a Pool, for statements that need no transaction). */
export interface PgQueryable {
  query<R = Record<string, unknown>>(text: string, values?: unknown[]): Promise<PgQueryResultLike<R>>;
}

/** A `pg` PoolClient. */
export interface PgPoolClientLike extends PgQueryable {
  release(err?: Error | boolean): void;
}

/** A `pg` Pool. */
export interface PgPoolLike extends PgQueryable {
  connect(): Promise<PgPoolClientLike>;
  readonly totalCount: number;
  readonly idleCount: number;
}

// ---------------------------------------------------------------------------------------------
// mysql2/promise

/** A `mysql2/promise` Connection or PoolConnection. */
export interface MysqlConnectionLike {
  query(sql: string, values?: unknown): Promise<[unknown, unknown]>;
  beginTransaction(): Promise<void>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
}

export interface MysqlPoolConnectionLike extends MysqlConnectionLike {
  release(): void;
}

/** A `mysql2/promise` Pool. */
export interface MysqlPoolLike {
  getConnection(): Promise<MysqlPoolConnectionLike>;
  query(sql: string, values?: unknown): Promise<[unknown, unknown]>;
}

// ---------------------------------------------------------------------------------------------
// kysely

/** A Kysely `Transaction` (or a `Kysely`, for statements that need no transaction). */
export interface KyselyExecutorLike {
  executeQuery(query: unknown): Promise<{ readonly rows: unknown[]; readonly numAffectedRows?: bigint }>;
  readonly isTransaction: boolean;
}

/** A `Kysely` instance, whose `transaction().execute(cb)` hands `cb` a transaction of type `Trx`. */
export interface KyselyLike<Trx> extends KyselyExecutorLike {
  transaction(): { execute<T>(callback: (trx: Trx) => Promise<T>): Promise<T> };
}

// ---------------------------------------------------------------------------------------------
// Any other SQL driver

/**
 * An adapter for a SQL driver the barrier does not know: run one statement with positional
 * parameters (`$1, $2...` for postgres, `?` for mysql) inside the caller's transaction.
 */
export interface BarrierSqlTx {
  readonly barrierDialect: SqlDialect;
  execute(sql: string, params: readonly unknown[]): Promise<{ affectedRows: number; rows: readonly Record<string, unknown>[] }>;
}

// ---------------------------------------------------------------------------------------------
// mongodb

export interface MongoDocumentLike {
  [key: string]: unknown;
}

/** The parts of a `mongodb` ClientSession the barrier uses. */
export interface MongoSessionLike {
  startTransaction(options?: unknown): void;
  commitTransaction(): Promise<unknown>;
  abortTransaction(): Promise<unknown>;
  inTransaction(): boolean;
  endSession(): Promise<void>;
}

/** The parts of a `mongodb` Collection the barrier uses. */
export interface MongoCollectionLike {
  findOne(filter: MongoDocumentLike, options?: { session?: unknown }): Promise<unknown>;
  insertOne(doc: MongoDocumentLike, options?: { session?: unknown }): Promise<unknown>;
  createIndex(spec: Record<string, 1>, options?: { unique?: boolean; name?: string }): Promise<string>;
}

/** A `mongodb` MongoClient, with its session type `S`. */
export interface MongoClientLike<S extends MongoSessionLike = MongoSessionLike> {
  startSession(): S;
  db(name: string): { collection(name: string): MongoCollectionLike };
}

// ---------------------------------------------------------------------------------------------
// ioredis

/** An ioredis `Redis` client (`Cluster` works when all keys of one call hash to one slot). */
export interface RedisLike {
  defineCommand(name: string, definition: { lua: string; numberOfKeys?: number; readOnly?: boolean }): void;
}
