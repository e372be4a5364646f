/**
 * Shared fixtures for the barrier tests: one small accounts table (and an `effects` log with no
 * unique key, so a double application shows) per store, and a suite of scenarios every store
 * runs against the real database.
 */
import { randomBytes } from "node:crypto";
import { expect, it } from "vitest";
import fc from "fast-check";
import type { Kysely } from "kysely";
import type { ClientSession, MongoClient } from "mongodb";
import type { Redis } from "ioredis";
import type mysql from "mysql2/promise";
import type pg from "pg";
import { BarrierError, BranchBarrier, barrierFailure, getBarrierTableName } from "../src/barrier/index.ts";
import { eventually } from "./helpers.ts";
import type { BarrierResult, BranchInfo, DoAndSubmitMsg, PgQueryable } from "../src/barrier/index.ts";

/** A prefix that keeps this run's gids and accounts apart from other runs and other files. */
export const RUN = `${Date.now().toString(36)}${randomBytes(3).toString("hex")}`;

/**
 * Deletes every Redis key this file's run made: barrier keys and accounts alike hold RUN in their
 * names (uniqueGid, the key prefixes). They would expire within the barrier's TTL anyway, but a
 * test leaves nothing behind.
 */
export async function deleteRunKeys(redis: Redis): Promise<void> {
  for await (const keys of redis.scanStream({ match: `*${RUN}*`, count: 1000 }) as AsyncIterable<string[]>) {
    if (keys.length > 0) await redis.del(...keys);
  }
}

let seq = 0;
export function uniqueGid(prefix: string): string {
  seq += 1;
  return `${prefix}-${RUN}-${seq}`;
}

/**
 * A stand-in for the msg that doAndSubmit / doAndSubmitDB drive: each of its calls is recorded,
 * in order, in `calls` (shared by every msg it makes).
 */
export function recordingMsg(): { calls: string[]; msg: (gid: string) => DoAndSubmitMsg } {
  const calls: string[] = [];
  const msg = (gid: string): DoAndSubmitMsg => ({
    gid,
    prepare: async () => void calls.push("prepare"),
    submit: async () => void calls.push("submit"),
    abort: async () => void calls.push("abort"),
  });
  return { calls, msg };
}

export function info(gid: string, op: string, branchId = "01", transType = "tcc"): BranchInfo {
  return { transType, gid, branchId, op };
}

/**
 * `url` whose connections resolve unqualified table names in `schema` (search_path), so a test
 * file's accounts and effects tables live in its own schema, beside its barrier tables.
 */
export function pgUrlInSchema(url: string, schema: string): string {
  const u = new URL(url);
  u.searchParams.set("options", `-c search_path=${schema}`);
  return u.toString();
}

/** `url` on database `database` (MySQL): a test file's own. */
export function mysqlUrlInDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** The Mongo database and collection of the barrier table the barriers use by default. */
function barrierCollection(): [string, string] {
  const [db = "", coll = ""] = getBarrierTableName().split(".");
  return [db, coll];
}

/** A barrier row as the tests look at it. */
export interface BarrierRow {
  branch_id: string;
  op: string;
  barrier_id: string;
  reason: string;
}

/** How the test drives one store. */
export interface StoreUnderTest {
  readonly name: string;
  /** Whether `adjust` runs business code in a local transaction (false for Redis: Lua only). */
  readonly hasLocalTx: boolean;
  /** Whether the store blocks a check-back while a local transaction holds the msg row. */
  readonly checkBackWaitsForLocalTx: boolean;
  createAccount(id: string, balance: number): Promise<void>;
  balance(id: string): Promise<number>;
  /**
   * Runs one barrier call on connection `conn` (0 or 1): adds `delta` to account `id` and logs an
   * effect, in the barrier's transaction. `failAfterWrite` throws inside the business function
   * after both writes. Insufficient balance is FAILURE.
   */
  adjust(bb: BranchBarrier, id: string, delta: number, opts?: { conn?: 0 | 1; failAfterWrite?: boolean }): Promise<BarrierResult<void>>;
  queryPrepared(bb: BranchBarrier): Promise<void>;
  /** The effect rows (op per row) for a gid; Redis has none. */
  effects(gid: string): Promise<string[]>;
  barrierRows(gid: string): Promise<BarrierRow[]>;
  /**
   * Runs a msg local transaction whose business waits for `gate` before it finishes, so that a
   * check-back can arrive while it is in flight. Only for stores with a local transaction.
   */
  msgInFlight?(bb: BranchBarrier, id: string, delta: number, gate: Promise<void>, entered: () => void): Promise<BarrierResult<void>>;
  /** How many statements about `gid` are executing right now, other than the local transaction (to see the check-back wait, without sleeping). */
  lockWaits?(gid: string): Promise<number>;
  /** True for errors a real coordinator would simply retry (deadlock, write conflict...). */
  isRetryable(err: unknown): boolean;
  /** Called after a retryable error on a connection, before the retry. */
  afterRetryableError?(conn: 0 | 1): Promise<void>;
  /** Drops this run's finished barrier rows and effects (the Mongo stand-in slows down as data grows). */
  cleanup?(): Promise<void>;
}

