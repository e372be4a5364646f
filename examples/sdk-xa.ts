/**
 * XA with the SDK on MariaDB/MySQL: `npm start`, then `npx tsx examples/sdk-xa.ts`
 * (MYSQL_URL defaults to mysql://root@127.0.0.1:3306/dtx_test). The participant's one URL runs the
 * local XA transaction (op=action) and the coordinator's phase 2 (op=commit / op=rollback).
 */
import mysql from "mysql2/promise";
import type { FastifyRequest } from "fastify";
import { DtxClient, branchInfoFromQuery, fastifyHandler, mysqlXa, xaGlobalTransaction, xaLocalTransaction } from "../sdk/src/index.ts";
import { DTX_SERVER, startDemoParticipant } from "./sdk-participant.ts";

const MYSQL_URL = process.env["MYSQL_URL"] ?? "mysql://root@127.0.0.1:3306/dtx_test";
const setup = await mysql.createConnection({ uri: MYSQL_URL });
await setup.query("create table if not exists example_account(id int primary key, balance int not null)");
await setup.query("create table if not exists example_barrier(id bigint primary key auto_increment, trans_type varchar(45), gid varchar(128), branch_id varchar(128), op varchar(45), barrier_id varchar(45), reason varchar(45), unique key(gid, branch_id, op, barrier_id))");
await setup.query("insert into example_account values (1, 100), (2, 100) on duplicate key update balance = 100");

const client = new DtxClient({ server: DTX_SERVER });
const p = await startDemoParticipant((app) => {
  app.post("/xa/adjust", fastifyHandler(async (req: FastifyRequest) => {
    const { id, amount } = (req.body ?? {}) as { id: number; amount: number };
    // A dedicated session: after XA PREPARE the SDK closes it, handing the transaction to the server.
    const conn = await mysql.createConnection({ uri: MYSQL_URL });
    try {
      await xaLocalTransaction(branchInfoFromQuery(req.query as Record<string, string>), mysqlXa(conn), async (c) => {
        await c.query("update example_account set balance = balance + ? where id = ?", [amount, id]);
      }, { barrierTable: "example_barrier" });
    } finally {
      conn.destroy();
    }
  }));
});
try {
  const rm = p.api.replace(/\/api$/, "/xa/adjust");
  await xaGlobalTransaction(client, undefined, async (xa) => {
    await xa.callBranch({ id: 1, amount: -30 }, rm);
    await xa.callBranch({ id: 2, amount: 30 }, rm);
  }, { waitResult: true });
  const [rows] = await setup.query("select id, balance from example_account order by id");
  console.log("xa: committed", rows);
} finally {
  await p.close();
  await client.close();
  await setup.end();
}
