/**
 * The chaos participant under its own seeded branch faults, driven by a real coordinator (SQLite,
 * test timings: request timeout 1 s, cron run by the test): sagas, TCC, XA and msg between
 * accounts on PostgreSQL, MariaDB and Redis, with every fault kind at a high rate. Afterwards:
 * every gid terminal, each fault answered as it says, each branch op applied at most once, the
 * effect rows agree with the balances, money is conserved, and nothing is left frozen or prepared.
 * Fixed seed 14 (the faults also depend on the order in which calls arrive).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Msg, Saga, DtxClient as SdkClient, tccGlobalTransaction, xaGlobalTransaction } from "../../sdk/src/index.ts";
import { ACCOUNT_COUNT, accountDb, initialBalance, type ParticipantCall } from "../chaos/contracts.ts";
import { closeClients, openClients } from "../chaos/participant/clients.ts";
import { BRANCH_FAULTS, type FaultRates } from "../chaos/participant/faults.ts";
import { msgSenderDebit } from "../chaos/participant/msg-sender.ts";
import { branchUrls } from "../chaos/participant/routes.ts";
import { createScratchDbs, type ScratchDbs } from "../chaos/participant/scratch-dbs.ts";
import { readDatabaseState } from "../chaos/participant/snapshot.ts";
import { spawnParticipant, type ParticipantProcess } from "../chaos/participant/spawn.ts";
import { startCoordinator, type TestCoordinator } from "../helpers/coordinator.ts";
import { testServiceUrls } from "../helpers/services.ts";

const SEED = 14;
const LATE_MS = 1_500;
const RATES: FaultRates = { "error-before": 0.1, "error-after": 0.1, "drop-after": 0.1, late: 0.1, ongoing: 0.1, failure: 0.2, duplicate: 0.15 };
const NAME = `chaos_pf_${process.pid}_${Date.now().toString(36)}`;
const dir = mkdtempSync(join(tmpdir(), "chaos-participant-faults-"));
const calls = join(dir, "calls.jsonl");

let scratch: ScratchDbs;
let participant: ParticipantProcess;
let dtx: TestCoordinator;

beforeAll(async () => {
  scratch = await createScratchDbs(testServiceUrls(), NAME, SEED);
  [participant, dtx] = await Promise.all([
    spawnParticipant({ port: 0, index: 0, seed: SEED, calls, dbs: scratch.dbs, faultRates: RATES, lateMs: LATE_MS, redisPrefix: scratch.redisPrefix, stderr: "ignore" }),
    startCoordinator(),
  ]);
});

afterAll(async () => {
  participant?.child.kill("SIGKILL");
  await dtx?.stop();
  await scratch?.drop();
  rmSync(dir, { recursive: true, force: true });
});

/** mulberry32: a small seeded generator, enough to pick accounts and amounts. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

type Kind = "saga" | "tcc" | "xa" | "msg";
/** A planned transfer; branch 01 takes from `from`, branch 02 (msg: 01, the sender being 00) gives to `to`. */
interface Planned {
  gid: string;
  kind: Kind;
  from: number;
  to: number;
  amount: number;
}

function plan(): Planned[] {
  const r = rng(SEED);
  const pick = (ok: (id: number) => boolean): number => {
    for (;;) {
      const id = Math.floor(r() * 60);
      if (ok(id)) return id;
    }
  };
  const sql = (id: number) => accountDb(id) !== "redis";
  const kinds: Kind[] = [...Array<Kind>(14).fill("saga"), ...Array<Kind>(8).fill("tcc"), ...Array<Kind>(5).fill("xa"), ...Array<Kind>(5).fill("msg")];
  return kinds.map((kind, n) => {
    const from = pick(kind === "xa" ? sql : () => true);
    const to = pick((id) => id !== from && (kind === "xa" ? sql(id) : true));
    return { gid: `${NAME}-${n}`, kind, from, to, amount: 1 + Math.floor(r() * 100) };
  });
}

async function run(p: Planned, sdk: SdkClient, clients: ReturnType<typeof openClients>): Promise<void> {
  const u = branchUrls(participant.base);
  const out = { account: p.from, amount: p.amount, peer: p.to };
  const into = { account: p.to, amount: p.amount, peer: p.from };
  // The application's own branch calls (TCC try, XA action) time out as the coordinator's do.
  const options = { requestTimeout: 1 };
  switch (p.kind) {
    case "saga":
      return new Saga(sdk, p.gid).add(u.saga.transOut, u.saga.transOutCompensate, out).add(u.saga.transIn, u.saga.transInCompensate, into).submit();
    case "tcc":
      await tccGlobalTransaction(sdk, p.gid, async (tcc) => {
        await tcc.callBranch(out, u.tcc.transOutTry, u.tcc.transOutConfirm, u.tcc.transOutCancel);
        await tcc.callBranch(into, u.tcc.transInTry, u.tcc.transInConfirm, u.tcc.transInCancel);
      }, options);
      return;
    case "xa":
      await xaGlobalTransaction(sdk, p.gid, async (xa) => {
        await xa.callBranch(out, u.xa[accountDb(p.from) as "postgres" | "mysql"].transOut);
        await xa.callBranch(into, u.xa[accountDb(p.to) as "postgres" | "mysql"].transIn);
      }, options);
      return;
    case "msg":
      return new Msg(sdk, p.gid).add(u.msg.transIn, into).doAndSubmit(u.queryPrepared(accountDb(p.from)), () => msgSenderDebit(clients, p.gid, p.from, p.amount));
  }
}