export function sortRows(rows: BarrierRow[]): BarrierRow[] {
  return rows
    .map((r) => ({ branch_id: r.branch_id, op: r.op, barrier_id: r.barrier_id, reason: r.reason }))
    .sort((a, b) => `${a.branch_id}/${a.barrier_id}/${a.op}`.localeCompare(`${b.branch_id}/${b.barrier_id}/${b.op}`));
}

function insufficient(id: string): BarrierError {
  return barrierFailure(`account ${id}: insufficient balance`);
}

// ---------------------------------------------------------------------------------------------
// Postgres (pg) and MySQL (mysql2)

export const PG_ACCOUNTS = "dtx_barrier_test_accounts";
export const PG_EFFECTS = "dtx_barrier_test_effects";

export async function setupPgTables(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query("select pg_advisory_xact_lock(hashtext('dtx-barrier-test-tables'))");
    await client.query(`create table if not exists ${PG_ACCOUNTS}(id varchar(128) primary key, balance bigint not null)`);
    await client.query(
      `create table if not exists ${PG_EFFECTS}(id bigserial primary key, gid varchar(128) not null, branch_id varchar(128) not null, op varchar(45) not null, store varchar(16) not null, amount bigint not null, at timestamptz not null default now())`,
    );
    await client.query(`create index if not exists ${PG_EFFECTS}_gid on ${PG_EFFECTS}(gid)`);
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK");
    throw err;
  } finally {
    client.release();
  }
}

/** The business of a SQL branch: move the balance and log the effect, or FAILURE. */
export async function pgBusiness(client: PgQueryable, bb: BranchInfo, id: string, delta: number, store = "pg"): Promise<void> {
  const r = await client.query(`update ${PG_ACCOUNTS} set balance = balance + $1 where id = $2 and balance + $1 >= 0`, [delta, id]);
  if (r.rowCount !== 1) throw insufficient(id);
  await client.query(`insert into ${PG_EFFECTS}(gid, branch_id, op, store, amount) values($1,$2,$3,$4,$5)`, [bb.gid, bb.branchId, bb.op, store, delta]);
}

export function pgStore(pool: pg.Pool, clients?: [pg.Client, pg.Client], tableName?: string): StoreUnderTest {
  return {
    name: "postgres",
    hasLocalTx: true,
    checkBackWaitsForLocalTx: true,
    async createAccount(id, balance) {
      await pool.query(`insert into ${PG_ACCOUNTS}(id, balance) values($1,$2) on conflict (id) do update set balance = excluded.balance`, [id, balance]);
    },
    async balance(id) {
      const r = await pool.query<{ balance: string }>(`select balance from ${PG_ACCOUNTS} where id=$1`, [id]);
      return Number(r.rows[0]?.balance);
    },
    adjust(bb, id, delta, opts = {}) {
      const busi = async (c: PgQueryable): Promise<void> => {
        await pgBusiness(c, bb, id, delta);
        if (opts.failAfterWrite) throw new Error("business error after the writes");
      };
      return clients ? bb.callWithPg(clients[opts.conn ?? 0], busi) : bb.callWithPg(pool, busi);
    },
    queryPrepared: (bb) => bb.queryPrepared(pool),
    async effects(gid) {
      const r = await pool.query<{ op: string }>(`select op from ${PG_EFFECTS} where gid=$1 order by id`, [gid]);
      return r.rows.map((x) => x.op);
    },
    async barrierRows(gid) {
      const r = await pool.query<BarrierRow>(`select branch_id, op, barrier_id, reason from ${tableName ?? getBarrierTableName()} where gid=$1`, [gid]);
      return sortRows(r.rows);
    },
    msgInFlight(bb, id, delta, gate, entered) {
      return bb.callWithPg(pool, async (c) => {
        await pgBusiness(c, bb, id, delta);
        entered();
        await gate;
      });
    },
    async lockWaits() {
      // Statements are parameterized, so the gid is not in the query text: count sessions on a lock.
      const r = await pool.query<{ n: string }>("select count(*) as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()");
      return Number(r.rows[0]?.n ?? 0);
    },
    isRetryable: (err) => ["40001", "40P01"].includes(String((err as { code?: unknown }).code)),
  };
}

export const MY_ACCOUNTS = "dtx_barrier_test_accounts";
export const MY_EFFECTS = "dtx_barrier_test_effects";

