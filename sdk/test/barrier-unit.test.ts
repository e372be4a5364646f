// The barrier's parts that need no database: branch info, ids, table names, DDL, the algorithm's
// statements (through a recording BarrierSqlTx), and the driver typings.
import { readFileSync } from "node:fs";
import { describe, expect, expectTypeOf, it } from "vitest";
import { Metadata } from "@grpc/grpc-js";
import type pg from "pg";
import type mysql from "mysql2/promise";
import type { Kysely, Transaction } from "kysely";
import type { ClientSession, MongoClient } from "mongodb";
import {
  BarrierError,
  BranchBarrier,
  barrierFailure,
  barrierTableDdl,
  doAndSubmitDB,
  getBarrierTableName,
  isBarrierDuplicated,
  isBarrierFailure,
  setBarrierTableName,
} from "../src/barrier/index.ts";
import type { BarrierResult, BarrierSqlTx, PgPoolClientLike } from "../src/barrier/index.ts";

const QUERY = { trans_type: "tcc", gid: "g1", branch_id: "01", op: "try" };

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(BarrierError);
    return (err as BarrierError).code;
  }
  return undefined;
}

describe("BranchBarrier.fromQuery", () => {
  it("reads trans_type, gid, branch_id and op", () => {
    const bb = BranchBarrier.fromQuery({ ...QUERY, dtm: "http://x" });
    expect({ ...bb }).toMatchObject({ transType: "tcc", gid: "g1", branchId: "01", op: "try", tableName: "dtm_barrier.barrier" });
    expect(BranchBarrier.fromQuery(new URLSearchParams(QUERY)).gid).toBe("g1");
    expect(BranchBarrier.fromQuery({ ...QUERY, gid: ["g2"] }).gid).toBe("g2");
  });

  it("refuses a missing or empty field with BARRIER_MISSING_PARAM, naming it", () => {
    for (const key of Object.keys(QUERY)) {
      const without: Record<string, string> = { ...QUERY };
      delete without[key];
      expect(codeOf(() => BranchBarrier.fromQuery(without))).toBe("BARRIER_MISSING_PARAM");
      expect(codeOf(() => BranchBarrier.fromQuery({ ...QUERY, [key]: "" }))).toBe("BARRIER_MISSING_PARAM");
      expect(() => BranchBarrier.fromQuery(without)).toThrow(key);
    }
    const err = (() => {
      try {
        BranchBarrier.fromQuery({});
      } catch (e) {
        return e as BarrierError;
      }
      return undefined;
    })();
    expect(err?.httpStatus).toBe(400);
    expect(err?.grpcCode).toBe(3);
  });

  it("refuses repeated, non-string and over-long values with BARRIER_INVALID_PARAM", () => {
    expect(codeOf(() => BranchBarrier.fromQuery({ ...QUERY, gid: ["a", "b"] }))).toBe("BARRIER_INVALID_PARAM");
    expect(codeOf(() => BranchBarrier.fromQuery(new URLSearchParams("trans_type=saga&gid=a&gid=b&branch_id=01&op=action")))).toBe("BARRIER_INVALID_PARAM");
    expect(codeOf(() => BranchBarrier.fromQuery({ ...QUERY, op: 1 }))).toBe("BARRIER_INVALID_PARAM");
    expect(codeOf(() => BranchBarrier.fromQuery({ ...QUERY, gid: "x".repeat(129) }))).toBe("BARRIER_INVALID_PARAM");
    expect(BranchBarrier.fromQuery({ ...QUERY, gid: "x".repeat(128) }).gid).toHaveLength(128);
    expect(codeOf(() => BranchBarrier.fromQuery({ ...QUERY, op: "o".repeat(46) }))).toBe("BARRIER_INVALID_PARAM");
  });

  it("does not read inherited properties", () => {
    const proto = { gid: "from-proto" };
    const query = Object.assign(Object.create(proto) as Record<string, unknown>, { trans_type: "tcc", branch_id: "01", op: "try" });
    expect(codeOf(() => BranchBarrier.fromQuery(query))).toBe("BARRIER_MISSING_PARAM");
  });
});

describe("BranchBarrier.fromMetadata", () => {
  it("reads dtm-* metadata from grpc-js Metadata, strings or buffers", () => {
    const md = new Metadata();
    md.set("dtm-gid", "g9");
    md.set("dtm-trans_type", "saga");
    md.set("dtm-branch_id", "02");
    md.set("dtm-op", "compensate");
    md.set("dtm-dtm", "");
    const bb = BranchBarrier.fromMetadata(md);
    expect([bb.transType, bb.gid, bb.branchId, bb.op]).toEqual(["saga", "g9", "02", "compensate"]);
    const raw = { get: (k: string) => (k === "dtm-gid" ? [Buffer.from("gb")] : k === "dtm-op" ? ["action"] : ["x"]) };
    expect(BranchBarrier.fromMetadata(raw).gid).toBe("gb");
  });

  it("refuses missing metadata with BARRIER_MISSING_PARAM", () => {
    const md = new Metadata();
    md.set("dtm-gid", "g9");
    expect(codeOf(() => BranchBarrier.fromMetadata(md))).toBe("BARRIER_MISSING_PARAM");
    expect(() => BranchBarrier.fromMetadata(md)).toThrow("trans_type");
  });
});

