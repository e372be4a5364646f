/**
 * The account primitives of the chaos participants, shared by their branch handlers and by the
 * load generator's msg sender (whose local transaction debits the source account).
 *
 * Tables (created by setup.ts, in the PostgreSQL and the MariaDB database alike):
 * - `chaos_accounts(id, balance, frozen)`: one row per account that lives in that database
 *   (contracts `accountDb`);
 * - `chaos_effects(gid, branch_id, op, account, amount, at)`: one row per applied change, written
 *   in the same local transaction as the change and its barrier row, deliberately WITHOUT a unique
 *   key so that an effect applied twice shows as two rows;
 * - `chaos_barrier`: the SDK's barrier table (also the XA and msg barrier rows).
 *
 * Redis keeps per account `balance:<id>` and `comp:<id>` (under the key prefix, `chaos:` by
 * default). The SDK's barrier Lua refuses to take an amount below zero, which is right for a debit
 * that may fail (FAILURE: insufficient balance) and wrong for one that must not (a compensation
 * taking back a credit that has since been spent): those go to `comp:<id>`, which starts at
 * {@link REDIS_COMP_BASE}. The account's balance is `balance + comp - REDIS_COMP_BASE`. Redis has no
 * frozen amount (the Lua adjusts one key at a time): a TCC try on Redis just takes the money and a
 * cancel gives it back. Redis has no effect journal either: its effects are checked through the
 * balances and the barrier keys.
 */
import { DtxFailure } from "../../../sdk/src/index.ts";
import type { BarrierOptions, BranchBarrier, BarrierResult, MysqlConnectionLike, PgQueryable, RedisLike } from "../../../sdk/src/index.ts";
import { accountDb } from "../contracts.ts";
import type { ParticipantClients } from "./clients.ts";

export const ACCOUNTS_TABLE = "chaos_accounts";
export const EFFECTS_TABLE = "chaos_effects";
/** The barrier table (unqualified: it lives in the participant's own database / schema `public`). */
export const CHAOS_BARRIER_TABLE = "chaos_barrier";
/**
 * Options for every barrier the chaos participants and their msg sender use, e.g.
 * `doAndSubmitDB(msg, qp, pool, busi, CHAOS_BARRIER_OPTIONS)` or `new BranchBarrier(info, CHAOS_BARRIER_OPTIONS)`.
 */
export const CHAOS_BARRIER_OPTIONS: BarrierOptions = { tableName: CHAOS_BARRIER_TABLE };

/** Where Redis compensation debits go; see the module comment. */
export const REDIS_COMP_BASE = 1_000_000_000_000;

/** The Redis key (without the client's prefix) of an account's balance. */
export function redisBalanceKey(account: number): string {
  return `balance:${account}`;
}

/** The Redis key (without the client's prefix) of an account's compensation ledger. */
export function redisCompKey(account: number): string {
  return `comp:${account}`;
}

/** One change of one account by one branch op. */
export interface AccountChange {
  /** The global transaction, branch and op the effect row is written for. */
  gid: string;
  branchId: string;
  op: string;
  account: number;
  /** Added to the balance (negative: taken). */
  balance: number;
  /** Added to the frozen amount (TCC; default 0). Ignored on Redis. */
  frozen?: number;
  /**
   * The change is refused with FAILURE (nothing written) when the balance would go below zero:
   * debits that may fail (saga/msg/XA TransOut, TCC try). Debits that must not fail (compensation)
   * leave it unset.
   */
  requireFunds?: boolean;
}

/**
 * The effect row's `amount`: what the change did to `balance + frozen`. For a SQL account,
 * `initialBalance(id) + Σ amount = balance + frozen` at any moment.
 */
export function effectAmount(change: AccountChange): number {
  return change.balance + (change.frozen ?? 0);
}

function checkChange(change: AccountChange): void {
  if (!Number.isSafeInteger(change.balance) || !Number.isSafeInteger(change.frozen ?? 0) || !Number.isSafeInteger(change.account)) {
    throw new Error(`account change needs whole numbers: ${JSON.stringify(change)}`);
  }
}

function insufficient(change: AccountChange): DtxFailure {
  return new DtxFailure(`account ${change.account}: balance too low for ${-change.balance} FAILURE`);
}

/**
 * Applies `change` on a pg client INSIDE the caller's transaction (after BEGIN, e.g. in
 * `BranchBarrier.callWithPg` or `xaLocalTransaction`), with its effect row. Rejects with
 * {@link DtxFailure} when `requireFunds` and the balance is too low (the caller rolls back).
 */
