/**
 * A workflow that mixes the three styles of branch dtm offers, for an order checkout:
 *
 *   01 saga-style: pay from the customer's wallet (Postgres wallet service, `wf.callHttp`);
 *      compensation (`onRollback`) refunds it. Both handlers are barrier-protected.
 *   02 TCC-style: reserve loyalty points in Redis (`wf.do` freezes: available -> frozen);
 *      `onCommit` spends the frozen points (confirm), `onRollback` releases them (cancel).
 *   03 XA: take the item from stock in MySQL inside an XA transaction that the step leaves
 *      PREPARED; `onCommit` runs XA COMMIT, `onRollback` XA ROLLBACK (the SDK's `xaPhase2`).
 *      This is the XA step written out, so that its phase 2 shows in the log: `wf.do` runs
 *      XA START ... XA PREPARE, and phase 2 is registered on the branch. `wf.doXa` (dtm's `DoXa`)
 *      packs the same into one call.
 *   04 shipping (`wf.callHttp`): answers FAILURE for an unknown destination.
 *
 * Run 1 succeeds: the commits run, last branch first (03 XA COMMIT, then 02 confirm).
 * Run 2 ships to "nowhere": branch 04 fails, and the rollbacks run in reverse (03 XA ROLLBACK,
 * 02 cancel, 01 refund), leaving every balance where run 1 left it.
 *
 *   npm start
 *   npx tsx examples/workflow-mixed.ts
 */
import type { FastifyRequest } from "fastify";
import { Redis } from "ioredis";
import mysql from "mysql2/promise";
import pg from "pg";
import {
  BranchBarrier,
  DtxClient,
  DtxFailure,
  WorkflowRegistry,
  createBarrierTable,
  fastifyHandler,
  isFailure,
  mysqlXa,
  xaId,
  xaPhase2,
} from "../sdk/src/index.ts";
import type { BranchInfo, WorkflowContext } from "../sdk/src/index.ts";
import type { ExampleOptions } from "./lib/common.ts";
import { isMain, messageOf, removeRunKeys, runMain, startService, statusOf, uniqueName } from "./lib/common.ts";

export interface CheckoutBalances {
  readonly wallet: number;
  readonly points: { readonly available: number; readonly frozen: number };
  readonly stock: number;
}

export interface CheckoutOutcome {
  readonly gid: string;
  /** The coordinator's final status: `succeed` or `failed`. */
  readonly status: string;
  /** The workflow's result (success) or the failure message. */
  readonly result?: unknown;
  readonly error?: string;
  /** The phase-2 callbacks in the order they ran: `<branch> <op> <what>`. */
  readonly phase2: readonly string[];
  readonly balances: CheckoutBalances;
}

export interface WorkflowMixedResult {
  readonly initial: CheckoutBalances;
  readonly success: CheckoutOutcome;
  readonly failure: CheckoutOutcome;
  /** With `coordinatorCrash`: a third checkout, interrupted by the coordinator's death and resumed. */
  readonly resumed?: CheckoutOutcome & {
    /** The error the first execution stopped with (the coordinator was gone). */
    readonly errorAtCrash: string;
  };
}

export interface WorkflowMixedOptions extends ExampleOptions {
  /**
   * Adds a third checkout during which the coordinator dies (for tests that own the coordinator
   * process, e.g. with `spawnCoordinator`): `kill` is called inside the workflow right before
   * branch 04, so the execution stops with branches 01-03 recorded and 03's XA transaction
   * prepared. `restart` must bring the coordinator back on the same store and URL and drive it
   * (its cron) until the workflow is done: the coordinator calls the resume callback, and the
   * workflow runs again, replaying 01-03, running 04 and the commits.
   */
  readonly coordinatorCrash?: {
    kill(): Promise<void>;
    restart(gid: string): Promise<void>;
  };
}

interface Checkout {
  customer: number;
  price: number;
  points: number;
  sku: string;
  destination: string;
}

const CUSTOMER = 1;
const SKU = "widget";
const INITIAL = { wallet: 100, points: 100, stock: 10 } as const;
const EXPIRE_SECONDS = 3600;