describe("barrier ids and table names", () => {
  it("counts 01, 02 ... per barrier object", () => {
    const bb = new BranchBarrier({ transType: "saga", gid: "g", branchId: "01", op: "action" });
    const ids = Array.from({ length: 11 }, () => bb.newBarrierId());
    expect(ids).toEqual(["01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11"]);
    expect(new BranchBarrier({ transType: "saga", gid: "g", branchId: "01", op: "action" }).newBarrierId()).toBe("01");
  });

  it("checks table names, and setBarrierTableName changes the default", () => {
    expect(codeOf(() => new BranchBarrier({ ...QUERY, transType: "tcc", branchId: "01" }, { tableName: "x; drop table y" }))).toBe("BARRIER_INVALID_TABLE_NAME");
    expect(codeOf(() => new BranchBarrier({ transType: "tcc", gid: "g", branchId: "01", op: "try" }, { tableName: "a.b.c" }))).toBe("BARRIER_INVALID_TABLE_NAME");
    expect(codeOf(() => setBarrierTableName("bad name"))).toBe("BARRIER_INVALID_TABLE_NAME");
    setBarrierTableName("my_schema.my_barrier");
    try {
      expect(new BranchBarrier({ transType: "tcc", gid: "g", branchId: "01", op: "try" }).tableName).toBe("my_schema.my_barrier");
    } finally {
      setBarrierTableName("dtm_barrier.barrier");
    }
    expect(getBarrierTableName()).toBe("dtm_barrier.barrier");
  });
});

describe("DDL", () => {
  const normalise = (sql: string): string[] =>
    sql
      .split("\n")
      .filter((l) => !l.trim().startsWith("--"))
      .join("\n")
      .split(";")
      .map((s) => s.replace(/\s+/g, " ").trim())
      .filter((s) => s.length > 0);

  it("sdk/sql/barrier.{mysql,postgres}.sql match barrierTableDdl()", () => {
    for (const kind of ["mysql", "postgres"] as const) {
      const file = readFileSync(new URL(`../sql/barrier.${kind}.sql`, import.meta.url), "utf8");
      expect(normalise(file)).toEqual(barrierTableDdl(kind).map((s) => s.replace(/\s+/g, " ").trim()));
    }
  });

  it("follows a configured table name", () => {
    expect(barrierTableDdl("postgres", "s.t").join("\n")).toContain("CONSTRAINT uniq_t PRIMARY KEY(gid, branch_id, op, barrier_id)");
    expect(barrierTableDdl("postgres", "s.t")[0]).toBe("create schema if not exists s");
    expect(barrierTableDdl("postgres", "t")).toHaveLength(1);
    expect(barrierTableDdl("mysql", "t")).toHaveLength(1);
  });
});

/** A BarrierSqlTx over an in-memory table that records every statement. */
function recordingTx(dialect: "postgres" | "mysql"): BarrierSqlTx & { statements: string[]; rows: Map<string, string> } {
  const rows = new Map<string, string>();
  const statements: string[] = [];
  return {
    barrierDialect: dialect,
    statements,
    rows,
    async execute(sql, params) {
      statements.push(`${sql.split(" ").slice(0, 3).join(" ")} ${params.slice(3, 5).join("/")}`);
      if (sql.startsWith("select")) {
        const reason = rows.get(params.slice(0, 4).join("|"));
        return { affectedRows: 0, rows: reason === undefined ? [] : [{ reason }] };
      }
      const key = [params[1], params[2], params[3], params[4]].join("|");
      if (rows.has(key)) return { affectedRows: 0, rows: [] };
      rows.set(key, String(params[5]));
      return { affectedRows: 1, rows: [] };
    },
  };
}

