/**
 * A reliable message between two services: the order service (Postgres) creates an order and,
 * in the same local transaction, writes the msg barrier row (`doAndSubmitDB`); the coordinator
 * then delivers "decrement stock" to the inventory service (MySQL, barrier-protected), retrying
 * until it succeeds. The order and the stock change happen together or not at all.
 *
 * Run 1: the normal path (prepare, local commit, submit, delivery).
 * Run 2: the order service "crashes" after its local commit and before submit. The msg stays
 * prepared; after its `timeoutToFail` the coordinator calls the order service's QueryPrepared,
 * which finds the barrier row committed, so the coordinator submits the msg and delivers it.
 * By hand this takes a few seconds (the coordinator's cron); the e2e test drives it with the
 * test coordinator's `cron(advanceMs)` through `opts.awaitCheckBack`.
 *
 *   npm start
 *   npx tsx examples/order-inventory-msg.ts
 */
import type { FastifyRequest } from "fastify";
import mysql from "mysql2/promise";
import pg from "pg";
import {
  BranchBarrier,
  DtxClient,
  Msg,
  createBarrierTable,
  doAndSubmitDB,
  fastifyHandler,
  msgBarrierDb,
} from "../sdk/src/index.ts";
import type { DoAndSubmitMsg } from "../sdk/src/index.ts";
import type { ExampleOptions } from "./lib/common.ts";
import { isMain, messageOf, runMain, startService, statusOf, uniqueName, waitForStatus } from "./lib/common.ts";

export interface OrderInventoryOptions extends ExampleOptions {
  /**
   * Settles a msg left prepared by the crash. Default: poll the coordinator until the msg
   * succeeded (its own cron runs the check-back after `timeoutToFail`).
   */
  readonly awaitCheckBack?: (client: DtxClient, gid: string) => Promise<void>;
}

export interface OrderOutcome {
  readonly gid: string;
  /** The coordinator's final status: `succeed`. */
  readonly status: string;
  /** The orders in the order service's database, for this gid. */
  readonly orders: number;
  /** Units in stock after the run. */
  readonly stock: number;
}

export interface OrderInventoryResult {
  readonly initialStock: number;
  readonly normal: OrderOutcome;
  readonly crash: OrderOutcome & {
    /** What the crash left behind: the msg `prepared`, the order committed, the stock untouched. */
    readonly afterCrash: { readonly status: string; readonly orders: number; readonly stock: number; readonly error: string };
  };
}

interface Body {
  sku: string;
  quantity: number;
}

/** How long a prepared msg waits before the coordinator checks back, in seconds. */
export const MSG_TIMEOUT_TO_FAIL = 2;
const SKU = "widget";
const INITIAL_STOCK = 10;

class SimulatedCrash extends Error {}

