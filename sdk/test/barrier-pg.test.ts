// The SQL barrier on the real PostgreSQL (scripts/services.sh): pg, and Kysely on pg.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { Kysely, PostgresDialect } from "kysely";
import { BranchBarrier, createBarrierTable, doAndSubmit, doAndSubmitDB, getBarrierTableName, isBarrierFailure, setBarrierTableName } from "../src/barrier/index.ts";
import type { DoAndSubmitMsg, PgQueryable } from "../src/barrier/index.ts";
import { testServiceUrls, unreachableMessage } from "../../test/helpers/services.ts";
import { PG_ACCOUNTS, RUN, barrierFuzz, barrierScenarios, fuzzReport, info, kyselyStore, pgBusiness, pgStore, pgUrlInSchema, raceReport, setupPgTables, uniqueGid } from "./barrier-helpers.ts";
import type { KyselyDb, StoreUnderTest } from "./barrier-helpers.ts";

const serverUrl = testServiceUrls().pg;
/**
 * This file's own tables: schema AREA (the default barrier table, AREA.barrier, and the accounts
 * and effects: the connections' search_path) and AREA_lean, AREA_dtm, AREA_custom, AREA_prep
 * (barrier tables), all dropped at the end. Other suites use other layouts in
 * other tables: a shared dtm_barrier.barrier made one of them fail on a fresh machine.
 */
const AREA = `dtx_bpg_${RUN}`;
const url = pgUrlInSchema(serverUrl, AREA);
const AREA_SCHEMAS = [AREA, `${AREA}_lean`, `${AREA}_dtm`, `${AREA}_custom`, `${AREA}_prep`];
let pool: pg.Pool;
let clients: [pg.Client, pg.Client];
let kysely: Kysely<KyselyDb>;
let store: StoreUnderTest;
let kstore: StoreUnderTest;

beforeAll(async () => {
  pool = new pg.Pool({ connectionString: url, max: 8 });
  pool.on("error", () => {});
  try {
    await pool.query("select 1");
  } catch (cause) {
    throw new Error(unreachableMessage("PostgreSQL", serverUrl, cause), { cause });
  }
  const a = new pg.Client({ connectionString: url });
  const b = new pg.Client({ connectionString: url });
  for (const c of [a, b]) c.on("error", () => {});
  await Promise.all([a.connect(), b.connect()]);
  clients = [a, b];
  setBarrierTableName(`${AREA}.barrier`);
  await createBarrierTable("postgres", pool);
  await setupPgTables(pool);
  kysely = new Kysely<KyselyDb>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 4 }) }) });
  store = pgStore(pool, clients, `${AREA}.barrier`);
  kstore = kyselyStore("kysely-pg", kysely, store);
});

afterAll(async () => {
  if (fuzzReport.length > 0) process.stdout.write(`barrier fuzz: ${JSON.stringify(fuzzReport)}\n`);
  if (raceReport.length > 0) process.stdout.write(`barrier races: ${JSON.stringify(raceReport)}\n`);
  await kysely?.destroy();
  await Promise.allSettled((clients ?? []).map((c) => c.end()));
  for (const schema of AREA_SCHEMAS) await pool?.query(`drop schema if exists ${schema} cascade`).catch(() => undefined);
  await pool?.end();
});

