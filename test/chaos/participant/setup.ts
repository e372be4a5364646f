/**
 * Creates what the chaos participants need in the run's databases: accounts with their start
 * balances (contracts ACCOUNT_COUNT / accountDb / initialBalance), the effects journal, the barrier
 * tables, and Redis balances; checks that PostgreSQL allows prepared transactions (XA).
 * Idempotent: a second run changes nothing (balances are only written when missing).
 */
import type pg from "pg";
import type mysql from "mysql2/promise";
import type { Redis } from "ioredis";
import { createBarrierTable } from "../../../sdk/src/index.ts";
import { ACCOUNT_COUNT, accountDb, initialBalance, type AccountDb } from "../contracts.ts";
import { ACCOUNTS_TABLE, CHAOS_BARRIER_TABLE, EFFECTS_TABLE, REDIS_COMP_BASE, redisBalanceKey, redisCompKey } from "./accounts.ts";
import { closeClients, openClients } from "./clients.ts";
import type { DbUrls, ParticipantDbOptions } from "./db-urls.ts";

/** Options of {@link setupParticipantDbs}. */
export interface SetupOptions extends ParticipantDbOptions {
  /** The run's seed (the start balances do not depend on it today; kept for the interface). */
  seed: number;
}

/** The accounts that live in `db`, with their start balances. */
export function accountsIn(db: AccountDb): Array<{ id: number; balance: number }> {
  const out: Array<{ id: number; balance: number }> = [];
  for (let id = 0; id < ACCOUNT_COUNT; id++) if (accountDb(id) === db) out.push({ id, balance: initialBalance(id) });
  return out;
}

// The effects table has no key on purpose (see accounts.ts); an index keeps the checker's reads cheap.
const PG_DDL = [
  `create table if not exists ${ACCOUNTS_TABLE}(id int primary key, balance bigint not null, frozen bigint not null default 0)`,
  `create table if not exists ${EFFECTS_TABLE}(gid varchar(128) not null, branch_id varchar(128) not null, op varchar(45) not null, account int not null, amount bigint not null, at bigint not null)`,
  `create index if not exists ${EFFECTS_TABLE}_gid on ${EFFECTS_TABLE}(gid)`,
];

const MYSQL_DDL = [
  `create table if not exists ${ACCOUNTS_TABLE}(id int primary key, balance bigint not null, frozen bigint not null default 0) engine = InnoDB`,
  `create table if not exists ${EFFECTS_TABLE}(gid varchar(128) not null, branch_id varchar(128) not null, op varchar(45) not null, account int not null, amount bigint not null, at bigint not null, key(gid)) engine = InnoDB default charset = utf8mb4 collate = utf8mb4_bin`,
];

async function setupPg(pool: pg.Pool): Promise<void> {
  const { rows } = await pool.query<{ n: string }>("select current_setting('max_prepared_transactions') as n");
  if (Number(rows[0]?.n ?? 0) < 1) throw new Error("PostgreSQL needs max_prepared_transactions > 0 for the XA branches");
  // Serialised: Postgres' `if not exists` DDL races when two processes create the same objects.
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query("select pg_advisory_xact_lock(hashtext('dtx-chaos-participant-setup'))");
    for (const s of PG_DDL) await client.query(s);
    for (const a of accountsIn("postgres")) {
      await client.query(`insert into ${ACCOUNTS_TABLE}(id, balance, frozen) values($1, $2, 0) on conflict (id) do nothing`, [a.id, a.balance]);
    }
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
  await createBarrierTable("postgres", pool, { tableName: CHAOS_BARRIER_TABLE });
}

async function setupMysql(pool: mysql.Pool): Promise<void> {
  for (const s of MYSQL_DDL) await pool.query(s);
  const accounts = accountsIn("mysql");
  await pool.query(`insert ignore into ${ACCOUNTS_TABLE}(id, balance, frozen) values ${accounts.map(() => "(?, ?, 0)").join(", ")}`, accounts.flatMap((a) => [a.id, a.balance]));
  await createBarrierTable("mysql", pool, { tableName: CHAOS_BARRIER_TABLE });
}

async function setupRedis(redis: Redis): Promise<void> {
  const multi = redis.multi();
  for (const a of accountsIn("redis")) {
    multi.set(redisBalanceKey(a.id), a.balance, "NX");
    multi.set(redisCompKey(a.id), REDIS_COMP_BASE, "NX");
  }
  await multi.exec();
}

/**
 * Creates, in the PostgreSQL database, the MariaDB database and the Redis of `urls`, the
 * participants' accounts (balances from contracts `initialBalance`), the effects journal
 * `chaos_effects` (no unique key), the barrier table `chaos_barrier` (SDK `createBarrierTable`;
 * XA and msg rows go there too) and the Redis balances under the key prefix. Safe to run twice
 * and from two processes at once.
 */
export async function setupParticipantDbs(urls: DbUrls, opts: SetupOptions): Promise<void> {
  const clients = openClients(urls, { ...opts, poolSize: 2 });
  try {
    await Promise.all([setupPg(clients.pg), setupMysql(clients.mysql), setupRedis(clients.redis)]);
  } finally {
    await closeClients(clients);
  }
}