export async function run(opts: OrderInventoryOptions): Promise<OrderInventoryResult> {
  const orders = uniqueName("ex_msg_order");
  const barrierPg = uniqueName("ex_msg_barrier");
  const stock = uniqueName("ex_msg_stock");
  const barrierMy = uniqueName("ex_msg_barrier");
  const pgPool = new pg.Pool({ connectionString: opts.pgUrl, max: 4 });
  const myPool = mysql.createPool({ uri: opts.mysqlUrl, connectionLimit: 4 });
  const client = new DtxClient({ server: opts.dtxUrl });
  const services: { close(): Promise<void> }[] = [];
  try {
    await pgPool.query(`create table ${orders}(gid varchar(128) primary key, sku varchar(64) not null, quantity int not null)`);
    await createBarrierTable("postgres", pgPool, { tableName: barrierPg });
    await myPool.query(`create table ${stock}(sku varchar(64) primary key, quantity int not null)`);
    await myPool.query(`insert into ${stock} values (?, ?)`, [SKU, INITIAL_STOCK]);
    await createBarrierTable("mysql", myPool, { tableName: barrierMy });

    // The order service's check-back: did the local transaction of this msg commit?
    const orderService = await startService((app) => {
      app.get("/QueryPrepared", fastifyHandler(async (req: FastifyRequest) => {
        // Committed: SUCCESS. Not committed: the barrier inserts a rollback marker (so the local
        // transaction can never commit later) and rejects with FAILURE (409).
        await BranchBarrier.fromQuery(req.query as Record<string, unknown>, { tableName: barrierPg }).queryPrepared(pgPool);
      }));
    });
    services.push(orderService);

    // The inventory service: decrement stock, exactly once per msg branch.
    const inventory = await startService((app) => {
      app.post("/Decrement", fastifyHandler(async (req: FastifyRequest) => {
        const { sku, quantity } = req.body as Body;
        await BranchBarrier.fromQuery(req.query as Record<string, unknown>, { tableName: barrierMy }).callWithMysql(myPool, async (c) => {
          await c.query(`update ${stock} set quantity = quantity - ? where sku = ?`, [quantity, sku]);
        });
      }));
    });
    services.push(inventory);

    const queryPrepared = `${orderService.url}/QueryPrepared`;
    const createOrder = (gid: string, body: Body) => async (c: pg.PoolClient): Promise<void> => {
      await c.query(`insert into ${orders}(gid, sku, quantity) values ($1, $2, $3)`, [gid, body.sku, body.quantity]);
    };
    const orderCount = async (gid: string): Promise<number> => (await pgPool.query(`select 1 from ${orders} where gid = $1`, [gid])).rowCount ?? 0;
    const stockLeft = async (): Promise<number> => {
      const [rows] = await myPool.query(`select quantity from ${stock} where sku = ?`, [SKU]);
      return (rows as { quantity: number }[])[0]?.quantity ?? NaN;
    };
    const newMsg = (gid: string, body: Body): Msg =>
      new Msg(client, gid, { waitResult: true, timeoutToFail: MSG_TIMEOUT_TO_FAIL }).add(`${inventory.url}/Decrement`, body);

    const initialStock = await stockLeft();

    // Run 1: prepare, local transaction (order + barrier row), submit; the coordinator delivers.
    const gid1 = uniqueName("msg");
    const body1: Body = { sku: SKU, quantity: 3 };
    await newMsg(gid1, body1).doAndSubmitDB(queryPrepared, msgBarrierDb<pg.PoolClient>(pgPool, { tableName: barrierPg }), createOrder(gid1, body1));
    const normal: OrderOutcome = { gid: gid1, status: await statusOf(client, gid1), orders: await orderCount(gid1), stock: await stockLeft() };

    // Run 2: the same, but the process dies between the local commit and submit.
    const gid2 = uniqueName("msg");
    const body2: Body = { sku: SKU, quantity: 2 };
    const msg2 = newMsg(gid2, body2);
    const crashing: DoAndSubmitMsg = {
      gid: msg2.gid,
      prepare: (qp) => msg2.prepare(qp),
      submit: () => Promise.reject(new SimulatedCrash("the order service crashed after its local commit, before submit")),
      abort: () => msg2.abort(),
    };
    let error = "";
    try {
      await doAndSubmitDB(crashing, queryPrepared, pgPool, createOrder(gid2, body2), { tableName: barrierPg });
    } catch (err) {
      if (!(err instanceof SimulatedCrash)) throw err;
      error = messageOf(err);
    }
    const afterCrash = { status: await statusOf(client, gid2), orders: await orderCount(gid2), stock: await stockLeft(), error };
    await (opts.awaitCheckBack ?? ((c, gid) => waitForStatus(c, gid, "succeed")))(client, gid2);
    const crash = { gid: gid2, status: await statusOf(client, gid2), orders: await orderCount(gid2), stock: await stockLeft(), afterCrash };

    return { initialStock, normal, crash };
  } finally {
    for (const s of services) await s.close();
    await client.close();
    await pgPool.query(`drop table if exists ${orders}, ${barrierPg}; drop sequence if exists ${barrierPg}_seq`).catch(() => undefined);
    await myPool.query(`drop table if exists ${stock}, ${barrierMy}`).catch(() => undefined);
    await pgPool.end();
    await myPool.end();
  }
}

if (isMain(import.meta.url)) await runMain(run);