export async function setupMysqlTables(pool: mysql.Pool): Promise<void> {
  await pool.query(`create table if not exists ${MY_ACCOUNTS}(id varchar(128) primary key, balance bigint not null) engine=InnoDB`);
  await pool.query(
    `create table if not exists ${MY_EFFECTS}(id bigint primary key auto_increment, gid varchar(128) not null, branch_id varchar(128) not null, op varchar(45) not null, store varchar(16) not null, amount bigint not null, at datetime not null default now(), key(gid)) engine=InnoDB`,
  );
}

export async function mysqlBusiness(conn: mysql.Connection, bb: BranchInfo, id: string, delta: number, store = "mysql"): Promise<void> {
  const [r] = await conn.query<mysql.ResultSetHeader>(`update ${MY_ACCOUNTS} set balance = balance + ? where id = ? and balance + ? >= 0`, [delta, id, delta]);
  if (r.affectedRows !== 1) throw insufficient(id);
  await conn.query(`insert into ${MY_EFFECTS}(gid, branch_id, op, store, amount) values(?,?,?,?,?)`, [bb.gid, bb.branchId, bb.op, store, delta]);
}

export function mysqlStore(pool: mysql.Pool, conns?: [mysql.Connection, mysql.Connection], tableName = getBarrierTableName()): StoreUnderTest {
  return {
    name: "mysql",
    hasLocalTx: true,
    checkBackWaitsForLocalTx: true,
    async createAccount(id, balance) {
      await pool.query(`insert into ${MY_ACCOUNTS}(id, balance) values(?,?) on duplicate key update balance = values(balance)`, [id, balance]);
    },
    async balance(id) {
      const [rows] = await pool.query<mysql.RowDataPacket[]>(`select balance from ${MY_ACCOUNTS} where id=?`, [id]);
      return Number(rows[0]?.["balance"]);
    },
    adjust(bb, id, delta, opts = {}) {
      const busi = async (c: mysql.Connection): Promise<void> => {
        await mysqlBusiness(c, bb, id, delta);
        if (opts.failAfterWrite) throw new Error("business error after the writes");
      };
      return conns ? bb.callWithMysql(conns[opts.conn ?? 0], busi) : bb.callWithMysql<void, mysql.PoolConnection>(pool, busi);
    },
    queryPrepared: (bb) => bb.queryPrepared(pool),
    async effects(gid) {
      const [rows] = await pool.query<mysql.RowDataPacket[]>(`select op from ${MY_EFFECTS} where gid=? order by id`, [gid]);
      return rows.map((x) => String(x["op"]));
    },
    async barrierRows(gid) {
      const [rows] = await pool.query<mysql.RowDataPacket[]>(`select branch_id, op, barrier_id, reason from ${tableName} where gid=?`, [gid]);
      return sortRows(rows as unknown as BarrierRow[]);
    },
    msgInFlight(bb, id, delta, gate, entered) {
      return bb.callWithMysql(pool, async (c) => {
        await mysqlBusiness(c, bb, id, delta);
        entered();
        await gate;
      });
    },
    async lockWaits(gid) {
      // processlist, not innodb_trx: MariaDB refreshes innodb_trx from a cache and missed waits here.
      const [rows] = await pool.query<mysql.RowDataPacket[]>(
        "select count(*) as n from information_schema.processlist where command = 'Query' and id <> connection_id() and info like concat('%', ?, '%')",
        [gid],
      );
      return Number((rows[0] as { n?: unknown } | undefined)?.n ?? 0);
    },
    // ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT
    isRetryable: (err) => [1213, 1205].includes(Number((err as { errno?: unknown }).errno)),
  };
}

// ---------------------------------------------------------------------------------------------
// Kysely (on Postgres or MySQL)

export interface KyselyDb {
  dtx_barrier_test_accounts: { id: string; balance: number | string | bigint };
  dtx_barrier_test_effects: { id?: number; gid: string; branch_id: string; op: string; store: string; amount: number };
}