describe("the algorithm (docs/protocol.md#barrier-algorithm), statement by statement", () => {
  const bb = (op: string, transType = "tcc"): BranchBarrier => new BranchBarrier({ transType, gid: "g", branchId: "01", op });

  it("try: one insert, then the business", async () => {
    const tx = recordingTx("mysql");
    const r = await bb("try").call(tx, async () => 7);
    expect(r).toEqual({ executed: true, value: 7, barrierId: "01" });
    expect(tx.statements).toEqual(["insert ignore into try/01"]);
  });

  it("cancel/compensate/rollback insert the origin row first, reason = op", async () => {
    for (const [op, origin] of [["cancel", "try"], ["compensate", "action"], ["rollback", "action"]]) {
      const tx = recordingTx("postgres");
      const r = await bb(op!).call(tx, async () => 1);
      expect(r).toEqual({ executed: false, skipped: "null_compensation", barrierId: "01" });
      expect(tx.statements).toEqual([`insert into dtm_barrier.barrier(trans_type, ${origin}/01`, `insert into dtm_barrier.barrier(trans_type, ${op}/01`]);
      expect([...tx.rows.values()]).toEqual([op, op]);
    }
  });

  it("msg: a second insert is DUPLICATED; confirm has no origin", async () => {
    const tx = recordingTx("mysql");
    await bb("msg", "msg").call(tx, async () => undefined);
    const err: unknown = await bb("msg", "msg").call(tx, async () => undefined).catch((e: unknown) => e);
    expect(isBarrierDuplicated(err)).toBe(true);
    const tx2 = recordingTx("mysql");
    expect((await bb("confirm").call(tx2, async () => 1)).executed).toBe(true);
    expect(tx2.statements).toHaveLength(1);
  });

  it("queryPrepared: inserts the rollback marker, then reads the reason", async () => {
    const tx = recordingTx("postgres");
    const err: unknown = await new BranchBarrier({ transType: "msg", gid: "g", branchId: "00", op: "msg" }).queryPrepared(tx).catch((e: unknown) => e);
    expect(isBarrierFailure(err)).toBe(true);
    expect(tx.statements.map((s) => s.split(" ")[0])).toEqual(["insert", "select"]);
  });

  it("refuses what it cannot drive", async () => {
    await expect(bb("try").call({} as BarrierSqlTx, async () => 1)).rejects.toMatchObject({ code: "BARRIER_UNSUPPORTED_DB" });
    await expect(bb("try").callWithDB({} as unknown as MongoClient, async () => 1)).rejects.toMatchObject({ code: "BARRIER_UNSUPPORTED_DB" });
  });
});

describe("errors", () => {
  it("FAILURE maps to 409 / ABORTED and is recognised by code or dtm_result", () => {
    const f = barrierFailure("no money");
    expect([f.code, f.httpStatus, f.grpcCode, f.message]).toEqual(["FAILURE", 409, 10, "no money FAILURE"]);
    expect(isBarrierFailure(f)).toBe(true);
    expect(isBarrierFailure({ code: "FAILURE" })).toBe(true);
    expect(isBarrierFailure(Object.assign(new Error("x"), { result: "FAILURE" }))).toBe(true);
    expect(isBarrierFailure(new Error("FAILURE"))).toBe(false);
    expect(isBarrierFailure(null)).toBe(false);
  });
});

// Compile-time only: the real drivers fit the barrier's structural types.
export function typeChecks(pool: pg.Pool, client: pg.PoolClient, my: mysql.Pool, k: Kysely<{ t: { a: number } }>, mc: MongoClient): void {
  const bb = new BranchBarrier({ transType: "tcc", gid: "g", branchId: "01", op: "try" });
  expectTypeOf(bb.callWithPg(pool, async (c) => (await c.query<{ n: number }>("select 1 as n")).rows[0]?.n)).toEqualTypeOf<Promise<BarrierResult<number | undefined>>>();
  expectTypeOf(bb.callWithPg(pool, async (c: pg.PoolClient) => c.release)).toEqualTypeOf<Promise<BarrierResult<pg.PoolClient["release"]>>>();
  void bb.callWithPg(pool, async (c) => expectTypeOf(c).toEqualTypeOf<PgPoolClientLike>());
  void bb.call(client, async (c) => expectTypeOf(c).toEqualTypeOf<pg.PoolClient>());
  void bb.callWithMysql(my, async (c) => expectTypeOf(c).toEqualTypeOf<mysql.PoolConnection>());
  void bb.callWithKysely(k, async (trx) => expectTypeOf(trx).toEqualTypeOf<Transaction<{ t: { a: number } }>>());
  void bb.mongoCall(mc, async (s) => expectTypeOf(s).toEqualTypeOf<ClientSession>());
  const msg = { gid: "g", prepare: async () => undefined, submit: async () => undefined, abort: async () => undefined };
  void doAndSubmitDB(msg, "qp", my, async (c) => expectTypeOf(c).toEqualTypeOf<mysql.PoolConnection>());
  void doAndSubmitDB(msg, "qp", k, async (trx) => expectTypeOf(trx).toEqualTypeOf<Transaction<{ t: { a: number } }>>());
  void doAndSubmitDB(msg, "qp", mc, async (s) => expectTypeOf(s).toEqualTypeOf<ClientSession>());
  void doAndSubmitDB(msg, "qp", pool, async (c) => expectTypeOf(c).toEqualTypeOf<PgPoolClientLike>());
}
