import type { Connection as MysqlConnection } from "mysql2/promise";
import type { PoolClient } from "pg";
import type { MsgBarrierDb, WorkflowContext, XaSessions } from "../../../sdk/src/index.ts";
import { msgBarrierDb, mysqlXa, postgresXa } from "../../../sdk/src/index.ts";
import { accountDb } from "../contracts.ts";
import type { AccountChange } from "../participant/accounts.ts";
import { CHAOS_BARRIER_OPTIONS, CHAOS_BARRIER_TABLE, applyMysqlChange, applyPgChange } from "../participant/accounts.ts";
import { openMysqlConnection, openMysqlPool, openPgPool } from "../participant/clients.ts";
import type { DbUrls } from "../participant/db-urls.ts";

/** An account change without its branch identity (the SDK supplies gid, branch id and op). */
export type Change = Omit<AccountChange, "gid" | "branchId" | "op">;

/**
 * The load generator's own connections to the participants' PostgreSQL and MariaDB: the msg
 * sender's local transaction (a debit of the source account, its effect row and the msg barrier
 * row, in one local transaction) and the local XA transactions of workflow steps. Both use the
 * participant's account primitives (participant/accounts.ts), as an application shares its
 * data-access code with its services.
 */
export class SenderDbs {
  readonly #pg;
  readonly #mysql;

  constructor(readonly urls: DbUrls, poolSize: number) {
    this.#pg = openPgPool(urls.postgres, poolSize);
    this.#mysql = openMysqlPool(urls.mysql, poolSize);
  }

  /**
   * The msg sender's database as the SDK's `MsgBarrierDb`: its local transaction inserts the msg
   * barrier row, applies `change` (with its effect row, branch `00`, op `msg`) and commits; a
   * FAILURE (balance too low) rolls it back. `busi` runs inside, after the change.
   */
  msgDb(change: Change): MsgBarrierDb<unknown> {
    const db = accountDb(change.account);
    return {
      callMsgBarrier: async (barrier, busi) => {
        const full: AccountChange = { ...change, gid: barrier.gid, branchId: barrier.branchId, op: barrier.op };
        if (db === "postgres") {
          await msgBarrierDb(this.#pg, CHAOS_BARRIER_OPTIONS).callMsgBarrier(barrier, async (client) => {
            await applyPgChange(client, full);
            await busi(client);
          });
        } else if (db === "mysql") {
          await msgBarrierDb(this.#mysql, CHAOS_BARRIER_OPTIONS).callMsgBarrier(barrier, async (conn) => {
            await applyMysqlChange(conn, full);
            await busi(conn);
          });
        } else {
          throw new Error(`account ${change.account} lives in Redis: a msg sender needs a SQL account`);
        }
      },
    };
  }

  /**
   * A workflow's local XA step (`wf.doXa`) applying `change` to a PostgreSQL or MariaDB account:
   * prepared in the step, committed or rolled back by the workflow's phase 2. The effect row is
   * written in the XA transaction (branch = the step's, op `action`).
   */
  doXa(wf: WorkflowContext, change: Change): Promise<Buffer> {
    const options = { barrierTable: CHAOS_BARRIER_TABLE };
    const identity = (branch: { gid: string; branchId: string; op: string }): AccountChange => ({ ...change, gid: branch.gid, branchId: branch.branchId, op: branch.op });
    switch (accountDb(change.account)) {
      case "postgres": {
        const sessions: XaSessions<PoolClient> = {
          open: async () => postgresXa(await this.#pg.connect()),
          close: async (client) => client.release(),
        };
        return wf.doXa(sessions, (client, branch) => applyPgChange(client, identity(branch)), options);
      }
      case "mysql": {
        // A dedicated session: MariaDB hands a prepared XA transaction over when its session closes.
        const sessions: XaSessions<MysqlConnection> = {
          open: async () => {
            const conn = await openMysqlConnection(this.urls.mysql);
            // A server that dies while the session waits between two statements makes mysql2 emit
            // 'error' on the connection; unheard, that would end the whole orchestrator. The
            // session's next statement fails instead, and the workflow step is retried on resume.
            conn.on("error", () => undefined);
            return mysqlXa(conn);
          },
          close: async (conn) => conn.end(),
        };
        return wf.doXa(sessions, (conn, branch) => applyMysqlChange(conn, identity(branch)), options);
      }
      case "redis":
        throw new Error(`account ${change.account} lives in Redis, which has no XA`);
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.#pg.end(), this.#mysql.end()]);
  }
}
