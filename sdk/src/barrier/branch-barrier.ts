/**
 * The sub-transaction barrier (docs/protocol.md#branch-barrier): makes an RM handler safe against duplicate
 * requests, a compensation that arrives before its try/action (null compensation) and a
 * try/action that arrives after its compensation (hanging).
 */
import type { BranchSignatureVerifier } from "../handlers/signature.ts";
import { BarrierError } from "./errors.ts";
import { mongoBarrierCall, mongoQueryPrepared, type MongoCallOptions } from "./mongo.ts";
import { DEFAULT_REDIS_BARRIER_EXPIRE_SECONDS, redisCheckAdjustAmount, redisQueryPrepared } from "./redis.ts";
import { autocommitRunner, barrierRows, barrierSkip, insertBarrier, pgBeginWithInserts, pgRunner, sqlBarrierCall, sqlKind, sqlQueryPrepared, txRunner } from "./sql.ts";
import { checkTableName, getBarrierTableName } from "./table-name.ts";
import type {
  BarrierOptions,
  BarrierResult,
  BarrierSqlTx,
  BranchInfo,
  KyselyExecutorLike,
  KyselyLike,
  MongoClientLike,
  MongoSessionLike,
  MysqlConnectionLike,
  MysqlPoolConnectionLike,
  MysqlPoolLike,
  PgPoolClientLike,
  PgQueryable,
  RedisLike,
  SqlDialect,
} from "./types.ts";

/** Query parameters: Fastify's/Express's `req.query`, or a `URLSearchParams`. */
export type BranchQuery = URLSearchParams | Readonly<Record<string, unknown>>;

/** gRPC metadata: grpc-js `Metadata`, or anything with the same `get`. */
export interface BranchMetadata {
  get(key: string): (string | Buffer | Uint8Array)[];
}

/** A pg Pool that hands out clients of type `C`. */
export interface PgPoolOf<C extends PgQueryable> extends PgQueryable {
  connect(): Promise<C & PgPoolClientLike>;
  readonly totalCount: number;
  readonly idleCount: number;
}

/** A mysql2/promise Pool that hands out connections of type `C`. */
export interface MysqlPoolOf<C extends MysqlConnectionLike> {
  getConnection(): Promise<C & MysqlPoolConnectionLike>;
  query(sql: string, values?: unknown): Promise<[unknown, unknown]>;
}

/** A database `callWithDB` / `doAndSubmitDB` can open a transaction on. */
export type BarrierDb = PgPoolOf<PgQueryable> | MysqlPoolOf<MysqlConnectionLike> | KyselyLike<KyselyExecutorLike> | MongoClientLike;

const FIELDS = [
  ["transType", "trans_type", 45],
  ["gid", "gid", 128],
  ["branchId", "branch_id", 128],
  ["op", "op", 45],
] as const;

function checkInfo(info: Readonly<Record<(typeof FIELDS)[number][0], unknown>>, source: string): BranchInfo {
  for (const [field, wire, max] of FIELDS) {
    const value = info[field];
    if (value === undefined || value === null || value === "") {
      throw new BarrierError("BARRIER_MISSING_PARAM", `invalid trans info: ${wire} is missing in the ${source}`);
    }
    if (typeof value !== "string") throw new BarrierError("BARRIER_INVALID_PARAM", `invalid trans info: ${wire} in the ${source} is not a string`);
    if (value.length > max) throw new BarrierError("BARRIER_INVALID_PARAM", `invalid trans info: ${wire} is longer than ${max} characters`);
  }
  return info as unknown as BranchInfo;
}

function queryValue(query: BranchQuery, key: string): unknown {
  if (query instanceof URLSearchParams) {
    const all = query.getAll(key);
    if (all.length > 1) throw new BarrierError("BARRIER_INVALID_PARAM", `invalid trans info: ${key} is repeated in the query`);
    return all[0];
  }
  const value = Object.hasOwn(query, key) ? query[key] : undefined;
  if (Array.isArray(value)) {
    if (value.length > 1) throw new BarrierError("BARRIER_INVALID_PARAM", `invalid trans info: ${key} is repeated in the query`);
    return value[0];
  }
  return value;
}

function metadataValue(md: BranchMetadata, key: string): string | undefined {
  const first = md.get(key)[0];
  if (first === undefined) return undefined;
  return typeof first === "string" ? first : Buffer.from(first).toString("utf8");
}