describe("barrier on Postgres (pg)", () => {
  barrierScenarios(() => store);
  barrierFuzz(() => store, 1000);

  it("createBarrierTable is idempotent and safe to run concurrently", async () => {
    await Promise.all([createBarrierTable("postgres", pool), createBarrierTable("postgres", pool), createBarrierTable("postgres", clients[0])]);
    // ours (the primary key), by dtm's name
    const r = await pool.query<{ conname: string }>(`select conname from pg_constraint where conrelid = '${AREA}.barrier'::regclass and contype in ('u', 'p') and conname = 'uniq_barrier'`);
    expect(r.rows.map((x) => x.conname)).toEqual(["uniq_barrier"]);
  });

  it("uses a configured table name", async () => {
    const tableName = `${AREA}_custom.barrier_custom`;
    await pool.query(`drop schema if exists ${AREA}_custom cascade`);
    await createBarrierTable("postgres", pool, { tableName });
    const s = pgStore(pool, clients, tableName);
    const gid = uniqueGid("pg-custom");
    await s.createAccount(`${gid}-a`, 10);
    const bb = new BranchBarrier(info(gid, "cancel"), { tableName });
    expect((await s.adjust(bb, `${gid}-a`, 1)).executed).toBe(false);
    expect((await s.barrierRows(gid)).map((r) => r.op)).toEqual(["cancel", "try"]);
    expect((await pool.query(`select 1 from ${AREA}.barrier where gid=$1`, [gid])).rowCount).toBe(0);
  });

  it("values outside [A-Za-z0-9_.:-] go as parameters (no batching), quotes and all", async () => {
    const gid = `pg-quote-'; drop table ${PG_ACCOUNTS}; -- ${uniqueGid("x")}`;
    const acct = uniqueGid("pg-quote-acct");
    await store.createAccount(acct, 10);
    const tryInfo = { transType: "tcc", gid, branchId: "01", op: "try" };
    expect((await new BranchBarrier(tryInfo).callWithPg(pool, (c) => pgBusiness(c, tryInfo, acct, -1))).executed).toBe(true);
    expect((await new BranchBarrier(tryInfo).callWithPg(pool, (c) => pgBusiness(c, tryInfo, acct, -1))).executed).toBe(false);
    expect(await store.balance(acct)).toBe(9);
    expect(await store.barrierRows(gid)).toEqual([{ branch_id: "01", op: "try", barrier_id: "01", reason: "try" }]);
    // and with batching off, safe values take the same path
    const g2 = uniqueGid("pg-nobatch");
    const bb = new BranchBarrier(info(g2, "cancel"), { pgBatchBegin: false });
    expect(await bb.callWithPg(pool, async () => "x")).toEqual({ executed: false, skipped: "null_compensation", barrierId: "01" });
  });

  it("call() refuses a pool: its statements could run on different connections", async () => {
    const bb = new BranchBarrier(info(uniqueGid("pg-pool"), "try"));
    await expect(bb.call(pool, async () => undefined)).rejects.toMatchObject({ code: "BARRIER_NOT_IN_TRANSACTION" });
  });

  it("call() in a caller-managed transaction: the caller commits or rolls back", async () => {
    const gid = uniqueGid("pg-managed");
    const acct = `${gid}-a`;
    await store.createAccount(acct, 50);
    const client = await pool.connect();
    try {
      await client.query("BEGIN");
      const r = await new BranchBarrier(info(gid, "try")).call(client, (c) => pgBusiness(c, info(gid, "try"), acct, -20));
      expect(r.executed).toBe(true);
      await client.query("ROLLBACK");
      expect(await store.balance(acct)).toBe(50);
      expect(await store.barrierRows(gid)).toEqual([]);
      await client.query("BEGIN");
      await new BranchBarrier(info(gid, "try")).call(client, (c) => pgBusiness(c, info(gid, "try"), acct, -20));
      await client.query("COMMIT");
      expect(await store.balance(acct)).toBe(30);
    } finally {
      client.release();
    }
  });
});

describe("barrier on Postgres (Kysely)", () => {
  barrierScenarios(() => kstore);

  it("call() inside db.transaction() and refuses a non-transaction Kysely", async () => {
    const gid = uniqueGid("kysely-pg-call");
    await kstore.createAccount(`${gid}-a`, 5);
    const r = await kysely.transaction().execute((trx) => new BranchBarrier(info(gid, "cancel")).call(trx, async () => "never"));
    expect(r).toEqual({ executed: false, skipped: "null_compensation", barrierId: "01" });
    await expect(new BranchBarrier(info(gid, "try")).call(kysely, async () => undefined)).rejects.toMatchObject({ code: "BARRIER_NOT_IN_TRANSACTION" });
  });
});

/**
 * The scenarios against another barrier table: the default table name is switched for the block
 * (the scenarios build their barriers with the default).
 */
