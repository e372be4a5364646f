/**
 * The chaos participant (test/chaos/participant/) against the shared PostgreSQL, MariaDB and
 * Redis, in databases and a key prefix of its own: setup twice (idempotent), participant
 * processes called as dtm calls them (query gid / trans_type / branch_id / op, JSON body),
 * including a duplicate call, a compensation before its action, an insufficient balance, TCC, a
 * seeded duplicate delivery and effects committed before a 500 / a dropped connection, XA through
 * a real coordinator, then readDatabaseState: balances, effect rows, barrier rows and keys,
 * prepared XA.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Msg, DtxClient as SdkClient, xaGlobalTransaction } from "../../sdk/src/index.ts";
import { ACCOUNT_COUNT, accountDb, initialBalance, type DatabaseState, type ParticipantCall } from "../chaos/contracts.ts";
import { closeClients, openClients } from "../chaos/participant/clients.ts";
import type { DbUrls } from "../chaos/participant/db-urls.ts";
import { msgSenderDebit } from "../chaos/participant/msg-sender.ts";
import { branchUrls, type BranchUrls } from "../chaos/participant/routes.ts";
import { createScratchDbs, type ScratchDbs } from "../chaos/participant/scratch-dbs.ts";
import { readDatabaseState } from "../chaos/participant/snapshot.ts";
import { spawnParticipant, type ParticipantProcess } from "../chaos/participant/spawn.ts";
import { startCoordinator, type TestCoordinator } from "../helpers/coordinator.ts";
import { testServiceUrls } from "../helpers/services.ts";

const NAME = `chaos_part_${process.pid}_${Date.now().toString(36)}`;
const dir = mkdtempSync(join(tmpdir(), "chaos-participant-"));
const calls = join(dir, "calls.jsonl");

let scratch: ScratchDbs;
let dbs: DbUrls;
let PREFIX: string;
/** Fault-free; every call run twice at once and answered 500 after its commit; every answer dropped after the commit. */
let clean: ParticipantProcess;
let dupErrorAfter: ParticipantProcess;
let dropAfter: ParticipantProcess;
/** Fault-free, serving one call at a time. */
let narrow: ParticipantProcess;
let dtx: TestCoordinator;

beforeAll(async () => {
  scratch = await createScratchDbs(testServiceUrls(), NAME, 7);
  ({ dbs, redisPrefix: PREFIX } = scratch);
  const base = { port: 0, seed: 7, calls, dbs, lateMs: 1_500, redisPrefix: PREFIX, stderr: "ignore" as const };
  [clean, dupErrorAfter, dropAfter, narrow, dtx] = await Promise.all([
    spawnParticipant({ ...base, index: 0, faultRates: {} }),
    spawnParticipant({ ...base, index: 1, faultRates: { duplicate: 1, "error-after": 1 } }),
    spawnParticipant({ ...base, index: 2, faultRates: { "drop-after": 1 } }),
    spawnParticipant({ ...base, index: 3, faultRates: {}, maxInFlight: 1 }),
    startCoordinator(),
  ]);
});

afterAll(async () => {
  for (const p of [clean, dupErrorAfter, dropAfter, narrow]) p?.child.kill("SIGKILL");
  await dtx?.stop();
  await scratch?.drop();
  rmSync(dir, { recursive: true, force: true });
});

interface Reply {
  status: number;
  body: string;
}