export function kyselyStore(name: string, db: Kysely<KyselyDb>, base: StoreUnderTest): StoreUnderTest {
  return {
    ...base,
    name,
    adjust(bb, id, delta, opts = {}) {
      return bb.callWithKysely(db, async (trx) => {
        const r = await trx
          .updateTable("dtx_barrier_test_accounts")
          .set((eb) => ({ balance: eb("balance", "+", delta) }))
          .where("id", "=", id)
          .where((eb) => eb(eb("balance", "+", delta), ">=", 0))
          .executeTakeFirst();
        if (Number(r.numUpdatedRows) !== 1) throw insufficient(id);
        await trx.insertInto("dtx_barrier_test_effects").values({ gid: bb.gid, branch_id: bb.branchId, op: bb.op, store: name, amount: delta }).execute();
        if (opts.failAfterWrite) throw new Error("business error after the writes");
      });
    },
    queryPrepared: (bb) => bb.queryPrepared(db),
    msgInFlight(bb, id, delta, gate, entered) {
      return bb.callWithKysely(db, async (trx) => {
        await trx
          .updateTable("dtx_barrier_test_accounts")
          .set((eb) => ({ balance: eb("balance", "+", delta) }))
          .where("id", "=", id)
          .execute();
        entered();
        await gate;
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Redis

export function redisStore(clients: [Redis, Redis], prefix: string): StoreUnderTest {
  const key = (id: string): string => `${prefix}:${id}`;
  return {
    name: "redis",
    hasLocalTx: false,
    checkBackWaitsForLocalTx: false,
    async createAccount(id, balance) {
      await clients[0].set(key(id), String(balance), "EX", 3600);
    },
    async balance(id) {
      return Number(await clients[0].get(key(id)));
    },
    adjust(bb, id, delta, opts = {}) {
      return bb.redisCheckAdjustAmount(clients[opts.conn ?? 0], key(id), delta, 3600);
    },
    queryPrepared: (bb) => bb.redisQueryPrepared(clients[0], 3600),
    effects: async () => [],
    async barrierRows(gid) {
      const keys = await clients[0].keys(`${gid}-*`);
      const rows: BarrierRow[] = [];
      for (const k of keys) {
        // gid-branch_id-op-barrier_id; the gid itself has dashes, so parse from the right.
        const parts = k.slice(gid.length + 1).split("-");
        const [branch, op, barrierId] = parts;
        rows.push({ branch_id: branch ?? "", op: op ?? "", barrier_id: barrierId ?? "", reason: (await clients[0].get(k)) ?? "" });
      }
      return sortRows(rows);
    },
    isRetryable: () => false,
  };
}

// ---------------------------------------------------------------------------------------------
// Mongo

export interface MongoAccount {
  _id: string;
  balance: number;
}
export interface MongoEffect {
  gid: string;
  branch_id: string;
  op: string;
  store: string;
  amount: number;
}

export const MONGO_DB = "dtx_barrier_test";

export async function mongoBusiness(client: MongoClient, session: ClientSession, bb: BranchInfo, id: string, delta: number): Promise<void> {
  const db = client.db(MONGO_DB);
  const r = await db.collection<MongoAccount>("accounts").updateOne({ _id: id, balance: { $gte: -delta } }, { $inc: { balance: delta } }, { session });
  if (r.matchedCount !== 1) throw insufficient(id);
  await db.collection<MongoEffect>("effects").insertOne({ gid: bb.gid, branch_id: bb.branchId, op: bb.op, store: "mongo", amount: delta }, { session });
}

/** Errors after which a coordinator would simply retry (on the stand-in: a failed commit). */
export function isMongoRetryable(err: unknown): boolean {
  const e = err as { name?: unknown; errorLabels?: unknown; errorLabelSet?: unknown; code?: unknown };
  const labels = e.errorLabelSet instanceof Set ? [...(e.errorLabelSet as Set<string>)] : Array.isArray(e.errorLabels) ? (e.errorLabels as string[]) : [];
  return (
    e.name === "MongoNetworkError" ||
    labels.includes("TransientTransactionError") ||
    labels.includes("UnknownTransactionCommitResult") ||
    // DuplicateKey, WriteConflict, NoSuchTransaction, TransactionInProgress-like states
    e.code === 11000 ||
    e.code === 112 ||
    e.code === 251 ||
    e.code === 256
  );
}

/**
 * `clients` is a pair of getters: after an error on the stand-in, the test swaps in a new
 * MongoClient (the stand-in leaves the server session of a failed commit in a state where the
 * next transaction on it fails, and the driver pauses a pool after a dropped connection).
 */
export function mongoStore(clients: {
  get(conn: 0 | 1): MongoClient;
  renew(conn: 0 | 1): Promise<void>;
  /** TestMongo.exclusive: barrier transactions one at a time on the stand-in. */
  exclusive<T>(transaction: () => Promise<T>): Promise<T>;
}): StoreUnderTest {
  const c0 = (): MongoClient => clients.get(0);
  return {
    name: "mongo",
    hasLocalTx: true,
    // Real Mongo makes the check-back's insert wait for the local transaction; the stand-in
    // does not (the local transaction's commit fails instead), so that case is not asserted.
    checkBackWaitsForLocalTx: false,
    async createAccount(id, balance) {
      await c0().db(MONGO_DB).collection<MongoAccount>("accounts").updateOne({ _id: id }, { $set: { balance } }, { upsert: true });
    },
    async balance(id) {
      return Number((await c0().db(MONGO_DB).collection<MongoAccount>("accounts").findOne({ _id: id }))?.balance);
    },
    adjust(bb, id, delta, opts = {}) {
      const client = clients.get(opts.conn ?? 0);
      return clients.exclusive(() =>
        bb.mongoCall(client, async (session) => {
          await mongoBusiness(client, session, bb, id, delta);
          if (opts.failAfterWrite) throw new Error("business error after the writes");
        }),
      );
    },
    queryPrepared: (bb) => bb.mongoQueryPrepared(c0()),
    async effects(gid) {
      const rows = await c0().db(MONGO_DB).collection<MongoEffect>("effects").find({ gid }).toArray();
      return rows.map((r) => r.op);
    },
    async barrierRows(gid) {
      const [db, coll] = barrierCollection();
      const rows = await c0().db(db).collection<BarrierRow & { gid: string }>(coll).find({ gid }).toArray();
      return sortRows(rows);
    },
    isRetryable: isMongoRetryable,
    afterRetryableError: (conn) => clients.renew(conn),
    async cleanup() {
      const mine = { $regex: RUN };
      const [db, coll] = barrierCollection();
      await c0().db(db).collection(coll).deleteMany({ gid: mine });
      await c0().db(MONGO_DB).collection<MongoEffect>("effects").deleteMany({ gid: mine });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The scenarios

function expectCode(code: string): (err: unknown) => true {
  return (err: unknown) => {
    expect(err).toBeInstanceOf(BarrierError);
    expect((err as BarrierError).code).toBe(code);
    return true;
  };
}

async function rejectsWithCode(p: Promise<unknown>, code: string): Promise<BarrierError> {
  try {
    await p;
  } catch (err) {
    expectCode(code)(err);
    return err as BarrierError;
  }
  throw new Error(`expected a ${code} error`);
}

/** Retries a call the way a coordinator would, on errors that only mean "try again". */
export async function withRetries<T>(store: StoreUnderTest, conn: 0 | 1, run: () => Promise<T>, counter: { retries: number }): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if (attempt >= 20 || !store.isRetryable(err)) throw err;
      counter.retries += 1;
      await store.afterRetryableError?.(conn);
    }
  }
}

export interface SuiteOptions {
  /** Race repetitions (default 200). */
  races?: number;
}

/** Registers the barrier scenarios for `getStore()` (called inside each test). */
export function barrierScenarios(getStore: () => StoreUnderTest, options: SuiteOptions = {}): void {
  const races = options.races ?? 200;

  it("a duplicate request has no second effect", async () => {
    const s = getStore();
    const gid = uniqueGid(`${s.name}-dup`);
    const acct = `${gid}-a`;
    await s.createAccount(acct, 100);
    const first = await s.adjust(new BranchBarrier(info(gid, "try")), acct, -30);
    const second = await s.adjust(new BranchBarrier(info(gid, "try")), acct, -30, { conn: 1 });
    expect(first).toEqual({ executed: true, value: undefined, barrierId: "01" });
    expect(second).toEqual({ executed: false, skipped: "duplicate_or_hanging", barrierId: "01" });
    expect(await s.balance(acct)).toBe(70);
    if (s.hasLocalTx) expect(await s.effects(gid)).toEqual(["try"]);
    expect(await s.barrierRows(gid)).toEqual([{ branch_id: "01", op: "try", barrier_id: "01", reason: "try" }]);

    // confirm after try, then a duplicate cancel-free confirm
    const c1 = await s.adjust(new BranchBarrier(info(gid, "confirm")), acct, 0);
    const c2 = await s.adjust(new BranchBarrier(info(gid, "confirm")), acct, 0);
    expect([c1.executed, c2.executed]).toEqual([true, false]);
  });

  it("try then cancel undoes the try exactly once", async () => {
    const s = getStore();
    const gid = uniqueGid(`${s.name}-trycancel`);
    const acct = `${gid}-a`;
    await s.createAccount(acct, 100);
    expect((await s.adjust(new BranchBarrier(info(gid, "try")), acct, -40)).executed).toBe(true);
    expect((await s.adjust(new BranchBarrier(info(gid, "cancel")), acct, 40)).executed).toBe(true);
    expect((await s.adjust(new BranchBarrier(info(gid, "cancel")), acct, 40, { conn: 1 })).executed).toBe(false);
    expect(await s.balance(acct)).toBe(100);
    if (s.hasLocalTx) expect(await s.effects(gid)).toEqual(["try", "cancel"]);
  });

  it("a cancel before its try is a null compensation, and the late try is refused (hanging)", async () => {
    const s = getStore();
    const gid = uniqueGid(`${s.name}-nullcomp`);
    const acct = `${gid}-a`;
    await s.createAccount(acct, 100);
    const cancel = await s.adjust(new BranchBarrier(info(gid, "cancel")), acct, 30);
    expect(cancel).toEqual({ executed: false, skipped: "null_compensation", barrierId: "01" });
    expect(await s.balance(acct)).toBe(100);
    const lateTry = await s.adjust(new BranchBarrier(info(gid, "try")), acct, -30, { conn: 1 });
    expect(lateTry).toEqual({ executed: false, skipped: "duplicate_or_hanging", barrierId: "01" });
    const cancelAgain = await s.adjust(new BranchBarrier(info(gid, "cancel")), acct, 30);
    expect(cancelAgain.executed).toBe(false);
    expect(await s.balance(acct)).toBe(100);
    if (s.hasLocalTx) expect(await s.effects(gid)).toEqual([]);
    // The origin row carries the compensation's op as its reason (SQL) / 'rollback' (Redis).
    const rows = await s.barrierRows(gid);
    expect(rows.map((r) => r.op)).toEqual(["cancel", "try"]);
    expect(rows.find((r) => r.op === "try")?.reason).toBe(s.name === "redis" ? "rollback" : "cancel");
  });

  it("a saga compensate before its action is a null compensation; the late action is refused", async () => {
    const s = getStore();
    const gid = uniqueGid(`${s.name}-saga-null`);
    const acct = `${gid}-a`;
    await s.createAccount(acct, 100);
    const comp = await s.adjust(new BranchBarrier(info(gid, "compensate", "02", "saga")), acct, 25);
    expect(comp.executed ? "executed" : comp.skipped).toBe("null_compensation");
    const action = await s.adjust(new BranchBarrier(info(gid, "action", "02", "saga")), acct, -25);
    expect(action.executed ? "executed" : action.skipped).toBe("duplicate_or_hanging");
    expect(await s.balance(acct)).toBe(100);
  });

  it("counts barrier ids per barrier object: 01, 02...", async () => {
    const s = getStore();
    const gid = uniqueGid(`${s.name}-ids`);
    const acct = `${gid}-a`;
    await s.createAccount(acct, 100);
    const bb = new BranchBarrier(info(gid, "action", "01", "saga"));
    expect((await s.adjust(bb, acct, -1)).barrierId).toBe("01");
    expect((await s.adjust(bb, acct, -2)).barrierId).toBe("02");
    expect(bb.barrierCount).toBe(2);
    // a redelivery builds a new barrier object: both calls are duplicates
    const again = new BranchBarrier(info(gid, "action", "01", "saga"));
    expect((await s.adjust(again, acct, -1)).executed).toBe(false);
    expect((await s.adjust(again, acct, -2)).executed).toBe(false);
    expect(await s.balance(acct)).toBe(97);
    expect((await s.barrierRows(gid)).map((r) => r.barrier_id)).toEqual(["01", "02"]);
  });

  it("msg: a second local transaction for the same gid is DUPLICATED", async () => {
    const s = getStore();
    const gid = uniqueGid(`${s.name}-msgdup`);
    const acct = `${gid}-a`;
    await s.createAccount(acct, 100);
    const msgInfo = info(gid, "msg", "00", "msg");
    expect((await s.adjust(new BranchBarrier(msgInfo), acct, -10)).executed).toBe(true);
    await rejectsWithCode(s.adjust(new BranchBarrier(msgInfo), acct, -10, { conn: 1 }), "DUPLICATED");
    expect(await s.balance(acct)).toBe(90);
    // the check-back sees the committed local transaction
    await s.queryPrepared(new BranchBarrier(msgInfo));
    await s.queryPrepared(new BranchBarrier(msgInfo));
    expect(await s.barrierRows(gid)).toEqual([{ branch_id: "00", op: "msg", barrier_id: "01", reason: "msg" }]);
  });

  it("queryPrepared: no local transaction -> rollback marker, FAILURE, and the late local transaction is DUPLICATED", async () => {
    const s = getStore();
    const gid = uniqueGid(`${s.name}-qp-fail`);
    const acct = `${gid}-a`;
    await s.createAccount(acct, 100);
    const msgInfo = info(gid, "msg", "00", "msg");
    const err = await rejectsWithCode(s.queryPrepared(new BranchBarrier(msgInfo)), "FAILURE");
    expect(err.httpStatus).toBe(409);
    expect(err.grpcCode).toBe(10);
    expect(err.message).toMatch(/FAILURE$/);
    await rejectsWithCode(s.queryPrepared(new BranchBarrier(msgInfo)), "FAILURE");
    await rejectsWithCode(s.adjust(new BranchBarrier(msgInfo), acct, -10), "DUPLICATED");
    expect(await s.balance(acct)).toBe(100);
    expect(await s.barrierRows(gid)).toEqual([{ branch_id: "00", op: "msg", barrier_id: "01", reason: "rollback" }]);
  });

  it("an error inside the business rolls back the business write and the barrier rows", async () => {
    const s = getStore();
    const gid = uniqueGid(`${s.name}-rollback`);
    const acct = `${gid}-a`;
    await s.createAccount(acct, 100);
    expect((await s.adjust(new BranchBarrier(info(gid, "action", "02", "saga")), acct, -5)).executed).toBe(true);
    if (s.hasLocalTx) {
      await expect(s.adjust(new BranchBarrier(info(gid, "try")), acct, -30, { failAfterWrite: true })).rejects.toThrow("business error after the writes");
      // a compensation whose business fails: its rows (origin and own) are rolled back too
      await expect(s.adjust(new BranchBarrier(info(gid, "compensate", "02", "saga")), acct, 5, { failAfterWrite: true })).rejects.toThrow("business error after the writes");
    }
    // FAILURE (insufficient balance) leaves nothing behind either
    await rejectsWithCode(s.adjust(new BranchBarrier(info(gid, "action", "03", "saga")), acct, -1000), "FAILURE");
    expect(await s.balance(acct)).toBe(95);
    if (s.hasLocalTx) expect(await s.effects(gid)).toEqual(["action"]);
    expect(await s.barrierRows(gid)).toEqual([{ branch_id: "02", op: "action", barrier_id: "01", reason: "action" }]);
    // the redeliveries run the business
    expect((await s.adjust(new BranchBarrier(info(gid, "try")), acct, -30)).executed).toBe(true);
    expect((await s.adjust(new BranchBarrier(info(gid, "compensate", "02", "saga")), acct, 5)).executed).toBe(true);
    expect((await s.adjust(new BranchBarrier(info(gid, "action", "03", "saga")), acct, -70)).executed).toBe(true);
    expect(await s.balance(acct)).toBe(0);
    if (s.hasLocalTx) expect((await s.effects(gid)).sort()).toEqual(["action", "action", "compensate", "try"]);
  });

  it(`try and cancel arriving at the same instant, ${races} times: both run or neither, balance exact`, async () => {
    const s = getStore();
    const acct = uniqueGid(`${s.name}-race-acct`);
    await s.createAccount(acct, 1000);
    const counter = { retries: 0 };
    const outcomes = { both: 0, neither: 0 };
    for (let i = 0; i < races; i++) {
      if (i % 20 === 19) await s.cleanup?.();
      const gid = uniqueGid(`${s.name}-race`);
      // Alternate which side starts first, so both orders happen.
      const tryCall = (): Promise<BarrierResult<void>> => withRetries(s, 0, () => s.adjust(new BranchBarrier(info(gid, "try")), acct, -10, { conn: 0 }), counter);
      const cancelCall = (): Promise<BarrierResult<void>> => withRetries(s, 1, () => s.adjust(new BranchBarrier(info(gid, "cancel")), acct, 10, { conn: 1 }), counter);
      const [t, c] = i % 2 === 0 ? await Promise.all([tryCall(), cancelCall()]) : (await Promise.all([cancelCall(), tryCall()])).reverse();
      if (t === undefined || c === undefined) throw new Error("unreachable");
      expect(t.executed, `iteration ${i}: try and cancel must both run or both be skipped`).toBe(c.executed);
      if (!c.executed) expect(c.skipped).toBe("null_compensation");
      if (t.executed) outcomes.both += 1;
      else outcomes.neither += 1;
      expect(await s.balance(acct), `iteration ${i}`).toBe(1000);
      if (s.hasLocalTx) {
        const effects = await s.effects(gid);
        expect(effects.length === 0 || (effects.length === 2 && effects.includes("try") && effects.includes("cancel")), `iteration ${i}: effects ${effects.join(",")}`).toBe(true);
      }
    }
    // Both orders must have happened for the race to mean something.
    expect(outcomes.both + outcomes.neither).toBe(races);
    expect(outcomes.both, JSON.stringify(outcomes)).toBeGreaterThan(0);
    expect(outcomes.neither, JSON.stringify(outcomes)).toBeGreaterThan(0);
    raceReport.push({ store: s.name, races, ...outcomes, retries: counter.retries });
  });

  it("queryPrepared while the local transaction is in flight waits for it and then says committed", async () => {
    const s = getStore();
    if (!s.msgInFlight || !s.lockWaits || !s.checkBackWaitsForLocalTx) return;
    const lockWaits = s.lockWaits.bind(s);
    const gid = uniqueGid(`${s.name}-qp-inflight`);
    const acct = `${gid}-a`;
    await s.createAccount(acct, 100);
    const msgInfo = info(gid, "msg", "00", "msg");
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let enteredLocal!: () => void;
    const entered = new Promise<void>((resolve) => (enteredLocal = resolve));
    const local = s.msgInFlight(new BranchBarrier(msgInfo), acct, -10, gate, enteredLocal);
    await entered; // the local transaction holds the msg barrier row now
    let checked = false;
    const check = s.queryPrepared(new BranchBarrier(msgInfo)).then(() => (checked = true));
    // The database itself shows the check-back blocked on the row lock.
    await eventually(async () => (await lockWaits(gid)) > 0, 10_000, "the check-back to block on the barrier row");
    expect(checked, "the check-back must wait for the local transaction").toBe(false);
    release();
    expect((await local).executed).toBe(true);
    await check;
    expect(checked).toBe(true);
    expect(await s.balance(acct)).toBe(90);
  });
}

/** What the race tests saw, for the report. */
export const raceReport: { store: string; races: number; both: number; neither: number; retries: number }[] = [];

// ---------------------------------------------------------------------------------------------
// Fuzz (docs/reliability.md#fuzzing): random interleavings of a branch's ops, with random failures inside
// the business callback, checked against the barrier's invariants (docs/protocol.md#barrier-algorithm).

const FUZZ_OPS = { tcc: ["try", "cancel", "confirm"], saga: ["action", "compensate"] } as const;
const FUZZ_DELTA: Readonly<Record<string, number>> = { try: -10, action: -10, cancel: 10, compensate: 10, confirm: 0 };

interface FuzzDelivery {
  which: number;
  fail: boolean;
  concurrent: boolean;
}

/** Registers the fuzz test: `runs` cases (env DTX_BARRIER_FUZZ_RUNS overrides), seeded by fast-check. */
export function barrierFuzz(getStore: () => StoreUnderTest, runs: number): void {
  const numRuns = Number(process.env["DTX_BARRIER_FUZZ_RUNS"] ?? runs);
  it(`fuzz: ${numRuns} random interleavings of try/cancel/confirm and action/compensate keep the invariants`, async () => {
    const s = getStore();
    const delivery = fc.record({ which: fc.nat(2), fail: fc.boolean(), concurrent: fc.boolean() });
    const caseArb = fc.record({ mode: fc.constantFrom("tcc" as const, "saga" as const), deliveries: fc.array(delivery, { minLength: 1, maxLength: 6 }) });
    const stats = { cases: 0, deliveries: 0, executed: 0, skipped: 0, failed: 0 };
    await fc.assert(
      fc.asyncProperty(caseArb, async ({ mode, deliveries }) => {
        if (stats.cases % 25 === 24) await s.cleanup?.();
        const ops = FUZZ_OPS[mode];
        const [origin, comp] = ops;
        const gid = uniqueGid(`${s.name}-fuzz`);
        const acct = `${gid}-a`;
        await s.createAccount(acct, 1000);
        // group consecutive deliveries marked concurrent (at most two at once: two connections)
        const groups: FuzzDelivery[][] = [];
        for (const d of deliveries) {
          const last = groups[groups.length - 1];
          if (d.concurrent && last && last.length < 2) last.push(d);
          else groups.push([d]);
        }
        const executed: string[] = [];
        let compFulfilled = false;
        for (const group of groups) {
          const results = await Promise.allSettled(
            group.map((d, i) => {
              const op = ops[d.which % ops.length]!;
              const bb = new BranchBarrier(info(gid, op, "01", mode));
              return s.adjust(bb, acct, FUZZ_DELTA[op] ?? 0, { conn: i as 0 | 1, failAfterWrite: s.hasLocalTx && d.fail }).then((r) => ({ op, r }));
            }),
          );
          for (const res of results) {
            stats.deliveries += 1;
            if (res.status === "rejected") {
              stats.failed += 1;
              if (s.isRetryable(res.reason)) await s.afterRetryableError?.(0);
              else if (!(res.reason instanceof Error && res.reason.message === "business error after the writes")) throw res.reason;
              continue;
            }
            const { op, r } = res.value;
            if (r.executed) {
              stats.executed += 1;
              executed.push(op);
            } else stats.skipped += 1;
            if (op === comp) compFulfilled = true;
          }
        }
        stats.cases += 1;
        const n = (op: string): number => executed.filter((x) => x === op).length;
        for (const op of ops) expect(n(op), `${op} ran more than once`).toBeLessThanOrEqual(1);
        expect(n(comp!), "a compensation ran without its action").toBeLessThanOrEqual(n(origin!));
        if (compFulfilled) expect(n(origin!), "after a compensation succeeded, the action ran uncompensated (hanging)").toBe(n(comp!));
        const expected = 1000 + executed.reduce((sum, op) => sum + (FUZZ_DELTA[op] ?? 0), 0);
        expect(await s.balance(acct), "balance").toBe(expected);
        if (s.hasLocalTx) {
          const effects = await s.effects(gid);
          expect([...effects].sort(), "one effect per executed delivery, none for failed ones").toEqual([...executed].sort());
          if (effects.includes(comp!)) expect(effects.indexOf(origin!), "the action's effect precedes its compensation's").toBeLessThan(effects.indexOf(comp!));
        }
      }),
      { numRuns },
    );
    expect(stats.executed).toBeGreaterThan(0);
    expect(stats.skipped).toBeGreaterThan(0);
    fuzzReport.push({ store: s.name, ...stats });
  }, 120_000);
}

export const fuzzReport: { store: string; cases: number; deliveries: number; executed: number; skipped: number; failed: number }[] = [];
