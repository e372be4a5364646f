/**
 * A bank transfer as a saga across two databases: account A lives in a Postgres account service,
 * account B in a MySQL account service. Every handler runs behind the branch barrier, so duplicate
 * deliveries, a compensation that arrives before its action, and a late action are all harmless.
 *
 * Run 1 moves 30 from A to B. Run 2 tries to move more than A holds: the credit to B (step 1)
 * succeeds, the debit of A (step 2) answers FAILURE, and the coordinator compensates step 1, so
 * both balances are back where run 1 left them. (The credit goes first so that the refused debit
 * leaves something to compensate; with the debit first there would be nothing to undo.)
 *
 *   npm start                               # a coordinator on :36789 (or set DTX_URL)
 *   npx tsx examples/bank-transfer-saga.ts  # PG_URL / MYSQL_URL default to the test databases
 */
import type { FastifyRequest } from "fastify";
import mysql from "mysql2/promise";
import pg from "pg";
import { BranchBarrier, DtxClient, DtxFailure, Saga, createBarrierTable, fastifyHandler, isFailure } from "../sdk/src/index.ts";
import type { ExampleOptions } from "./lib/common.ts";
import { isMain, messageOf, runMain, startService, statusOf, uniqueName } from "./lib/common.ts";

export interface TransferOutcome {
  readonly gid: string;
  /** The coordinator's final status: `succeed` or `failed`. */
  readonly status: string;
  /** The error `submit` threw (a rolled-back saga with waitResult throws FAILURE); undefined on success. */
  readonly error?: string;
  readonly balances: { readonly pgAccount: number; readonly mysqlAccount: number };
}

export interface BankTransferResult {
  readonly initial: { readonly pgAccount: number; readonly mysqlAccount: number };
  /** Moves 30: succeeds. */
  readonly transfer: TransferOutcome;
  /** Moves more than the Postgres account holds: fails and is compensated. */
  readonly overdraft: TransferOutcome;
}

interface Body {
  account: number;
  amount: number;
}

const INITIAL = 100;
const ACCOUNT = 1;

export async function run(opts: ExampleOptions): Promise<BankTransferResult> {
  const accountsPg = uniqueName("ex_saga_account");
  const barrierPg = uniqueName("ex_saga_barrier");
  const accountsMy = uniqueName("ex_saga_account");
  const barrierMy = uniqueName("ex_saga_barrier");
  const pgPool = new pg.Pool({ connectionString: opts.pgUrl, max: 4 });
  const myPool = mysql.createPool({ uri: opts.mysqlUrl, connectionLimit: 4 });
  const client = new DtxClient({ server: opts.dtxUrl });
  const services: { close(): Promise<void> }[] = [];
  try {
    await pgPool.query(`create table ${accountsPg}(id int primary key, balance int not null)`);
    await pgPool.query(`insert into ${accountsPg} values ($1, $2)`, [ACCOUNT, INITIAL]);
    await createBarrierTable("postgres", pgPool, { tableName: barrierPg });
    await myPool.query(`create table ${accountsMy}(id int primary key, balance int not null)`);
    await myPool.query(`insert into ${accountsMy} values (?, ?)`, [ACCOUNT, INITIAL]);
    await createBarrierTable("mysql", myPool, { tableName: barrierMy });

    // The Postgres account service: debit (refused below zero) and its compensation.
    const pgAdjust = async (q: unknown, delta: number, checkFunds: boolean): Promise<void> => {
      await BranchBarrier.fromQuery(q as Record<string, unknown>, { tableName: barrierPg }).callWithPg(pgPool, async (c) => {
        const r = await c.query(`update ${accountsPg} set balance = balance + $1 where id = $2 and ($3::boolean is false or balance + $1 >= 0)`, [delta, ACCOUNT, checkFunds]);
        // Throwing inside the barrier rolls back the barrier row too, so a later compensation is a no-op.
        if (r.rowCount === 0) throw new DtxFailure(`insufficient balance in ${accountsPg}`);
      });
    };
    const pgService = await startService((app) => {
      app.post("/TransOut", fastifyHandler((req: FastifyRequest) => pgAdjust(req.query, -(req.body as Body).amount, true)));
      app.post("/TransOutRevert", fastifyHandler((req: FastifyRequest) => pgAdjust(req.query, (req.body as Body).amount, false)));
    });
    services.push(pgService);

    // The MySQL account service: credit and its compensation.
    const myAdjust = async (q: unknown, delta: number): Promise<void> => {
      await BranchBarrier.fromQuery(q as Record<string, unknown>, { tableName: barrierMy }).callWithMysql(myPool, async (c) => {
        await c.query(`update ${accountsMy} set balance = balance + ? where id = ?`, [delta, ACCOUNT]);
      });
    };
    const myService = await startService((app) => {
      app.post("/TransIn", fastifyHandler((req: FastifyRequest) => myAdjust(req.query, (req.body as Body).amount)));
      app.post("/TransInRevert", fastifyHandler((req: FastifyRequest) => myAdjust(req.query, -(req.body as Body).amount)));
    });
    services.push(myService);

    const balances = async (): Promise<{ pgAccount: number; mysqlAccount: number }> => {
      const p = await pgPool.query<{ balance: number }>(`select balance from ${accountsPg} where id = $1`, [ACCOUNT]);
      const [rows] = await myPool.query(`select balance from ${accountsMy} where id = ?`, [ACCOUNT]);
      return { pgAccount: p.rows[0]?.balance ?? NaN, mysqlAccount: (rows as { balance: number }[])[0]?.balance ?? NaN };
    };

    const transfer = async (amount: number): Promise<TransferOutcome> => {
      const body: Body = { account: ACCOUNT, amount };
      const saga = new Saga(client, uniqueName("saga"), { waitResult: true })
        .add(`${myService.url}/TransIn`, `${myService.url}/TransInRevert`, body)
        .add(`${pgService.url}/TransOut`, `${pgService.url}/TransOutRevert`, body);
      let error: string | undefined;
      try {
        await saga.submit();
      } catch (err) {
        if (!isFailure(err)) throw err;
        error = messageOf(err);
      }
      return { gid: saga.gid, status: await statusOf(client, saga.gid), ...(error === undefined ? {} : { error }), balances: await balances() };
    };

    const initial = await balances();
    const ok = await transfer(30);
    const overdraft = await transfer(1_000);
    return { initial, transfer: ok, overdraft };
  } finally {
    for (const s of services) await s.close();
    await client.close();
    await pgPool.query(`drop table if exists ${accountsPg}, ${barrierPg}; drop sequence if exists ${barrierPg}_seq`).catch(() => undefined);
    await myPool.query(`drop table if exists ${accountsMy}, ${barrierMy}`).catch(() => undefined);
    await pgPool.end();
    await myPool.end();
  }
}

if (isMain(import.meta.url)) await runMain(run);
