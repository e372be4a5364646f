/**
 * XA end to end: the application (xaGlobalTransaction) -> a fastify participant using
 * xaLocalTransaction on MariaDB and on PostgreSQL -> the real coordinator's phase 2 on the same URL.
 */
import { randomBytes } from "node:crypto";
import type { FastifyRequest } from "fastify";
import mysql from "mysql2/promise";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testServiceUrls, unreachableMessage } from "../../test/helpers/services.ts";
import type { XaConnection, XaSessions } from "../src/index.ts";
import { DtxFailure, WorkflowRegistry, branchInfoFromQuery, fastifyHandler, mysqlXa, postgresXa, xaGlobalTransaction, xaLocalTransaction, xaPhase2 } from "../src/index.ts";
import { prepareLocal } from "../src/xa-local.ts";
import type { App, SdkEnv } from "./helpers.ts";
import { eventually, gidFor, startApp, startSdkEnv } from "./helpers.ts";

type Dialect = "mysql" | "postgres";

const BARRIER_COLUMNS = `trans_type varchar(45) default '', gid varchar(128) default '', branch_id varchar(128) default '',
  op varchar(45) default '', barrier_id varchar(45) default '', reason varchar(45) default ''`;

let env: SdkEnv;
let rm: App;
let my: mysql.Pool;
let pgPool: pg.Pool;

/** Runs `fn` on one session of the dialect's pool, wrapped for XA. */
async function withSession<T>(dialect: Dialect, fn: (conn: XaConnection) => Promise<T>): Promise<T> {
  if (dialect === "mysql") {
    const conn = await my.getConnection();
    try {
      return await fn(mysqlXa(conn));
    } finally {
      conn.release();
    }
  }
  const client = await pgPool.connect();
  try {
    return await fn(postgresXa(client));
  } finally {
    client.release();
  }
}

/** This file's own MySQL database and Postgres schema (one name), dropped at the end. */
const AREA = `dtx_sxa_${randomBytes(5).toString("hex")}`;
const TABLE = { mysql: { account: `${AREA}.sdk_xa_account`, barrier: `${AREA}.sdk_xa_barrier` }, postgres: { account: `${AREA}.sdk_xa_account`, barrier: `${AREA}.sdk_xa_barrier` } };

async function balance(dialect: Dialect, id: number): Promise<number> {
  if (dialect === "mysql") {
    const [rows] = await my.query(`select balance from ${TABLE.mysql.account} where id = ?`, [id]);
    return Number((rows as { balance: number }[])[0]?.balance);
  }
  const r = await pgPool.query(`select balance from ${TABLE.postgres.account} where id = $1`, [id]);
  return Number((r.rows as { balance: number }[])[0]?.balance);
}

async function barrierReasons(dialect: Dialect, gid: string): Promise<string[]> {
  if (dialect === "mysql") {
    const [rows] = await my.query(`select branch_id, reason from ${TABLE.mysql.barrier} where gid = ? order by branch_id, reason`, [gid]);
    return (rows as { branch_id: string; reason: string }[]).map((r) => `${r.branch_id}:${r.reason}`);
  }
  const r = await pgPool.query(`select branch_id, reason from ${TABLE.postgres.barrier} where gid = $1 order by branch_id, reason`, [gid]);
  return (r.rows as { branch_id: string; reason: string }[]).map((x) => `${x.branch_id}:${x.reason}`);
}

async function pendingXids(dialect: Dialect, gid: string): Promise<string[]> {
  if (dialect === "mysql") {
    const [rows] = await my.query("XA RECOVER");
    return (rows as { data: Buffer | string }[]).map((r) => r.data.toString()).filter((x) => x.startsWith(gid)).sort();
  }
  const r = await pgPool.query("select gid from pg_prepared_xacts where gid like $1", [`${gid}%`]);
  return (r.rows as { gid: string }[]).map((x) => x.gid).sort();
}

let nextAccount = Math.floor(Math.random() * 1_000_000) * 10;

