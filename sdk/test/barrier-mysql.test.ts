// The SQL barrier on the real MariaDB/MySQL (scripts/services.sh): mysql2/promise, and Kysely on it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import mysql from "mysql2/promise";
import { Kysely, MysqlDialect } from "kysely";
import { BranchBarrier, createBarrierTable, doAndSubmitDB, getBarrierTableName, setBarrierTableName } from "../src/barrier/index.ts";
import { testServiceUrls, unreachableMessage } from "../../test/helpers/services.ts";
import { RUN, barrierFuzz, barrierScenarios, fuzzReport, info, kyselyStore, mysqlBusiness, mysqlStore, mysqlUrlInDatabase, raceReport, recordingMsg, setupMysqlTables, uniqueGid } from "./barrier-helpers.ts";
import type { KyselyDb, StoreUnderTest } from "./barrier-helpers.ts";

const serverUrl = testServiceUrls().mysql;
/**
 * This file's own tables: database AREA (the default barrier table, AREA.barrier, and the
 * accounts and effects: the connections' database) and AREA_lean, dropped at the end. Other suites use dtm's layout in their own tables: a shared
 * dtm_barrier.barrier made one of them fail on a fresh machine.
 */
const AREA = `dtx_bmy_${RUN}`;
const url = mysqlUrlInDatabase(serverUrl, AREA);
let pool: mysql.Pool;
let conns: [mysql.Connection, mysql.Connection];
let kysely: Kysely<KyselyDb>;
let store: StoreUnderTest;
let kstore: StoreUnderTest;

beforeAll(async () => {
  try {
    const admin = await mysql.createConnection({ uri: serverUrl });
    await admin.query(`create database ${AREA} character set utf8mb4`);
    await admin.end();
  } catch (cause) {
    throw new Error(unreachableMessage("MariaDB/MySQL", serverUrl, cause), { cause });
  }
  pool = mysql.createPool({ uri: url, connectionLimit: 8 });
  conns = [await mysql.createConnection({ uri: url }), await mysql.createConnection({ uri: url })];
  for (const c of conns) c.on("error", () => {});
  setBarrierTableName(`${AREA}.barrier`);
  await createBarrierTable("mysql", pool);
  await setupMysqlTables(pool);
  kysely = new Kysely<KyselyDb>({ dialect: new MysqlDialect({ pool: mysql.createPool({ uri: url, connectionLimit: 4 }).pool }) });
  store = mysqlStore(pool, conns, `${AREA}.barrier`);
  kstore = kyselyStore("kysely-mysql", kysely, store);
});

afterAll(async () => {
  if (fuzzReport.length > 0) process.stdout.write(`barrier fuzz: ${JSON.stringify(fuzzReport)}\n`);
  if (raceReport.length > 0) process.stdout.write(`barrier races: ${JSON.stringify(raceReport)}\n`);
  await kysely?.destroy();
  await Promise.allSettled((conns ?? []).map((c) => c.end()));
  for (const db of [AREA, `${AREA}_lean`]) await pool?.query(`drop database if exists ${db}`).catch(() => undefined);
  await pool?.end();
});