export class BranchBarrier implements BranchInfo {
  readonly transType: string;
  readonly gid: string;
  readonly branchId: string;
  readonly op: string;
  /** The barrier table (SQL) or `database.collection` (Mongo). */
  readonly tableName: string;
  readonly dialect: SqlDialect | undefined;
  readonly pgBatchBegin: boolean;
  readonly pgPrepare: boolean;
  #barrierId = 0;

  constructor(info: BranchInfo, options: BarrierOptions = {}) {
    const checked = checkInfo(info, "branch info");
    this.transType = checked.transType;
    this.gid = checked.gid;
    this.branchId = checked.branchId;
    this.op = checked.op;
    this.tableName = checkTableName(options.tableName ?? getBarrierTableName());
    this.dialect = options.dialect;
    this.pgBatchBegin = options.pgBatchBegin ?? true;
    this.pgPrepare = options.pgPrepare ?? true;
  }

  /** From an HTTP branch call's query: trans_type, gid, branch_id and op, all required. */
  static fromQuery(query: BranchQuery, options?: BarrierOptions): BranchBarrier {
    const info = checkInfo(
      {
        transType: queryValue(query, "trans_type"),
        gid: queryValue(query, "gid"),
        branchId: queryValue(query, "branch_id"),
        op: queryValue(query, "op"),
      },
      "query",
    );
    return new BranchBarrier(info, options);
  }

  /** From a gRPC branch call's metadata: dtm-trans_type, dtm-gid, dtm-branch_id, dtm-op. */
  static fromMetadata(md: BranchMetadata, options?: BarrierOptions): BranchBarrier {
    const info = checkInfo(
      {
        transType: metadataValue(md, "dtm-trans_type"),
        gid: metadataValue(md, "dtm-gid"),
        branchId: metadataValue(md, "dtm-branch_id"),
        op: metadataValue(md, "dtm-op"),
      },
      "gRPC metadata",
    );
    return new BranchBarrier(info, options);
  }

  /**
   * From an HTTP branch call whose branch signature is checked first
   * (docs: Signed branch calls): `url` is the raw path and query as received (node's `req.url`,
   * express's `req.originalUrl`), `body` the raw body. A request that does not verify throws an
   * `UNAUTHENTICATED` DtxError (the handler helpers answer 401) before any barrier work.
   */
  static fromSignedHttp(
    request: { method: string; url: string; headers: Readonly<Record<string, unknown>>; body: Uint8Array | string },
    verifier: BranchSignatureVerifier,
    options?: BarrierOptions,
  ): BranchBarrier {
    verifier.verifyHttp(request);
    return BranchBarrier.fromQuery(new URL(request.url, "http://localhost").searchParams, options);
  }

  /**
   * From a gRPC branch call whose branch signature is checked first: `path` is
   * `/package.Service/Method` (grpc-js `call.getPath()`), `message` the request's bytes. A call
   * that does not verify throws an `UNAUTHENTICATED` DtxError (`grpcHandler` answers UNAUTHENTICATED).
   */
  static fromSignedGrpc(call: { path: string; metadata: BranchMetadata; message: Uint8Array }, verifier: BranchSignatureVerifier, options?: BarrierOptions): BranchBarrier {
    verifier.verifyGrpc(call);
    return BranchBarrier.fromMetadata(call.metadata, options);
  }

  /** How many barrier ids this object has handed out. */
  get barrierCount(): number {
    return this.#barrierId;
  }