function scenariosOnTable(title: string, name: string, tableName: string, create: () => Promise<void>, more: () => void): void {
  describe(title, () => {
    let tableStore: StoreUnderTest;
    let before: string;
    beforeAll(async () => {
      await create();
      before = getBarrierTableName();
      setBarrierTableName(tableName);
      // (the name goes into the gids: [A-Za-z0-9_.:-] keeps them on the batched, prepared path)
      tableStore = { ...pgStore(pool, clients, tableName), name };
    });
    afterAll(() => setBarrierTableName(before));
    barrierScenarios(() => tableStore);
    more();
  });
}

scenariosOnTable(
  "barrier on Postgres, the table createBarrierTable makes (the key as primary key, no id)",
  "postgres-lean",
  `${AREA}_lean.barrier`,
  async () => {
    await pool.query(`drop schema if exists ${AREA}_lean cascade`);
    await createBarrierTable("postgres", pool, { tableName: `${AREA}_lean.barrier` });
  },
  () => {
    it("has dtm's columns but no id and no sequence; the primary key is (gid, branch_id, op, barrier_id), named uniq_barrier", async () => {
      const cols = await pool.query<{ column_name: string }>(`select column_name from information_schema.columns where table_schema = '${AREA}_lean' and table_name = 'barrier' order by ordinal_position`);
      expect(cols.rows.map((r) => r.column_name)).toEqual(["trans_type", "gid", "branch_id", "op", "barrier_id", "reason", "create_time", "update_time"]);
      const keys = await pool.query<{ conname: string; contype: string; cols: string }>(
        `select conname, contype, (select string_agg(attname, ',' order by array_position(conkey, attnum)) from pg_attribute where attrelid = conrelid and attnum = any(conkey)) as cols from pg_constraint where conrelid = '${AREA}_lean.barrier'::regclass`,
      );
      expect(keys.rows).toEqual([{ conname: "uniq_barrier", contype: "p", cols: "gid,branch_id,op,barrier_id" }]);
      const indexes = await pool.query(`select indexname from pg_indexes where schemaname = '${AREA}_lean'`);
      expect(indexes.rowCount).toBe(1);
      const seqs = await pool.query(`select 1 from pg_class where relkind = 'S' and relnamespace = '${AREA}_lean'::regnamespace`);
      expect(seqs.rowCount).toBe(0);
    });

    it("compares the key byte for byte: its columns are collate \"C\", and gids differing only in case are two transactions", async () => {
      const coll = await pool.query<{ attname: string; collname: string }>(
        `select a.attname, c.collname from pg_attribute a join pg_collation c on c.oid = a.attcollation where a.attrelid = '${AREA}_lean.barrier'::regclass and a.attname in ('gid', 'branch_id', 'op', 'barrier_id') order by a.attnum`,
      );
      expect(coll.rows).toEqual(["gid", "branch_id", "op", "barrier_id"].map((attname) => ({ attname, collname: "C" })));
      const gid = uniqueGid("pg-Case");
      for (const g of [gid, gid.toLowerCase()]) {
        expect((await new BranchBarrier(info(g, "action", "01", "saga")).callWithPg(pool, async () => g)).executed).toBe(true);
      }
      const rows = await pool.query(`select gid from ${AREA}_lean.barrier where lower(gid) = lower($1)`, [gid]);
      expect(rows.rows.map((r: { gid: string }) => r.gid).sort()).toEqual([gid, gid.toLowerCase()].sort());
    });

    it("dtm's own statement (on conflict ON CONSTRAINT uniq_barrier) works on it", async () => {
      const gid = uniqueGid("pg-dtm-stmt");
      const sql = `insert into ${AREA}_lean.barrier(trans_type, gid, branch_id, op, barrier_id, reason) values($1,$2,$3,$4,$5,$6) on conflict ON CONSTRAINT uniq_barrier do nothing`;
      expect((await pool.query(sql, ["saga", gid, "01", "action", "01", "action"])).rowCount).toBe(1);
      expect((await pool.query(sql, ["saga", gid, "01", "action", "01", "action"])).rowCount).toBe(0);
      // our compensation finds the action's row: not a null compensation, it runs
      expect((await new BranchBarrier(info(gid, "compensate", "01", "saga")).callWithPg(pool, async () => "ran")).executed).toBe(true);
    });
  },
);