describe("chaos participant under seeded branch faults", () => {
  it("every transaction ends, each effect at most once, balances agree with the effects, money is conserved", async () => {
    const planned = plan();
    const sdk = new SdkClient(dtx.url);
    const clients = openClients(scratch.dbs, { redisPrefix: scratch.redisPrefix, poolSize: 4 });
    const statuses = new Map<string, string | undefined>();
    try {
      // Refusals (a TCC try or XA action that failed, a msg whose debit failed) end in an abort: fine.
      await Promise.all(planned.map((p) => run(p, sdk, clients).catch(() => undefined)));
      const pending = async () => {
        for (const p of planned) statuses.set(p.gid, await dtx.client.status(p.gid));
        return planned.filter((p) => statuses.get(p.gid) !== "succeed" && statuses.get(p.gid) !== "failed");
      };
      for (let round = 0; round < 30 && (await pending()).length > 0; round++) await dtx.client.cron(10_000);
      expect((await pending()).map((p) => `${p.gid} ${p.kind} ${String(statuses.get(p.gid))}`)).toEqual([]);
    } finally {
      await closeClients(clients);
      await sdk.close();
    }

    // Each fault fired, and was answered as it says.
    const lines = readFileSync(calls, "utf8").trim().split("\n").map((l) => JSON.parse(l) as ParticipantCall & { duplicated?: boolean });
    const starts = new Map(lines.filter((l) => l.type === "start").map((l) => [l.callId, l]));
    const ends = lines.filter((l): l is Extract<ParticipantCall, { type: "end" }> & { duplicated?: boolean } => l.type === "end");
    const expected: Record<string, string> = { "error-before": "ERROR", "error-after": "ERROR", "drop-after": "DROPPED", ongoing: "ONGOING", failure: "FAILURE" };
    for (const e of ends) {
      if (e.fault === "late") expect(e.at - starts.get(e.callId)!.at).toBeGreaterThanOrEqual(LATE_MS);
      else if (e.fault) expect([e.fault, e.result]).toEqual([e.fault, expected[e.fault]]);
    }
    expect(new Set(ends.map((e) => e.fault).filter(Boolean))).toEqual(new Set(BRANCH_FAULTS));
    expect(ends.some((e) => e.duplicated)).toBe(true);

    const s = await readDatabaseState(scratch.dbs, { redisPrefix: scratch.redisPrefix });
    // Idempotency: no branch op has two effect rows.
    const perOp = new Map<string, number>();
    for (const e of s.effects) perOp.set(`${e.gid}/${e.branchId}/${e.op}`, (perOp.get(`${e.gid}/${e.branchId}/${e.op}`) ?? 0) + 1);
    expect([...perOp].filter(([, n]) => n > 1)).toEqual([]);
    // SQL accounts: start balance + effects = balance + frozen; nothing frozen or prepared; the total is kept.
    for (const a of s.accounts.filter((x) => accountDb(x.id) !== "redis")) {
      const sum = s.effects.filter((e) => e.account === a.id).reduce((t, e) => t + e.amount, 0);
      expect([a.id, initialBalance(a.id) + sum]).toEqual([a.id, a.balance + a.frozen]);
    }
    expect(s.accounts.filter((a) => a.frozen !== 0)).toEqual([]);
    expect(s.preparedXa.filter((x) => x.xid.startsWith(NAME))).toEqual([]);
    let initial = 0;
    for (let id = 0; id < ACCOUNT_COUNT; id++) initial += initialBalance(id);
    expect(s.accounts.reduce((t, a) => t + a.balance + a.frozen, 0)).toBe(initial);

    // Outcome rules on the SQL side of each transfer (Redis is covered by the total).
    const n = (gid: string, branchId: string, op: string) => perOp.get(`${gid}/${branchId}/${op}`) ?? 0;
    for (const p of planned) {
      const ok = statuses.get(p.gid) === "succeed";
      const sides = p.kind === "msg" ? [["00", p.from], ["01", p.to]] as const : [["01", p.from], ["02", p.to]] as const;
      for (const [branchId] of sides.filter(([, id]) => accountDb(id) !== "redis")) {
        const where = `${p.kind} ${p.gid} ${branchId}`;
        if (p.kind === "saga") expect([where, n(p.gid, branchId, "action"), n(p.gid, branchId, "compensate")]).toEqual(ok ? [where, 1, 0] : [where, n(p.gid, branchId, "action"), n(p.gid, branchId, "action")]);
        if (p.kind === "tcc") expect([where, n(p.gid, branchId, "try"), n(p.gid, branchId, "confirm"), n(p.gid, branchId, "cancel")]).toEqual(ok ? [where, 1, 1, 0] : [where, n(p.gid, branchId, "cancel"), 0, n(p.gid, branchId, "try")]);
        if (p.kind === "xa") expect([where, n(p.gid, branchId, "action")]).toEqual([where, ok ? 1 : 0]);
        if (p.kind === "msg") expect([where, n(p.gid, branchId, branchId === "00" ? "msg" : "action")]).toEqual([where, ok ? 1 : 0]);
      }
    }
    process.stdout.write(`[chaos-participant-faults] seed ${SEED}: ${planned.length} transactions, ${[...statuses.values()].filter((x) => x === "succeed").length} succeeded; ${ends.length} calls, ${ends.filter((e) => e.fault).length} with a fault\n`);
  }, 60_000);
});
