/**
 * Reads what the participants' databases hold (contracts `DatabaseState`) for the checker:
 * balances and frozen amounts, effect rows, barrier rows and keys, and XA transactions left
 * prepared.
 */
import type { Redis } from "ioredis";
import type mysql from "mysql2/promise";
import type pg from "pg";
import type { AccountDb, DatabaseState } from "../contracts.ts";
import { ACCOUNTS_TABLE, CHAOS_BARRIER_TABLE, EFFECTS_TABLE, REDIS_COMP_BASE } from "./accounts.ts";
import { closeClients, openClients, openRedis } from "./clients.ts";
import { accountsIn } from "./setup.ts";
import { DEFAULT_REDIS_PREFIX, type DbUrls, type ParticipantDbOptions } from "./db-urls.ts";

type Account = DatabaseState["accounts"][number];
type Effect = DatabaseState["effects"][number];
type Barrier = DatabaseState["barriers"][number];

interface AccountRow {
  id: number | string;
  balance: number | string;
  frozen: number | string;
}
interface EffectRow {
  gid: string;
  branch_id: string;
  op: string;
  account: number | string;
  amount: number | string;
}
interface BarrierRow {
  gid: string;
  branch_id: string;
  op: string;
  reason: string;
}

const ACCOUNTS_SQL = `select id, balance, frozen from ${ACCOUNTS_TABLE} order by id`;
const EFFECTS_SQL = `select gid, branch_id, op, account, amount from ${EFFECTS_TABLE} order by at`;
const BARRIERS_SQL = `select gid, branch_id, op, reason from ${CHAOS_BARRIER_TABLE}`;

function accounts(rows: AccountRow[]): Account[] {
  return rows.map((r) => ({ id: Number(r.id), balance: Number(r.balance), frozen: Number(r.frozen) }));
}
function effects(rows: EffectRow[]): Effect[] {
  return rows.map((r) => ({ gid: r.gid, branchId: r.branch_id, op: r.op, account: Number(r.account), amount: Number(r.amount) }));
}
function barriers(rows: BarrierRow[], db: AccountDb): Barrier[] {
  return rows.map((r) => ({ gid: r.gid, branchId: r.branch_id, op: r.op, reason: r.reason, db }));
}

async function readPg(pool: pg.Pool): Promise<Pick<DatabaseState, "accounts" | "effects" | "barriers" | "preparedXa">> {
  const [a, e, b, x] = await Promise.all([
    pool.query<AccountRow>(ACCOUNTS_SQL),
    pool.query<EffectRow>(EFFECTS_SQL),
    pool.query<BarrierRow>(BARRIERS_SQL),
    pool.query<{ gid: string }>("select gid from pg_prepared_xacts where database = current_database()"),
  ]);
  return { accounts: accounts(a.rows), effects: effects(e.rows), barriers: barriers(b.rows, "postgres"), preparedXa: x.rows.map((r) => ({ db: "postgres" as const, xid: r.gid })) };
}

async function readMysql(pool: mysql.Pool): Promise<Pick<DatabaseState, "accounts" | "effects" | "barriers" | "preparedXa">> {
  const [[a], [e], [b], [x]] = await Promise.all([pool.query(ACCOUNTS_SQL), pool.query(EFFECTS_SQL), pool.query(BARRIERS_SQL), pool.query("XA RECOVER")]);
  const xids = (x as Array<{ data: Buffer | string }>).map((r) => ({ db: "mysql" as const, xid: Buffer.isBuffer(r.data) ? r.data.toString("utf8") : r.data }));
  return { accounts: accounts(a as AccountRow[]), effects: effects(e as EffectRow[]), barriers: barriers(b as BarrierRow[], "mysql"), preparedXa: xids };
}

/** A barrier key `<gid>-<branch_id>-<op>-<barrier_id>` (the gid may hold `-`; the others do not). */
export function parseRedisBarrierKey(key: string): { gid: string; branchId: string; op: string } | undefined {
  const parts = key.split("-");
  if (parts.length < 4) return undefined;
  const [branchId, op] = parts.slice(-3) as [string, string, string];
  return { gid: parts.slice(0, -3).join("-"), branchId, op };
}

/** Every key under `prefix` (without it), with its value. SCAN is bounded by the key count. */
async function redisEntries(redis: Redis, prefix: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length === 0) continue;
    const values = await redis.mget(...keys);
    keys.forEach((k, i) => {
      const v = values[i];
      if (v !== null && v !== undefined) out.set(k.slice(prefix.length), v);
    });
  } while (cursor !== "0");
  return out;
}

async function readRedis(url: string, prefix: string): Promise<Pick<DatabaseState, "accounts" | "barriers">> {
  // No key prefix on this client: SCAN's pattern and its replies are raw keys.
  const redis = openRedis(url, "");
  try {
    const entries = await redisEntries(redis, prefix);
    const accountRows = accountsIn("redis").map(({ id }) => {
      const balance = Number(entries.get(`balance:${id}`) ?? Number.NaN);
      const comp = Number(entries.get(`comp:${id}`) ?? Number.NaN);
      return { id, balance: balance + comp - REDIS_COMP_BASE, frozen: 0 };
    });
    const barrierRows: Barrier[] = [];
    for (const [key, reason] of entries) {
      if (key.startsWith("balance:") || key.startsWith("comp:")) continue;
      const parsed = parseRedisBarrierKey(key);
      if (parsed) barrierRows.push({ ...parsed, reason, db: "redis" });
    }
    return { accounts: accountRows, barriers: barrierRows };
  } finally {
    redis.disconnect();
  }
}

/**
 * The participants' final state in the databases of `urls` (Redis keys under `redisPrefix`,
 * default `chaos:`). A Redis account whose keys are missing reads as NaN (the checker reports it).
 * `XA RECOVER` lists the whole MariaDB server's prepared transactions (the run's server is its own).
 */
export async function readDatabaseState(urls: DbUrls, opts: ParticipantDbOptions = {}): Promise<DatabaseState> {
  const clients = openClients(urls, { ...opts, poolSize: 4 });
  try {
    const [p, m, r] = await Promise.all([readPg(clients.pg), readMysql(clients.mysql), readRedis(urls.redis, opts.redisPrefix ?? DEFAULT_REDIS_PREFIX)]);
    return {
      accounts: [...p.accounts, ...m.accounts, ...r.accounts].sort((x, y) => x.id - y.id),
      effects: [...p.effects, ...m.effects],
      barriers: [...p.barriers, ...m.barriers, ...r.barriers],
      preparedXa: [...p.preparedXa, ...m.preparedXa],
    };
  } finally {
    await closeClients(clients);
  }
}