scenariosOnTable(
  "barrier on Postgres, a table made by dtm's DDL (serial id + unique key)",
  "postgres-dtm",
  `${AREA}_dtm.barrier`,
  async () => {
    // dtm's sqls/dtmcli.barrier.postgres.sql, in another schema
    await pool.query(`drop schema if exists ${AREA}_dtm cascade`);
    await pool.query(`create schema ${AREA}_dtm`);
    await pool.query(`create sequence if not exists ${AREA}_dtm.barrier_seq`);
    await pool.query(`create table if not exists ${AREA}_dtm.barrier(
      id bigint NOT NULL DEFAULT NEXTVAL ('${AREA}_dtm.barrier_seq'),
      trans_type varchar(45) default '', gid varchar(128) default '', branch_id varchar(128) default '',
      op varchar(45) default '', barrier_id varchar(45) default '', reason varchar(45) default '',
      create_time timestamp(0) with time zone DEFAULT NULL, update_time timestamp(0) with time zone DEFAULT NULL,
      PRIMARY KEY(id), CONSTRAINT uniq_barrier unique(gid, branch_id, op, barrier_id))`);
  },
  () => {
    it("fills dtm's id from its sequence", async () => {
      const gid = uniqueGid("pg-dtm-id");
      await new BranchBarrier(info(gid, "try")).callWithPg(pool, async () => undefined);
      const r = await pool.query<{ id: string }>(`select id from ${AREA}_dtm.barrier where gid = $1`, [gid]);
      expect(Number(r.rows[0]?.id)).toBeGreaterThan(0);
    });
  },
);