describe("barrier on MariaDB/MySQL (mysql2)", () => {
  barrierScenarios(() => store);
  barrierFuzz(() => store, 1000);

  it("createBarrierTable is idempotent and safe to run concurrently", async () => {
    await Promise.all([createBarrierTable("mysql", pool), createBarrierTable("mysql", pool), createBarrierTable("mysql", conns[0])]);
    const [rows] = await pool.query<mysql.RowDataPacket[]>(
      `select index_name, group_concat(column_name order by seq_in_index) as cols from information_schema.statistics where table_schema='${AREA}' and table_name='barrier' and non_unique=0 group by index_name order by index_name`,
    );
    // ours: the key is the primary key (the table is this file's own, so never dtm's layout)
    const keys = rows.map((r) => `${String(r["index_name"])}: ${String(r["cols"])}`).sort();
    expect(keys).toEqual(["PRIMARY: gid,branch_id,op,barrier_id"]);
  });

  it("call() refuses a pool", async () => {
    const bb = new BranchBarrier(info(uniqueGid("my-pool"), "try"));
    await expect(bb.call(pool as unknown as mysql.Connection, async () => undefined)).rejects.toMatchObject({ code: "BARRIER_NOT_IN_TRANSACTION" });
  });

  it("doAndSubmitDB with a mysql2 pool: submit on success, abort after a rolled-back local transaction", async () => {
    const { calls, msg } = recordingMsg();
    const gid = uniqueGid("my-das");
    await store.createAccount(`${gid}-a`, 100);
    await doAndSubmitDB(msg(gid), "qp", pool, (c) => mysqlBusiness(c, info(gid, "msg", "00", "msg"), `${gid}-a`, -10));
    const gid2 = uniqueGid("my-das-err");
    await expect(
      doAndSubmitDB(msg(gid2), "qp", pool, async (c) => {
        await mysqlBusiness(c, info(gid2, "msg", "00", "msg"), `${gid}-a`, -10);
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(calls).toEqual(["prepare", "submit", "prepare", "abort"]);
    expect(await store.balance(`${gid}-a`)).toBe(90);
  });
});

describe("barrier on MariaDB/MySQL, the table createBarrierTable makes (the key as primary key, no id)", () => {
  const tableName = `${AREA}_lean.barrier`;
  let lean: StoreUnderTest;
  let before: string;
  beforeAll(async () => {
    await pool.query(`drop database if exists ${AREA}_lean`);
    await createBarrierTable("mysql", pool, { tableName });
    before = getBarrierTableName();
    setBarrierTableName(tableName); // the scenarios build their barriers with the default table
    lean = { ...mysqlStore(pool, conns, tableName), name: "mysql-lean" };
  });
  afterAll(() => setBarrierTableName(before));

  it("has dtm's columns but no id; rows are clustered on (gid, branch_id, op, barrier_id); create_time is indexed", async () => {
    const [cols] = await pool.query<mysql.RowDataPacket[]>(`select column_name as c from information_schema.columns where table_schema = '${AREA}_lean' and table_name = 'barrier' order by ordinal_position`);
    expect(cols.map((r) => String(r["c"]))).toEqual(["trans_type", "gid", "branch_id", "op", "barrier_id", "reason", "create_time", "update_time"]);
    const [idx] = await pool.query<mysql.RowDataPacket[]>(
      `select index_name as i, group_concat(column_name order by seq_in_index) as cols from information_schema.statistics where table_schema = '${AREA}_lean' and table_name = 'barrier' group by index_name order by index_name`,
    );
    expect(idx.map((r) => `${String(r["i"])}: ${String(r["cols"])}`)).toEqual(["create_time: create_time", "PRIMARY: gid,branch_id,op,barrier_id"]);
  });

  it("compares the key byte for byte (utf8mb4_bin): gids differing only in case are two transactions", async () => {
    const [coll] = await pool.query<mysql.RowDataPacket[]>(
      `select column_name as c, collation_name as k from information_schema.columns where table_schema = '${AREA}_lean' and table_name = 'barrier' and column_name in ('gid', 'branch_id', 'op', 'barrier_id') order by ordinal_position`,
    );
    expect(coll.map((r) => `${String(r["c"])}: ${String(r["k"])}`)).toEqual(["gid", "branch_id", "op", "barrier_id"].map((c) => `${c}: utf8mb4_bin`));
    const gid = uniqueGid("my-Case");
    for (const g of [gid, gid.toLowerCase()]) {
      expect((await new BranchBarrier(info(g, "action", "01", "saga"), { tableName }).callWithMysql(pool, async () => g)).executed).toBe(true);
    }
    const [rows] = await pool.query<mysql.RowDataPacket[]>(`select gid from ${AREA}_lean.barrier where lower(gid) = lower(?)`, [gid]);
    expect(rows.map((r) => String(r["gid"])).sort()).toEqual([gid, gid.toLowerCase()].sort());
  });

  barrierScenarios(() => lean);
});

describe("barrier on MariaDB/MySQL (Kysely)", () => {
  barrierScenarios(() => kstore);
});