/** Two fresh accounts with balance 100. */
async function accounts(dialect: Dialect): Promise<[number, number]> {
  nextAccount += 2;
  const ids: [number, number] = [nextAccount, nextAccount + 1];
  for (const id of ids) {
    if (dialect === "mysql") await my.query(`insert into ${TABLE.mysql.account}(id, balance) values (?, 100)`, [id]);
    else await pgPool.query(`insert into ${TABLE.postgres.account}(id, balance) values ($1, 100)`, [id]);
  }
  return ids;
}

beforeAll(async () => {
  const urls = testServiceUrls();
  my = mysql.createPool({ uri: urls.mysql, connectionLimit: 10 });
  pgPool = new pg.Pool({ connectionString: urls.pg, max: 10 });
  await my.query("select 1").catch((e: unknown) => {
    throw new Error(unreachableMessage("MariaDB", urls.mysql, e));
  });
  await pgPool.query("select 1").catch((e: unknown) => {
    throw new Error(unreachableMessage("PostgreSQL", urls.pg, e));
  });
  await my.query(`create database ${AREA} character set utf8mb4`);
  await pgPool.query(`create schema ${AREA}`);
  await my.query(`create table if not exists ${TABLE.mysql.account}(id bigint primary key, balance int not null) engine=InnoDB`);
  await my.query(`create table if not exists ${TABLE.mysql.barrier}(id bigint primary key auto_increment, ${BARRIER_COLUMNS}, unique key(gid, branch_id, op, barrier_id)) engine=InnoDB`);
  await pgPool.query(`create table if not exists ${TABLE.postgres.account}(id bigint primary key, balance int not null)`);
  await pgPool.query(`create table if not exists ${TABLE.postgres.barrier}(id bigserial primary key, ${BARRIER_COLUMNS}, constraint sdk_xa_uniq_barrier unique(gid, branch_id, op, barrier_id))`);

  env = await startSdkEnv();
  // The participant: one URL per database serves the XA action and the coordinator's phase 2.
  rm = await startApp((app) => {
    app.post(
      "/xa/:db",
      fastifyHandler(async (req: FastifyRequest) => {
        const dialect = (req.params as { db: Dialect }).db;
        const info = branchInfoFromQuery(req.query as Record<string, string>);
        const { account, amount } = (req.body ?? {}) as { account: number; amount: number };
        if (dialect === "mysql") {
          // A dedicated session: after XA PREPARE it is closed gracefully, handing the prepared
          // transaction to the server before this branch answers.
          const conn = await mysql.createConnection({ uri: testServiceUrls().mysql });
          try {
            await xaLocalTransaction(info, mysqlXa(conn), async (c) => {
              await c.query(`update ${TABLE.mysql.account} set balance = balance + ? where id = ?`, [amount, account]);
              const [rows] = await c.query(`select balance from ${TABLE.mysql.account} where id = ?`, [account]);
              if (Number((rows as { balance: number }[])[0]?.balance) < 0) throw new DtxFailure("insufficient balance");
            }, { barrierTable: TABLE.mysql.barrier });
          } finally {
            conn.destroy();
          }
          return;
        }
        const client = await pgPool.connect();
        try {
          await xaLocalTransaction(info, postgresXa(client), async (c) => {
            const r = await c.query(`update ${TABLE.postgres.account} set balance = balance + $1 where id = $2 returning balance`, [amount, account]);
            if (Number((r.rows as { balance: number }[])[0]?.balance) < 0) throw new DtxFailure("insufficient balance");
          }, { barrierTable: TABLE.postgres.barrier });
        } finally {
          client.release();
        }
      }),
    );
  });
});

afterAll(async () => {
  await rm?.close();
  await env?.stop();
  await Promise.allSettled([my?.query(`drop database if exists ${AREA}`), pgPool?.query(`drop schema if exists ${AREA} cascade`)]);
  await my?.end();
  await pgPool?.end();
});