describe("callWithPg: the barrier INSERT as a prepared statement", () => {
  let conn: pg.Client;
  /** A client object that records the text of every query it sends. */
  const recording = (): PgQueryable & { sent: string[] } => {
    const sent: string[] = [];
    return { sent, query: (text: string, values?: unknown[]) => (sent.push(text), conn.query(text, values)) as never };
  };
  const prepared = async (): Promise<string[]> => (await conn.query<{ name: string }>("select name from pg_prepared_statements order by name")).rows.map((r) => r.name);
  /** The statement name as S, PREPARE's body and EXECUTE's values left out. */
  const shapes = (sent: string[]): string[] =>
    sent.map((t) =>
      t
        .replace(/dtx_barrier_[0-9a-f]{20}/g, "S")
        .replace(/^PREPARE S\(text(,text){5}\) AS insert into [^;]* do nothing;/, "PREPARE S;")
        .replace(/EXECUTE S\('[^)]*'\)/g, "EXECUTE S(..)"),
    );

  beforeAll(async () => {
    conn = new pg.Client({ connectionString: url });
    conn.on("error", () => {});
    await conn.connect();
  });
  afterAll(async () => {
    await conn?.end();
  });

  it("sends PREPARE with the first batch on a client, then BEGIN;EXECUTE; a compensation executes it twice", async () => {
    const gid = uniqueGid("pg-prep");
    const acct = `${gid}-a`;
    await store.createAccount(acct, 10);
    const c = recording();
    const t = info(gid, "try");
    expect((await new BranchBarrier(t).callWithPg(c, (x) => pgBusiness(x, t, acct, -3))).executed).toBe(true);
    expect(shapes(c.sent)).toEqual(["PREPARE S;BEGIN;EXECUTE S(..)", expect.stringMatching(/^update /), expect.stringMatching(/^insert into /), "COMMIT"]);
    expect(c.sent[0]).toContain(`EXECUTE ${(await prepared()).find((n) => n.startsWith("dtx_barrier_"))}('tcc','${gid}','01','try','01','try')`);
    c.sent.length = 0;
    const k = info(gid, "cancel");
    expect((await new BranchBarrier(k).callWithPg(c, (x) => pgBusiness(x, k, acct, 3))).executed).toBe(true);
    expect(shapes(c.sent)[0]).toBe("BEGIN;EXECUTE S(..);EXECUTE S(..)");
    expect(await store.balance(acct)).toBe(10);
    expect(await store.barrierRows(gid)).toEqual([
      { branch_id: "01", op: "cancel", barrier_id: "01", reason: "cancel" },
      { branch_id: "01", op: "try", barrier_id: "01", reason: "try" },
    ]);
    expect((await prepared()).filter((n) => n.startsWith("dtx_barrier_"))).toHaveLength(1);
    // another table: another statement on the same connection
    await createBarrierTable("postgres", pool, { tableName: `${AREA}_prep.barrier` });
    await new BranchBarrier(info(gid, "try"), { tableName: `${AREA}_prep.barrier` }).callWithPg(c, async () => undefined);
    expect((await prepared()).filter((n) => n.startsWith("dtx_barrier_"))).toHaveLength(2);
  });

  it("a new client object on a connection that has the statement: PREPARE fails (42P05) before BEGIN, then BEGIN;EXECUTE", async () => {
    const gid = uniqueGid("pg-prep-again");
    const acct = `${gid}-a`;
    await store.createAccount(acct, 10);
    await new BranchBarrier(info(uniqueGid("pg-prep-warm"), "try")).callWithPg(recording(), async () => undefined); // the connection has it now
    const t = info(gid, "try");
    const c = recording();
    expect((await new BranchBarrier(t).callWithPg(c, (x) => pgBusiness(x, t, acct, -3))).executed).toBe(true);
    expect(shapes(c.sent).slice(0, 2)).toEqual(["PREPARE S;BEGIN;EXECUTE S(..)", "BEGIN;EXECUTE S(..)"]);
    const again = recording();
    expect(await new BranchBarrier(t).callWithPg(again, (x) => pgBusiness(x, t, acct, -3))).toEqual({ executed: false, skipped: "duplicate_or_hanging", barrierId: "01" });
    expect(await store.balance(acct)).toBe(7);
    expect(await store.effects(gid)).toEqual(["try"]);
  });

  it("a connection that lost the statement (DEALLOCATE ALL): rolls back, plain INSERTs from then on, same outcome", async () => {
    const gid = uniqueGid("pg-prep-lost");
    const acct = `${gid}-a`;
    await store.createAccount(acct, 10);
    const c = recording();
    await new BranchBarrier(info(uniqueGid("pg-prep-warm"), "try")).callWithPg(c, async () => undefined);
    await conn.query("DEALLOCATE ALL");
    c.sent.length = 0;
    const t = info(gid, "try");
    expect((await new BranchBarrier(t).callWithPg(c, (x) => pgBusiness(x, t, acct, -4))).executed).toBe(true);
    expect(shapes(c.sent)[0]).toBe("BEGIN;EXECUTE S(..)");
    expect(c.sent[1]).toBe("ROLLBACK");
    expect(c.sent[2]).toMatch(new RegExp(`^BEGIN;insert into ${AREA}\\.barrier\\(`));
    expect(c.sent.at(-1)).toBe("COMMIT");
    c.sent.length = 0;
    expect((await new BranchBarrier(t).callWithPg(c, (x) => pgBusiness(x, t, acct, -4))).executed).toBe(false);
    expect(c.sent[0]).toMatch(/^BEGIN;insert into/);
    expect(await store.balance(acct)).toBe(6);
    expect(await prepared()).toEqual([]);
    expect((await conn.query<{ now: boolean }>("select now() = statement_timestamp() as now")).rows[0]?.now).toBe(true); // no transaction left open
  });

  it("{ pgPrepare: false } sends plain INSERTs with BEGIN", async () => {
    const c = recording();
    await new BranchBarrier(info(uniqueGid("pg-noprep"), "cancel"), { pgPrepare: false }).callWithPg(c, async () => undefined);
    expect(c.sent[0]).toMatch(new RegExp(`^BEGIN;insert into ${AREA}\\.barrier\\(.*;insert into ${AREA}\\.barrier\\(`));
  });
});

/** A msg that records what DoAndSubmit asked of it. */
function fakeMsg(gid: string): DoAndSubmitMsg & { calls: string[] } {
  const calls: string[] = [];
  return {
    gid,
    calls,
    prepare: async (qp) => void calls.push(`prepare ${qp}`),
    submit: async () => void calls.push("submit"),
    abort: async () => void calls.push("abort"),
  };
}