  /** The next barrier_id: "01" for the first call on this object, "02" for the second... */
  newBarrierId(): string {
    this.#barrierId += 1;
    return String(this.#barrierId).padStart(2, "0");
  }

  // -------------------------------------------------------------------------------------------
  // SQL

  /**
   * Runs the barrier, then `fn`, on a connection inside a transaction the caller manages (a pg
   * client after BEGIN, a mysql2/promise connection after beginTransaction(), a Kysely
   * Transaction, or a {@link BarrierSqlTx}). Commit when it resolves (also when `fn` was
   * skipped: the barrier rows must be kept); roll back when it rejects.
   */
  async call<Tx extends PgQueryable | MysqlConnectionLike | KyselyExecutorLike | BarrierSqlTx, T>(tx: Tx, fn: (tx: Tx) => Promise<T>): Promise<BarrierResult<T>> {
    const runner = await txRunner(tx, this.dialect);
    return sqlBarrierCall(this, this.tableName, this.newBarrierId(), runner, () => fn(tx));
  }

  /** BEGIN on a client from `db` (a pg Pool, or a connected Client), {@link call}, COMMIT or ROLLBACK. */
  callWithPg<T, C extends PgQueryable = PgPoolClientLike>(pool: PgPoolOf<C>, fn: (client: C) => Promise<T>): Promise<BarrierResult<T>>;
  callWithPg<T, C extends PgQueryable>(client: C, fn: (client: C) => Promise<T>): Promise<BarrierResult<T>>;
  async callWithPg<T, C extends PgQueryable>(db: PgPoolOf<C> | C, fn: (client: C) => Promise<T>): Promise<BarrierResult<T>> {
    const pooled = sqlKind(db) === "pg-pool" ? await (db as PgPoolOf<C>).connect() : undefined;
    const client: C = pooled ?? (db as C);
    let broken: Error | undefined;
    try {
      const barrierId = this.newBarrierId();
      const rows = barrierRows(this, barrierId);
      // BEGIN and the barrier INSERTs go in one round trip when the values allow it.
      const batch = this.pgBatchBegin ? pgBeginWithInserts(client, this.tableName, rows, this.pgPrepare) : undefined;
      if (!batch) await client.query("BEGIN");
      try {
        let counts: number[];
        if (batch) counts = await batch;
        else {
          counts = [];
          for (const row of rows) counts.push(await insertBarrier(pgRunner(client), this.tableName, row));
        }
        const result: BarrierResult<T> = barrierSkip(this, barrierId, counts) ?? { executed: true, value: await fn(client), barrierId };
        await client.query("COMMIT");
        return result;
      } catch (err) {
        try {
          await client.query("ROLLBACK");
        } catch (rollbackError) {
          broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
        }
        throw err;
      }
    } finally {
      // A client whose ROLLBACK failed is destroyed rather than returned to the pool.
      pooled?.release(broken ?? false);
    }
  }

  /** beginTransaction on a connection from `db` (a mysql2/promise Pool, or a Connection), {@link call}, commit or rollback. */
  callWithMysql<T, C extends MysqlConnectionLike = MysqlPoolConnectionLike>(pool: MysqlPoolOf<C>, fn: (conn: C) => Promise<T>): Promise<BarrierResult<T>>;
  callWithMysql<T, C extends MysqlConnectionLike>(conn: C, fn: (conn: C) => Promise<T>): Promise<BarrierResult<T>>;
  async callWithMysql<T, C extends MysqlConnectionLike>(db: MysqlPoolOf<C> | C, fn: (conn: C) => Promise<T>): Promise<BarrierResult<T>> {
    let pooled = sqlKind(db) === "mysql-pool" ? await (db as MysqlPoolOf<C>).getConnection() : undefined;
    const conn: C = pooled ?? (db as C);
    try {
      await conn.beginTransaction();
      try {
        const result = await this.call(conn, fn);
        await conn.commit();
        return result;
      } catch (err) {
        try {
          await conn.rollback();
        } catch {
          // The connection is broken (the server rolls the transaction back): do not pool it.
          const destroy = (pooled as { destroy?: unknown } | undefined)?.destroy;
          if (typeof destroy === "function") {
            (destroy as () => void).call(pooled);
            pooled = undefined;
          }
        }
        throw err;
      }
    } finally {
      pooled?.release();
    }
  }

  /** `db.transaction().execute(trx => bb.call(trx, fn))`. */
  callWithKysely<Trx extends KyselyExecutorLike, T>(db: KyselyLike<Trx>, fn: (trx: Trx) => Promise<T>): Promise<BarrierResult<T>> {
    return db.transaction().execute((trx) => this.call(trx, fn));
  }

  /**
   * Opens a transaction on `db` (pg Pool, mysql2/promise Pool, Kysely, MongoClient) and runs the
   * barrier and `fn` in it.
   */
  callWithDB<T, C extends PgQueryable = PgPoolClientLike>(db: PgPoolOf<C>, fn: (client: C) => Promise<T>): Promise<BarrierResult<T>>;
  callWithDB<T, C extends MysqlConnectionLike = MysqlPoolConnectionLike>(db: MysqlPoolOf<C>, fn: (conn: C) => Promise<T>): Promise<BarrierResult<T>>;
  callWithDB<T, Trx extends KyselyExecutorLike>(db: KyselyLike<Trx>, fn: (trx: Trx) => Promise<T>): Promise<BarrierResult<T>>;
  callWithDB<T, S extends MongoSessionLike>(db: MongoClientLike<S>, fn: (session: S) => Promise<T>): Promise<BarrierResult<T>>;
  callWithDB<T>(db: BarrierDb, fn: (tx: never) => Promise<T>): Promise<BarrierResult<T>>;
  callWithDB(db: unknown, fn: (tx: never) => Promise<unknown>): Promise<BarrierResult<unknown>> {
    const kind = sqlKind(db);
    const f = fn as (tx: unknown) => Promise<unknown>;
    if (isMongoClient(db)) return this.mongoCall(db, f);
    switch (kind) {
      case "pg-pool":
      case "pg":
        return this.callWithPg(db as PgPoolOf<PgPoolClientLike>, f);
      case "mysql-pool":
      case "mysql":
        return this.callWithMysql(db as MysqlPoolOf<MysqlConnectionLike>, f);
      case "kysely":
        if ((db as KyselyExecutorLike).isTransaction) return this.call(db as KyselyExecutorLike, f);
        return this.callWithKysely(db as KyselyLike<KyselyExecutorLike>, f);
      default:
        return Promise.reject(new BarrierError("BARRIER_UNSUPPORTED_DB", "callWithDB supports pg, mysql2/promise, Kysely and MongoClient"));
    }
  }

  /**
   * The msg check-back (docs/protocol.md#msg-check-back) for a barrier built from the check-back request:
   * resolves when the local transaction committed (the coordinator then submits the msg); rejects
   * with a FAILURE {@link BarrierError} when it did not and never will (answer 409 / ABORTED).
   * `db`: a pg Pool/Client, a mysql2/promise Pool/Connection, a Kysely, a MongoClient or a
   * BarrierSqlTx, in autocommit mode.
   */
  async queryPrepared(db: PgQueryable | MysqlPoolLike | MysqlConnectionLike | KyselyExecutorLike | BarrierSqlTx | MongoClientLike): Promise<void> {
    if (isMongoClient(db)) return this.mongoQueryPrepared(db);
    return sqlQueryPrepared(this, this.tableName, await autocommitRunner(db, this.dialect));
  }

  // -------------------------------------------------------------------------------------------
  // Mongo

  /**
   * The barrier and `fn` in one Mongo session transaction (a replica set is required). `fn`
   * must pass the session to every operation: `coll.updateOne(filter, update, { session })`.
   */
  mongoCall<S extends MongoSessionLike, T>(client: MongoClientLike<S>, fn: (session: S) => Promise<T>, options?: MongoCallOptions): Promise<BarrierResult<T>> {
    return mongoBarrierCall(this, this.tableName, this.newBarrierId(), client, fn, options);
  }

  /** The msg check-back on Mongo. */
  mongoQueryPrepared(client: MongoClientLike): Promise<void> {
    return mongoQueryPrepared(this, this.tableName, client);
  }

  // -------------------------------------------------------------------------------------------
  // Redis

  /**
   * Adds `amount` (negative to take) to the integer at `key`, at most once per branch op, in one
   * Lua script. Rejects with FAILURE when `key` is missing or would go below zero. A cancel or
   * compensate that arrives first changes nothing and blocks its late try/action.
   */
  redisCheckAdjustAmount(redis: RedisLike, key: string, amount: number, expireSeconds = DEFAULT_REDIS_BARRIER_EXPIRE_SECONDS): Promise<BarrierResult<void>> {
    return redisCheckAdjustAmount(this, this.newBarrierId(), redis, key, amount, expireSeconds);
  }

  /** The msg check-back on Redis. */
  redisQueryPrepared(redis: RedisLike, expireSeconds = DEFAULT_REDIS_BARRIER_EXPIRE_SECONDS): Promise<void> {
    return redisQueryPrepared(this, redis, expireSeconds);
  }
}

export function isMongoClient(db: unknown): db is MongoClientLike {
  if (typeof db !== "object" || db === null) return false;
  const d = db as Record<string, unknown>;
  return typeof d["startSession"] === "function" && typeof d["db"] === "function";
}