describe.each<Dialect>(["mysql", "postgres"])("XA on %s", (dialect) => {
  const url = () => `${rm.baseUrl}/xa/${dialect}`;

  it("commits every branch when the application's function succeeds", async () => {
    const gid = gidFor(`xa-${dialect}-ok`);
    const [a, b] = await accounts(dialect);
    await xaGlobalTransaction(env.http, gid, async (xa) => {
      await xa.callBranch({ account: a, amount: -30 }, url());
      await xa.callBranch({ account: b, amount: 30 }, url());
      // Prepared, not committed: another session still sees the old balances.
      expect([await balance(dialect, a), await balance(dialect, b)]).toEqual([100, 100]);
      expect(await pendingXids(dialect, gid)).toEqual([`${gid}-01`, `${gid}-02`]);
    }, { waitResult: true });
    expect([await balance(dialect, a), await balance(dialect, b)]).toEqual([70, 130]);
    expect(await pendingXids(dialect, gid)).toEqual([]);
    const q = await env.http.query(gid);
    expect(q.transaction?.status).toBe("succeed");
    expect(q.branches.map((x) => `${x.branch_id}:${x.op}:${x.status}`)).toEqual(["01:rollback:prepared", "01:commit:succeed", "02:rollback:prepared", "02:commit:succeed"]);
    expect(await barrierReasons(dialect, gid)).toEqual(["01:action", "02:action"]);
  });

  it("rolls every prepared branch back when a branch answers FAILURE", async () => {
    const gid = gidFor(`xa-${dialect}-fail`);
    const [a, b] = await accounts(dialect);
    const err = await xaGlobalTransaction(env.http, gid, async (xa) => {
      await xa.callBranch({ account: a, amount: -30 }, url());
      await xa.callBranch({ account: b, amount: -1000 }, url());
    }, { waitResult: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DtxFailure);
    expect((err as Error).message).toBe("insufficient balance");
    expect([await balance(dialect, a), await balance(dialect, b)]).toEqual([100, 100]);
    expect(await pendingXids(dialect, gid)).toEqual([]);
    const q = await env.http.query(gid);
    expect(q.transaction).toMatchObject({ status: "failed", rollback_reason: "insufficient balance" });
    // Branch 02 failed before registering: only 01 exists. Its action's barrier row went with the
    // rolled-back XA transaction; the rollback inserted its own, which refuses a late prepare.
    expect(q.branches.map((x) => `${x.branch_id}:${x.op}:${x.status}`)).toEqual(["01:rollback:succeed", "01:commit:prepared"]);
    expect(await barrierReasons(dialect, gid)).toEqual(["01:rollback"]);
  });

  it("phase 2 of an unknown xid (a repeat, or a branch that never prepared) is a success, and a rollback leaves its barrier row", async () => {
    const gid = gidFor(`xa-${dialect}-p2`);
    await withSession(dialect, (c) => xaPhase2({ transType: "xa", gid, branchId: "01", op: "commit" }, c, { barrierTable: TABLE[dialect].barrier }));
    await withSession(dialect, (c) => xaPhase2({ transType: "xa", gid, branchId: "02", op: "rollback" }, c, { barrierTable: TABLE[dialect].barrier }));
    expect(await barrierReasons(dialect, gid)).toEqual(["02:rollback"]);
  });
});

/** Branch `01` of `gid` as a local XA transaction adding `amount` to account `id`, prepared (a MariaDB session is closed after it). */
async function prepareAdd(dialect: Dialect, gid: string, id: number, amount: number): Promise<void> {
  const options = { barrierTable: TABLE[dialect].barrier };
  if (dialect === "mysql") {
    const conn = await mysql.createConnection({ uri: testServiceUrls().mysql });
    try {
      await prepareLocal(mysqlXa(conn), { gid, branchId: "01" }, options, (c) => c.query(`update ${TABLE.mysql.account} set balance = balance + ? where id = ?`, [amount, id]));
    } finally {
      conn.destroy();
    }
    return;
  }
  await withSession(dialect, (c) => prepareLocal(c, { gid, branchId: "01" }, options, (raw) => (raw as pg.PoolClient).query(`update ${TABLE.postgres.account} set balance = balance + $1 where id = $2`, [amount, id])));
}

// Found by the chaos harness (npm run chaos -- --store postgres --seed 5 --profile smoke, gid
// c5-250, a workflow): two executions of one workflow ran the same doXa step at once; the second
// waited on the first's barrier row, then, once the first had committed, ran its business and
// prepared the same xid again, and the workflow's commit committed it too: the effect twice.
describe.each<Dialect>(["mysql", "postgres"])("XA on %s: a branch whose barrier row exists runs no more", (dialect) => {
  it("a second run after the branch committed is refused (DUPLICATED) and changes nothing", async () => {
    const gid = gidFor(`xa-${dialect}-again`);
    const [id] = await accounts(dialect);
    await prepareAdd(dialect, gid, id, 10);
    await eventually(async () => withSession(dialect, (c) => xaPhase2({ transType: "xa", gid, branchId: "01", op: "commit" }, c, { barrierTable: TABLE[dialect].barrier })).then(() => true, () => false), 5_000, "the XA commit");
    await expect(prepareAdd(dialect, gid, id, 10)).rejects.toMatchObject({ code: "DUPLICATED" });
    expect([await balance(dialect, id), await pendingXids(dialect, gid), await barrierReasons(dialect, gid)]).toEqual([110, [], ["01:action"]]);
  });

  it("a late run after the branch's rollback is refused (DUPLICATED) and changes nothing", async () => {
    const gid = gidFor(`xa-${dialect}-late`);
    const [id] = await accounts(dialect);
    await withSession(dialect, (c) => xaPhase2({ transType: "xa", gid, branchId: "01", op: "rollback" }, c, { barrierTable: TABLE[dialect].barrier }));
    await expect(prepareAdd(dialect, gid, id, 10)).rejects.toMatchObject({ code: "DUPLICATED" });
    expect([await balance(dialect, id), await pendingXids(dialect, gid), await barrierReasons(dialect, gid)]).toEqual([100, [], ["01:rollback"]]);
  });
});

describe("XA on mysql: a prepared transaction still attached to its session", () => {
  it("is not taken for committed: phase 2 answers UNAVAILABLE until the session closes", async () => {
    const gid = gidFor("xa-attached");
    const [a] = await accounts("mysql");
    const holder = await my.getConnection();
    const xid = `${gid}-01`;
    await holder.query(`XA START '${xid}'`);
    await holder.query(`update ${TABLE.mysql.account} set balance = balance - 1 where id = ?`, [a]);
    await holder.query(`XA END '${xid}'`);
    await holder.query(`XA PREPARE '${xid}'`);
    const commit = () => withSession("mysql", (c) => xaPhase2({ transType: "xa", gid, branchId: "01", op: "commit" }, c, { barrierTable: false }));
    await expect(commit()).rejects.toMatchObject({ code: "UNAVAILABLE" });
    holder.destroy();
    holder.release();
    // The server detaches the prepared transaction shortly after the socket closes.
    await eventually(async () => commit().then(() => true, () => false), 5_000, "the XA commit");
    expect(await balance("mysql", a)).toBe(99);
  });
});

describe.each<Dialect>(["mysql", "postgres"])("Workflow doXa on %s", (dialect) => {
  /** Sessions for doXa: a dedicated connection each time (MySQL hands a prepared XA over when it closes). */
  const sessions = (): XaSessions<unknown> => (dialect === "mysql"
    ? {
      open: async () => mysqlXa(await mysql.createConnection({ uri: testServiceUrls().mysql })) as XaConnection<unknown>,
      close: async (c) => (c as mysql.Connection).end(),
    }
    : {
      open: async () => postgresXa(await pgPool.connect()) as XaConnection<unknown>,
      close: async (c) => (c as pg.PoolClient).release(),
    });
  const move = async (conn: unknown, account: number, amount: number): Promise<void> => {
    if (dialect === "mysql") {
      const c = conn as mysql.Connection;
      await c.query(`update ${TABLE.mysql.account} set balance = balance + ? where id = ?`, [amount, account]);
      const [rows] = await c.query(`select balance from ${TABLE.mysql.account} where id = ?`, [account]);
      if (Number((rows as { balance: number }[])[0]?.balance) < 0) throw new DtxFailure("insufficient balance");
      return;
    }
    const r = await (conn as pg.PoolClient).query(`update ${TABLE.postgres.account} set balance = balance + $1 where id = $2 returning balance`, [amount, account]);
    if (Number((r.rows as { balance: number }[])[0]?.balance) < 0) throw new DtxFailure("insufficient balance");
  };
  let registry: WorkflowRegistry;
  let callback: App;
  beforeAll(async () => {
    callback = await startApp((app) => {
      app.post("/resume", fastifyHandler(async (req: FastifyRequest) => {
        await registry.handleResume(req.query as Record<string, string>, req.body);
      }));
    });
    registry = new WorkflowRegistry({ client: env.http, callbackUrl: `${callback.baseUrl}/resume` });
    registry.register("xa-transfer", async (wf) => {
      const { from, to, amount } = wf.json<{ from: number; to: number; amount: number }>();
      const barrierTable = TABLE[dialect].barrier;
      await wf.doXa(sessions(), (conn) => move(conn, to, amount), { barrierTable });
      await wf.doXa(sessions(), (conn) => move(conn, from, -amount), { barrierTable });
    });
  });
  afterAll(async () => {
    await callback?.close();
  });

  it("prepares each step in its own branch and commits both when the workflow succeeds", async () => {
    const [from, to] = await accounts(dialect);
    const gid = gidFor(`wf-xa-ok-${dialect}`);
    await registry.execute("xa-transfer", gid, { from, to, amount: 30 });
    expect([await balance(dialect, from), await balance(dialect, to)]).toEqual([70, 130]);
    expect(await pendingXids(dialect, gid)).toEqual([]);
    const q = await env.http.query(gid);
    expect(q.transaction?.status).toBe("succeed");
    expect(q.branches.map((b) => `${b.branch_id}-${b.op}:${b.status}`)).toEqual(["01-action:succeed", "02-action:succeed", "02-commit:succeed", "01-commit:succeed"]);
    expect(await barrierReasons(dialect, gid)).toEqual(["01:action", "02:action"]);
  });

  // Found by the chaos harness (docs/chaos.md): `npm run chaos -- --store postgres --seed 20261206
  // --profile smoke` (and mysql, same seed), G1/G6: a workflow's doXa step prepared, then its
  // registerBranch failed (the store crashed); every later execution was stuck behind the prepared
  // xid and its barrier row, the XA transaction stayed prepared holding its row locks, and other
  // transactions on that account timed out on the lock for ever.
  it("a step an earlier execution prepared but never recorded is adopted: committed once, nothing left prepared", async () => {
    const [from, to] = await accounts(dialect);
    const gid = gidFor(`wf-xa-adopt-${dialect}`);
    // The earlier execution: step 01 (credit `to`) prepared, then it stopped before recording it.
    const conn = await sessions().open();
    try {
      await prepareLocal(conn as XaConnection<unknown>, { gid, branchId: "01" }, { barrierTable: TABLE[dialect].barrier }, (raw) => move(raw, to, 30));
    } finally {
      await sessions().close(conn.raw);
    }
    expect(await pendingXids(dialect, gid)).toEqual([`${gid}-01`]);
    await registry.execute("xa-transfer", gid, { from, to, amount: 30 });
    expect([await balance(dialect, from), await balance(dialect, to)]).toEqual([70, 130]);
    expect(await pendingXids(dialect, gid)).toEqual([]);
    expect((await env.http.query(gid)).transaction?.status).toBe("succeed");
  }, 30_000);

  it("a FAILURE in the second step rolls the first back (XA ROLLBACK) and leaves no prepared transaction", async () => {
    const [from, to] = await accounts(dialect);
    const gid = gidFor(`wf-xa-fail-${dialect}`);
    await expect(registry.execute("xa-transfer", gid, { from, to, amount: 130 })).rejects.toMatchObject({ code: "FAILURE", message: "insufficient balance" });
    expect([await balance(dialect, from), await balance(dialect, to)]).toEqual([100, 100]);
    expect(await pendingXids(dialect, gid)).toEqual([]);
    const q = await env.http.query(gid);
    expect(q.transaction?.status).toBe("failed");
    expect(q.branches.map((b) => `${b.branch_id}-${b.op}:${b.status}`)).toEqual(["01-action:succeed", "02-action:failed", "01-rollback:succeed"]);
    // 01's action row went with its rolled-back transaction; its rollback row guards against a late prepare.
    expect(await barrierReasons(dialect, gid)).toEqual(["01:rollback"]);
  });
});