/** A branch call as the coordinator makes it. */
async function call(url: string, q: { gid: string; branchId: string; op: string; transType?: string }, body?: unknown): Promise<Reply> {
  const target = new URL(url);
  target.searchParams.set("gid", q.gid);
  target.searchParams.set("trans_type", q.transType ?? "saga");
  target.searchParams.set("branch_id", q.branchId);
  target.searchParams.set("op", q.op);
  const res = await fetch(target, { method: "POST", headers: { "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: await res.text() };
}

const urls = (p: ParticipantProcess): BranchUrls => branchUrls(p.base);
const effectsOf = (s: DatabaseState, gid: string) => s.effects.filter((e) => e.gid === gid);
const barriersOf = (s: DatabaseState, gid: string) => s.barriers.filter((b) => b.gid === gid).map((b) => `${b.db}:${b.branchId}:${b.op}:${b.reason}`).sort();
const account = (s: DatabaseState, id: number) => s.accounts.find((a) => a.id === id)!;

/** Accounts 0, 1, 2 live in PostgreSQL, MariaDB, Redis; 9, 19, 29 are the low ones there. */
const ONE_PER_DB = [0, 1, 2] as const;
const LOW_PER_DB = [9, 19, 29] as const;

describe("chaos participant", () => {
  it("setup made every account with its start balance, once", async () => {
    const s = await readDatabaseState(dbs, { redisPrefix: PREFIX });
    expect(s.accounts).toHaveLength(ACCOUNT_COUNT);
    for (const a of s.accounts) expect(a).toEqual({ id: a.id, balance: initialBalance(a.id), frozen: 0 });
    expect(s.effects).toEqual([]);
    expect(s.barriers).toEqual([]);
    expect([LOW_PER_DB.map(accountDb), ONE_PER_DB.map(accountDb)]).toEqual([["postgres", "mysql", "redis"], ["postgres", "mysql", "redis"]]);
  });

  it("saga: an action twice at once applies once; a compensation before its action is null and blocks it; too low a balance is FAILURE", async () => {
    const u = urls(clean).saga;
    for (const id of ONE_PER_DB) {
      const twice = await Promise.all([0, 1].map(() => call(u.transOut, { gid: `${NAME}-s${id}`, branchId: "01", op: "action" }, { account: id, amount: 30 })));
      expect(twice.map((r) => r.status)).toEqual([200, 200]);
      expect((await call(u.transOutCompensate, { gid: `${NAME}-n${id}`, branchId: "01", op: "compensate" }, { account: id, amount: 40 })).status).toBe(200);
      expect((await call(u.transOut, { gid: `${NAME}-n${id}`, branchId: "01", op: "action" }, { account: id, amount: 40 })).status).toBe(200);
    }
    for (const id of LOW_PER_DB) {
      const r = await call(u.transOut, { gid: `${NAME}-low${id}`, branchId: "01", op: "action" }, { account: id, amount: 100 });
      expect([r.status, r.body]).toEqual([409, expect.stringContaining('"dtm_result":"FAILURE"')]);
    }
    const s = await readDatabaseState(dbs, { redisPrefix: PREFIX });
    for (const id of ONE_PER_DB) {
      const db = accountDb(id);
      expect(account(s, id).balance).toBe(initialBalance(id) - 30);
      expect(effectsOf(s, `${NAME}-s${id}`)).toEqual(db === "redis" ? [] : [{ gid: `${NAME}-s${id}`, branchId: "01", op: "action", account: id, amount: -30 }]);
      expect(effectsOf(s, `${NAME}-n${id}`)).toEqual([]);
      expect(barriersOf(s, `${NAME}-s${id}`)).toEqual([`${db}:01:action:action`]);
      // SQL: the compensation inserts its origin's row (reason compensate); Redis marks it "rollback".
      expect(barriersOf(s, `${NAME}-n${id}`)).toEqual(db === "redis" ? ["redis:01:action:rollback", "redis:01:compensate:compensate"] : [`${db}:01:action:compensate`, `${db}:01:compensate:compensate`]);
    }
    for (const id of LOW_PER_DB) {
      expect(account(s, id).balance).toBe(initialBalance(id));
      expect([effectsOf(s, `${NAME}-low${id}`), barriersOf(s, `${NAME}-low${id}`)]).toEqual([[], []]);
    }
  });

  it("workflow: a rollback (op=rollback) is the compensation of its action: null before it, recorded as compensate after it, on every database", async () => {
    const u = urls(clean).saga;
    const before = await readDatabaseState(dbs, { redisPrefix: PREFIX });
    for (const id of ONE_PER_DB) {
      const q = (op: string) => ({ gid: `${NAME}-w${id}`, branchId: "01", op, transType: "workflow" });
      expect((await call(u.transInCompensate, q("rollback"), { account: id, amount: 8 })).status).toBe(200);
      expect((await call(u.transIn, q("action"), { account: id, amount: 8 })).status).toBe(200);
      const r = (op: string) => ({ gid: `${NAME}-wr${id}`, branchId: "01", op, transType: "workflow" });
      expect((await call(u.transIn, r("action"), { account: id, amount: 9 })).status).toBe(200);
      expect((await call(u.transInCompensate, r("rollback"), { account: id, amount: 9 })).status).toBe(200);
    }
    const s = await readDatabaseState(dbs, { redisPrefix: PREFIX });
    for (const id of ONE_PER_DB) {
      const db = accountDb(id);
      expect(account(s, id)).toEqual(account(before, id));
      expect(effectsOf(s, `${NAME}-w${id}`)).toEqual([]);
      expect(effectsOf(s, `${NAME}-wr${id}`).map((e) => `${e.op}:${e.amount}`)).toEqual(db === "redis" ? [] : ["action:9", "compensate:-9"]);
      expect(barriersOf(s, `${NAME}-wr${id}`)).toEqual([`${db}:01:action:action`, `${db}:01:compensate:compensate`]);
      // A workflow's rollback is recorded as the compensation of its action, on every database.
      expect(barriersOf(s, `${NAME}-w${id}`)).toEqual(db === "redis" ? ["redis:01:action:rollback", "redis:01:compensate:compensate"] : [`${db}:01:action:compensate`, `${db}:01:compensate:compensate`]);
    }
  });

  it("tcc: try freezes, confirm takes; a cancel after its try gives back; effect amounts are what balance + frozen lost", async () => {
    const u = urls(clean).tcc;
    const q = (gid: string, op: string) => ({ gid, branchId: "01", op, transType: "tcc" });
    const id = 3; // PostgreSQL
    expect((await call(u.transOutTry, q(`${NAME}-t`, "try"), { account: id, amount: 20 })).status).toBe(200);
    let s = await readDatabaseState(dbs, { redisPrefix: PREFIX });
    expect(account(s, id)).toEqual({ id, balance: initialBalance(id) - 20, frozen: 20 });
    expect((await call(u.transOutConfirm, q(`${NAME}-t`, "confirm"), { account: id, amount: 20 })).status).toBe(200);
    expect((await call(u.transOutTry, q(`${NAME}-c`, "try"), { account: 4, amount: 5 })).status).toBe(200);
    expect((await call(u.transOutCancel, q(`${NAME}-c`, "cancel"), { account: 4, amount: 5 })).status).toBe(200);
    s = await readDatabaseState(dbs, { redisPrefix: PREFIX });
    expect(account(s, id)).toEqual({ id, balance: initialBalance(id) - 20, frozen: 0 });
    expect(account(s, 4)).toEqual({ id: 4, balance: initialBalance(4), frozen: 0 });
    expect(effectsOf(s, `${NAME}-t`).map((e) => [e.op, e.amount])).toEqual([["try", 0], ["confirm", -20]]);
    expect(effectsOf(s, `${NAME}-c`).map((e) => [e.op, e.amount])).toEqual([["try", 0], ["cancel", 0]]);
  });

  it("seeded faults: a duplicate delivery answered 500 after its commit, and a dropped answer, apply once each", async () => {
    const gid = `${NAME}-f`;
    for (const id of ONE_PER_DB) {
      const first = await call(urls(dupErrorAfter).saga.transIn, { gid, branchId: `0${id}`, op: "action" }, { account: id, amount: 7 });
      const again = await call(urls(dupErrorAfter).saga.transIn, { gid, branchId: `0${id}`, op: "action" }, { account: id, amount: 7 });
      expect([first.status, again.status]).toEqual([500, 500]);
      await expect(call(urls(dropAfter).saga.transIn, { gid, branchId: `1${id}`, op: "action" }, { account: id, amount: 11 })).rejects.toThrow();
    }
    const s = await readDatabaseState(dbs, { redisPrefix: PREFIX });
    for (const id of ONE_PER_DB) expect(account(s, id).balance).toBe(initialBalance(id) - 30 + 7 + 11);
    expect(effectsOf(s, gid).map((e) => `${e.branchId}:${e.amount}`).sort()).toEqual(["00:7", "01:7", "10:11", "11:11"]);
    const ends = readFileSync(calls, "utf8").trim().split("\n").map((l) => JSON.parse(l) as ParticipantCall & { duplicated?: boolean }).filter((c) => c.type === "end" && c.fault);
    expect(new Set(ends.map((e) => `${(e as { fault?: string }).fault}:${e.type === "end" ? e.result : ""}:${e.duplicated === true}`))).toEqual(new Set(["error-after:ERROR:true", "drop-after:DROPPED:false"]));
  });

  it("xa through a real coordinator: committed on PostgreSQL and MariaDB; a FAILURE rolls the other branch back; nothing left prepared", async () => {
    const sdk = new SdkClient(dtx.url);
    const u = urls(clean).xa;
    try {
      await xaGlobalTransaction(sdk, `${NAME}-x1`, async (xa) => {
        await xa.callBranch({ account: 6, amount: 25, peer: 7 }, u.postgres.transOut);
        await xa.callBranch({ account: 7, amount: 25, peer: 6 }, u.mysql.transIn);
      }, { waitResult: true });
      const failed = xaGlobalTransaction(sdk, `${NAME}-x2`, async (xa) => {
        await xa.callBranch({ account: 10, amount: 3, peer: 9 }, u.mysql.transIn);
        await xa.callBranch({ account: 9, amount: 3000, peer: 10 }, u.postgres.transOut);
      }, { waitResult: true });
      await expect(failed).rejects.toThrow(/FAILURE|409/);
    } finally {
      await sdk.close();
    }
    // The abort's rollback runs on the coordinator (a MariaDB xid still attached to its closing session is retried).
    await dtx.client.settle();
    for (let i = 0; i < 20 && (await dtx.client.status(`${NAME}-x2`)) !== "failed"; i++) await dtx.client.cron(10_000);
    expect([await dtx.client.status(`${NAME}-x1`), await dtx.client.status(`${NAME}-x2`)]).toEqual(["succeed", "failed"]);
    const s = await readDatabaseState(dbs, { redisPrefix: PREFIX });
    expect(s.preparedXa.filter((x) => x.xid.startsWith(NAME))).toEqual([]);
    expect([account(s, 6).balance, account(s, 7).balance, account(s, 10).balance, account(s, 9).balance]).toEqual([initialBalance(6) - 25, initialBalance(7) + 25, initialBalance(10), initialBalance(9)]);
    expect(effectsOf(s, `${NAME}-x1`).map((e) => `${e.account}:${e.amount}`).sort()).toEqual(["6:-25", "7:25"]);
    expect(effectsOf(s, `${NAME}-x2`)).toEqual([]);
    expect(barriersOf(s, `${NAME}-x2`)).toEqual(["mysql:01:action:rollback"]);
  });

  it("xa phase 2 gets through while every pooled connection waits on the row its prepared branch holds", async () => {
    const sdk = new SdkClient(dtx.url);
    const u = urls(clean);
    const [my, pgId] = [40, 42]; // MariaDB, PostgreSQL
    let waiting: Promise<Reply[]> = Promise.resolve([]);
    try {
      await xaGlobalTransaction(sdk, `${NAME}-x3`, async (xa) => {
        await xa.callBranch({ account: my, amount: 5 }, u.xa.mysql.transIn);
        await xa.callBranch({ account: pgId, amount: 5 }, u.xa.postgres.transIn);
        // 12 calls per account, more than the participant's pools of 10: all wait on the prepared rows.
        waiting = Promise.all([my, pgId].flatMap((id) => Array.from({ length: 12 }, (_, i) => call(u.saga.transIn, { gid: `${NAME}-blocked${id}-${i}`, branchId: "01", op: "action" }, { account: id, amount: 1 }))));
        const started = () => (readFileSync(calls, "utf8").match(new RegExp(`"gid":"${NAME}-blocked`, "g")) ?? []).length;
        for (let i = 0; i < 1_000 && started() < 24; i++) await new Promise((r) => setTimeout(r, 10));
      }, { waitResult: true });
    } finally {
      await sdk.close();
    }
    // The commit released the rows: every waiting call went through (none ran into a lock timeout).
    expect((await waiting).map((r) => r.status)).toEqual(Array<number>(24).fill(200));
    const s = await readDatabaseState(dbs, { redisPrefix: PREFIX });
    expect([account(s, my).balance, account(s, pgId).balance]).toEqual([initialBalance(my) + 17, initialBalance(pgId) + 17]);
  });

  it("msg through a real coordinator, sender on each database: submitted, vanished after its commit (the check-back submits), never committed (the check-back fails it)", async () => {
    const sdk = new SdkClient(dtx.url);
    const clients = openClients(dbs, { redisPrefix: PREFIX, poolSize: 2 });
    const u = urls(clean);
    const senders = [12, 13, 14]; // PostgreSQL, MariaDB, Redis; each pays account + 3 (same database)
    const gids = (from: number) => ({ sent: `${NAME}-m${from}`, vanished: `${NAME}-v${from}`, never: `${NAME}-p${from}` });
    try {
      for (const from of senders) {
        const g = gids(from);
        const qp = u.queryPrepared(accountDb(from));
        await new Msg(sdk, g.sent, { waitResult: true }).add(u.msg.transIn, { account: from + 3, amount: 4, peer: from }).doAndSubmit(qp, () => msgSenderDebit(clients, g.sent, from, 4));
        await new Msg(sdk, g.vanished).add(u.msg.transIn, { account: from + 3, amount: 5, peer: from }).prepare(qp);
        await msgSenderDebit(clients, g.vanished, from, 5);
        await new Msg(sdk, g.never).add(u.msg.transIn, { account: from + 3, amount: 6, peer: from }).prepare(qp);
      }
      const all = senders.flatMap((f) => Object.values(gids(f)));
      const terminal = async () => (await Promise.all(all.map((g) => dtx.client.status(g)))).every((st) => st === "succeed" || st === "failed");
      // Past the msg timeout, the coordinator's cron asks the check-back (bounded).
      for (let i = 0; i < 20 && !(await terminal()); i++) await dtx.client.cron(10_000);
    } finally {
      await closeClients(clients);
      await sdk.close();
    }
    const s = await readDatabaseState(dbs, { redisPrefix: PREFIX });
    for (const from of senders) {
      const g = gids(from);
      const db = accountDb(from);
      expect([await dtx.client.status(g.sent), await dtx.client.status(g.vanished), await dtx.client.status(g.never)]).toEqual(["succeed", "succeed", "failed"]);
      expect([account(s, from).balance, account(s, from + 3).balance]).toEqual([initialBalance(from) - 9, initialBalance(from + 3) + 9]);
      const sqlEffects = db === "redis" ? [] : [`00:msg:${from}:-4`, `01:action:${from + 3}:4`];
      expect(effectsOf(s, g.sent).map((e) => `${e.branchId}:${e.op}:${e.account}:${e.amount}`).sort()).toEqual(sqlEffects);
      expect(effectsOf(s, g.never)).toEqual([]);
      expect(barriersOf(s, g.sent)).toEqual([`${db}:00:msg:msg`, `${db}:01:action:action`]);
      expect(barriersOf(s, g.never)).toEqual([`${db}:00:msg:rollback`]);
    }
  });

  it("overload: past --max-in-flight a call is answered 503 with Retry-After before any effect", async () => {
    const id = 30; // PostgreSQL
    const pgc = new pg.Client({ connectionString: dbs.postgres });
    await pgc.connect();
    try {
      // Hold the account's row so that the first call stays in flight.
      await pgc.query("BEGIN");
      await pgc.query("select balance from chaos_accounts where id = $1 for update", [id]);
      const first = call(urls(narrow).saga.transIn, { gid: `${NAME}-o1`, branchId: "01", op: "action" }, { account: id, amount: 5 });
      const started = () => readFileSync(calls, "utf8").includes(`"gid":"${NAME}-o1"`);
      for (let i = 0; i < 500 && !started(); i++) await new Promise((r) => setTimeout(r, 10));
      const target = new URL(urls(narrow).saga.transIn);
      for (const [k, v] of Object.entries({ gid: `${NAME}-o2`, trans_type: "saga", branch_id: "01", op: "action" })) target.searchParams.set(k, v);
      const busy = await fetch(target, { method: "POST", body: JSON.stringify({ account: id, amount: 6 }), signal: AbortSignal.timeout(10_000) });
      expect([busy.status, busy.headers.get("retry-after"), ((await busy.json()) as { error: { code: string } }).error.code]).toEqual([503, "1", "PARTICIPANT_BUSY"]);
      await pgc.query("COMMIT");
      expect((await first).status).toBe(200);
    } finally {
      await pgc.end();
    }
    const s = await readDatabaseState(dbs, { redisPrefix: PREFIX });
    expect([effectsOf(s, `${NAME}-o1`).length, effectsOf(s, `${NAME}-o2`), barriersOf(s, `${NAME}-o2`)]).toEqual([1, [], []]);
    expect(account(s, id).balance).toBe(initialBalance(id) + 5);
  });

  it("bad input: 400 with a code, unknown path 404, nothing written; every call logged start and end", async () => {
    const r = await call(urls(clean).saga.transIn, { gid: `${NAME}-bad`, branchId: "01", op: "action" }, { account: ACCOUNT_COUNT, amount: 1 });
    expect([r.status, JSON.parse(r.body)]).toEqual([400, { error: { code: "BAD_PAYLOAD", message: expect.any(String) } }]);
    expect((await fetch(`${clean.base}/nope`)).status).toBe(404);
    const s = await readDatabaseState(dbs, { redisPrefix: PREFIX });
    expect(effectsOf(s, `${NAME}-bad`)).toEqual([]);
    const lines = readFileSync(calls, "utf8").trim().split("\n").map((l) => JSON.parse(l) as ParticipantCall);
    const started = lines.filter((l) => l.type === "start").map((l) => l.callId).sort();
    expect(lines.filter((l) => l.type === "end").map((l) => l.callId).sort()).toEqual(started);
  });
});