describe("doAndSubmitDB on Postgres", () => {
  it("success: prepare, local transaction with the msg barrier row, submit", async () => {
    const gid = uniqueGid("pg-das-ok");
    const acct = `${gid}-a`;
    await store.createAccount(acct, 100);
    const msg = fakeMsg(gid);
    const value = await doAndSubmitDB(msg, "http://rm/qp", pool, async (c) => {
      await pgBusiness(c, info(gid, "msg", "00", "msg"), acct, -10);
      return "done";
    });
    expect(value).toBe("done");
    expect(msg.calls).toEqual(["prepare http://rm/qp", "submit"]);
    expect(await store.balance(acct)).toBe(90);
    expect(await store.barrierRows(gid)).toEqual([{ branch_id: "00", op: "msg", barrier_id: "01", reason: "msg" }]);
    // A second run for the gid is DUPLICATED; as dtm's DoAndSubmit, the check-back then says committed.
    const again = fakeMsg(gid);
    await expect(doAndSubmitDB(again, "http://rm/qp", pool, (c) => pgBusiness(c, info(gid, "msg"), acct, -10))).rejects.toMatchObject({ code: "DUPLICATED" });
    expect(again.calls).toEqual(["prepare http://rm/qp", "submit"]);
    expect(await store.balance(acct)).toBe(90);
  });

  it("FAILURE in the business: abort, nothing committed", async () => {
    const gid = uniqueGid("pg-das-fail");
    const acct = `${gid}-a`;
    await store.createAccount(acct, 5);
    const msg = fakeMsg(gid);
    const err: unknown = await doAndSubmitDB(msg, "qp", pool, (c) => pgBusiness(c, info(gid, "msg"), acct, -10)).catch((e: unknown) => e);
    expect(isBarrierFailure(err)).toBe(true);
    expect(msg.calls).toEqual(["prepare qp", "abort"]);
    expect(await store.barrierRows(gid)).toEqual([]);
  });

  it("another error in the business: checks back itself, finds it rolled back, aborts", async () => {
    const gid = uniqueGid("pg-das-err");
    const acct = `${gid}-a`;
    await store.createAccount(acct, 100);
    const msg = fakeMsg(gid);
    await expect(
      doAndSubmitDB(msg, "qp", pool, async (c) => {
        await pgBusiness(c, info(gid, "msg"), acct, -10);
        throw new Error("lost the connection");
      }),
    ).rejects.toThrow("lost the connection");
    expect(msg.calls).toEqual(["prepare qp", "abort"]);
    expect(await store.balance(acct)).toBe(100);
    // the check-back left the rollback marker: the local transaction can never commit now
    expect(await store.barrierRows(gid)).toEqual([{ branch_id: "00", op: "msg", barrier_id: "01", reason: "rollback" }]);
  });

  it("an error after the local commit: checks back, finds it committed, submits", async () => {
    const gid = uniqueGid("pg-das-aftercommit");
    const acct = `${gid}-a`;
    await store.createAccount(acct, 100);
    const msg = fakeMsg(gid);
    await expect(
      doAndSubmit(
        msg,
        "qp",
        async (bb) => {
          await bb.callWithPg(pool, (c) => pgBusiness(c, bb, acct, -10));
          throw new Error("the commit's answer was lost");
        },
        (bb) => bb.queryPrepared(pool),
      ),
    ).rejects.toThrow("the commit's answer was lost");
    expect(msg.calls).toEqual(["prepare qp", "submit"]);
    expect(await store.balance(acct)).toBe(90);
  });

  it("when the check-back itself fails: neither submit nor abort (the coordinator decides later)", async () => {
    const gid = uniqueGid("pg-das-unknown");
    const msg = fakeMsg(gid);
    await expect(
      doAndSubmit(
        msg,
        "qp",
        async () => {
          throw new Error("busi down");
        },
        async () => {
          throw new Error("db down");
        },
      ),
    ).rejects.toThrow("busi down");
    expect(msg.calls).toEqual(["prepare qp"]);
  });
});