export async function run(opts: WorkflowMixedOptions): Promise<WorkflowMixedResult> {
  const wallets = uniqueName("ex_wf_wallet");
  const barrierPg = uniqueName("ex_wf_barrier");
  const stock = uniqueName("ex_wf_stock");
  const barrierMy = uniqueName("ex_wf_barrier");
  const points = uniqueName("ex_wf_points");
  const pgPool = new pg.Pool({ connectionString: opts.pgUrl, max: 4 });
  const myPool = mysql.createPool({ uri: opts.mysqlUrl, connectionLimit: 4 });
  const redis = new Redis(opts.redisUrl, { maxRetriesPerRequest: 1 });
  const client = new DtxClient({ server: opts.dtxUrl });
  const services: { close(): Promise<void> }[] = [];
  /** The workflows run, whose barrier keys are removed at the end. */
  const gids: string[] = [];
  const pointsKey = (part: "available" | "frozen"): string => `${points}:${CUSTOMER}:${part}`;
  try {
    await pgPool.query(`create table ${wallets}(id int primary key, balance int not null)`);
    await pgPool.query(`insert into ${wallets} values ($1, $2)`, [CUSTOMER, INITIAL.wallet]);
    await createBarrierTable("postgres", pgPool, { tableName: barrierPg });
    await myPool.query(`create table ${stock}(sku varchar(64) primary key, quantity int not null)`);
    await myPool.query(`insert into ${stock} values (?, ?)`, [SKU, INITIAL.stock]);
    // Also the table of XA barrier rows: xaPhase2 marks rolled-back branches in it.
    await createBarrierTable("mysql", myPool, { tableName: barrierMy });
    await redis.mset(pointsKey("available"), INITIAL.points, pointsKey("frozen"), 0);

    // The wallet service (Postgres). Pay is the workflow step (op=action), Refund its compensation (op=rollback).
    const walletAdjust = async (q: unknown, delta: number): Promise<void> => {
      await BranchBarrier.fromQuery(q as Record<string, unknown>, { tableName: barrierPg }).callWithPg(pgPool, async (c) => {
        const r = await c.query(`update ${wallets} set balance = balance + $1 where id = $2 and balance + $1 >= 0`, [delta, CUSTOMER]);
        if (r.rowCount === 0) throw new DtxFailure("insufficient balance");
      });
    };
    const walletService = await startService((app) => {
      app.post("/Pay", fastifyHandler((req: FastifyRequest) => walletAdjust(req.query, -(req.body as Checkout).price)));
      app.post("/Refund", fastifyHandler((req: FastifyRequest) => walletAdjust(req.query, (req.body as Checkout).price)));
    });
    services.push(walletService);

    // The shipping service.
    const shipping = await startService((app) => {
      app.post("/Ship", fastifyHandler((req: FastifyRequest) => {
        const { destination } = req.body as Checkout;
        if (destination === "nowhere") throw new DtxFailure(`cannot ship to ${destination}`);
        return { tracking: `T-${destination}` };
      }));
    });
    services.push(shipping);

    // The app that runs the workflow, with the callback the coordinator resumes it through.
    // (The coordinator calls it only for a workflow prepared through `registry`, declared below.)
    const app = await startService((a) => {
      a.route({
        method: ["GET", "POST"],
        url: "/workflow/resume",
        handler: fastifyHandler((req: FastifyRequest) => registry.handleResume(req.query as Record<string, string>, req.body)),
      });
    });
    services.push(app);
    const registry = new WorkflowRegistry({ client, callbackUrl: `${app.url}/workflow/resume` });

    let phase2: string[] = [];
    let killBeforeShipping: (() => Promise<void>) | undefined;
    const log = (branch: BranchInfo, what: string): void => {
      phase2.push(`${branch.branchId} ${branch.op} ${what}`);
    };
    const call = async (url: string, branch: BranchInfo, body: unknown): Promise<void> => {
      const q = new URLSearchParams({ gid: branch.gid, trans_type: branch.transType, branch_id: branch.branchId, op: branch.op });
      const res = await fetch(`${url}?${q.toString()}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      if (!res.ok) throw new Error(`${url} answered ${res.status}: ${await res.text()}`);
    };
    // A phase-2 XA call on its own session (any session can commit or roll back a prepared xid).
    const xaFinish = async (branch: BranchInfo): Promise<void> => {
      const conn = await mysql.createConnection({ uri: opts.mysqlUrl });
      try {
        await xaPhase2(branch, mysqlXa(conn), { barrierTable: barrierMy });
      } finally {
        await conn.end();
      }
    };

    registry.register("checkout", async (wf: WorkflowContext) => {
      const order = wf.json<Checkout>();

      // 01 saga-style: an action and its compensation.
      wf.newBranch().onRollback(async (branch) => {
        await call(`${walletService.url}/Refund`, branch, order);
        log(branch, "refund");
      });
      await wf.callHttp(`${walletService.url}/Pay`, { body: order });

      // 02 TCC-style: Try in the step, Confirm on commit, Cancel on rollback (Redis barrier, once per op).
      wf.newBranch()
        .onCommit(async (branch) => {
          await new BranchBarrier(branch).redisCheckAdjustAmount(redis, pointsKey("frozen"), -order.points, EXPIRE_SECONDS);
          log(branch, "confirm");
        })
        .onRollback(async (branch) => {
          const bb = new BranchBarrier(branch);
          await bb.redisCheckAdjustAmount(redis, pointsKey("available"), order.points, EXPIRE_SECONDS);
          await bb.redisCheckAdjustAmount(redis, pointsKey("frozen"), -order.points, EXPIRE_SECONDS);
          log(branch, "cancel");
        });
      await wf.do(async (branch) => {
        const bb = new BranchBarrier(branch);
        // FAILURE (the workflow rolls back) when there are not enough points.
        const taken = await bb.redisCheckAdjustAmount(redis, pointsKey("available"), -order.points, EXPIRE_SECONDS);
        if (taken.executed) await bb.redisCheckAdjustAmount(redis, pointsKey("frozen"), order.points, EXPIRE_SECONDS);
      });

      // 03 XA: the step prepares; phase 2 commits or rolls back.
      wf.newBranch().onCommit(async (branch) => {
        await xaFinish(branch);
        log(branch, "XA COMMIT");
      }).onRollback(async (branch) => {
        await xaFinish(branch);
        log(branch, "XA ROLLBACK");
      });
      await wf.do(async (branch) => {
        const xid = xaId(branch.gid, branch.branchId, "mysql");
        // A dedicated session: a prepared MySQL XA transaction stays attached to its session
        // until that session closes, and only then can another session commit it.
        const conn = await mysql.createConnection({ uri: opts.mysqlUrl });
        try {
          await conn.query(`XA START '${xid}'`);
          try {
            const [r] = await conn.query(`update ${stock} set quantity = quantity - 1 where sku = ? and quantity > 0`, [order.sku]);
            if ((r as { affectedRows: number }).affectedRows === 0) throw new DtxFailure(`${order.sku} is out of stock`);
            await conn.query(`XA END '${xid}'`);
          } catch (err) {
            await conn.query(`XA END '${xid}'`).catch(() => undefined);
            await conn.query(`XA ROLLBACK '${xid}'`).catch(() => undefined);
            throw err;
          }
          await conn.query(`XA PREPARE '${xid}'`);
        } finally {
          await conn.end();
        }
      });

      // 04 shipping: the last branch; FAILURE here rolls back 03, 02 and 01, in that order.
      const kill = killBeforeShipping;
      killBeforeShipping = undefined;
      await kill?.();
      const shipped = await wf.newBranch().callHttp(`${shipping.url}/Ship`, { body: order });
      return { paid: order.price, points: order.points, ...shipped.json<{ tracking: string }>() };
    });

    const balances = async (): Promise<CheckoutBalances> => {
      const w = await pgPool.query<{ balance: number }>(`select balance from ${wallets} where id = $1`, [CUSTOMER]);
      const [rows] = await myPool.query(`select quantity from ${stock} where sku = ?`, [SKU]);
      const [available, frozen] = await redis.mget(pointsKey("available"), pointsKey("frozen"));
      return {
        wallet: w.rows[0]?.balance ?? NaN,
        points: { available: Number(available), frozen: Number(frozen) },
        stock: (rows as { quantity: number }[])[0]?.quantity ?? NaN,
      };
    };

    const newOrder = (destination: string): Checkout => ({ customer: CUSTOMER, price: 30, points: 20, sku: SKU, destination });
    const checkout = async (destination: string): Promise<CheckoutOutcome> => {
      const gid = uniqueName("wf");
      gids.push(gid);
      phase2 = [];
      const order = newOrder(destination);
      let result: unknown;
      let error: string | undefined;
      try {
        result = JSON.parse((await registry.execute("checkout", gid, order)).toString("utf8"));
      } catch (err) {
        if (!isFailure(err)) throw err;
        error = messageOf(err);
      }
      return {
        gid,
        status: await statusOf(client, gid),
        ...(result === undefined ? {} : { result }),
        ...(error === undefined ? {} : { error }),
        phase2,
        balances: await balances(),
      };
    };

    const initial = await balances();
    const success = await checkout("home");
    const failure = await checkout("nowhere");
    if (!opts.coordinatorCrash) return { initial, success, failure };

    const { kill, restart } = opts.coordinatorCrash;
    const gid = uniqueName("wf");
    gids.push(gid);
    phase2 = [];
    killBeforeShipping = kill;
    let errorAtCrash = "";
    try {
      await registry.execute("checkout", gid, newOrder("office"));
    } catch (err) {
      // Not FAILURE: the workflow is unfinished (prepared), not failed.
      if (isFailure(err)) throw err;
      errorAtCrash = messageOf(err);
    }
    if (!errorAtCrash) throw new Error("the workflow finished although the coordinator was killed");
    await restart(gid);
    const resumed = { gid, status: await statusOf(client, gid), errorAtCrash, phase2, balances: await balances() };
    return { initial, success, failure, resumed };
  } finally {
    for (const s of services) await s.close();
    await client.close();
    await pgPool.query(`drop table if exists ${wallets}, ${barrierPg}; drop sequence if exists ${barrierPg}_seq`).catch(() => undefined);
    await myPool.query(`drop table if exists ${stock}, ${barrierMy}`).catch(() => undefined);
    await removeRunKeys(redis, [`${points}:`], gids);
    redis.disconnect();
    await pgPool.end();
    await myPool.end();
  }
}

if (isMain(import.meta.url)) await runMain(run);