export async function applyPgChange(client: PgQueryable, change: AccountChange): Promise<void> {
  checkChange(change);
  const frozen = change.frozen ?? 0;
  if (change.balance !== 0 || frozen !== 0) {
    const guard = change.requireFunds ? " and balance + $1 >= 0" : "";
    const r = await client.query(`update ${ACCOUNTS_TABLE} set balance = balance + $1, frozen = frozen + $2 where id = $3${guard}`, [change.balance, frozen, change.account]);
    if (r.rowCount !== 1) {
      if (change.requireFunds) throw insufficient(change);
      throw new Error(`account ${change.account} is not in this PostgreSQL database`);
    }
  }
  await client.query(`insert into ${EFFECTS_TABLE}(gid, branch_id, op, account, amount, at) values($1, $2, $3, $4, $5, $6)`, [
    change.gid,
    change.branchId,
    change.op,
    change.account,
    effectAmount(change),
    Date.now(),
  ]);
}

function affectedRows(result: unknown): number {
  const header = Array.isArray(result) ? (result as unknown[])[0] : result;
  const n = (header as { affectedRows?: unknown } | undefined)?.affectedRows;
  return typeof n === "number" ? n : 0;
}

/**
 * Applies `change` on a mysql2/promise connection INSIDE the caller's transaction (e.g. in
 * `BranchBarrier.callWithMysql` or `xaLocalTransaction`), with its effect row. Rejects with
 * {@link DtxFailure} when `requireFunds` and the balance is too low.
 */
export async function applyMysqlChange(conn: Pick<MysqlConnectionLike, "query">, change: AccountChange): Promise<void> {
  checkChange(change);
  const frozen = change.frozen ?? 0;
  if (change.balance !== 0 || frozen !== 0) {
    const guard = change.requireFunds ? " and balance + ? >= 0" : "";
    const params = change.requireFunds ? [change.balance, frozen, change.account, change.balance] : [change.balance, frozen, change.account];
    const r = await conn.query(`update ${ACCOUNTS_TABLE} set balance = balance + ?, frozen = frozen + ? where id = ?${guard}`, params);
    if (affectedRows(r) !== 1) {
      if (change.requireFunds) throw insufficient(change);
      throw new Error(`account ${change.account} is not in this MariaDB database`);
    }
  }
  await conn.query(`insert into ${EFFECTS_TABLE}(gid, branch_id, op, account, amount, at) values(?, ?, ?, ?, ?, ?)`, [
    change.gid,
    change.branchId,
    change.op,
    change.account,
    effectAmount(change),
    Date.now(),
  ]);
}

/**
 * Applies `change` to a Redis account through the SDK's barrier Lua (`redisCheckAdjustAmount`):
 * the barrier key and the adjustment in one script. `bb` is the barrier of the branch op (its op
 * decides null compensation: `compensate` / `cancel` block their action / try). `redis` must be
 * the ioredis client with the run's key prefix (clients.ts `openRedis`). A debit without
 * `requireFunds` goes to the compensation ledger, so it never fails. Rejects with a FAILURE
 * BarrierError when `requireFunds` and the balance is too low.
 */
export function applyRedisChange(redis: RedisLike, bb: BranchBarrier, change: AccountChange): Promise<BarrierResult<void>> {
  checkChange(change);
  const key = change.balance < 0 && !change.requireFunds ? redisCompKey(change.account) : redisBalanceKey(change.account);
  return bb.redisCheckAdjustAmount(redis, key, change.balance);
}

/**
 * Applies `change` to its account's database through the barrier `bb`: on PostgreSQL and MariaDB in
 * one local transaction with the barrier row and the effect row, on Redis with the barrier's Lua.
 * The branch handlers and the msg sender share it.
 */
export async function applyThroughBarrier(clients: Pick<ParticipantClients, "pg" | "mysql" | "redis">, bb: BranchBarrier, change: AccountChange): Promise<void> {
  switch (accountDb(change.account)) {
    case "postgres":
      await bb.callWithPg(clients.pg, (c) => applyPgChange(c, change));
      return;
    case "mysql":
      await bb.callWithMysql(clients.mysql, (c) => applyMysqlChange(c, change));
      return;
    case "redis":
      await applyRedisChange(clients.redis, bb, change);
      return;
  }
}
