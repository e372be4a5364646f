/**
 * Synthetic runs for the checker's own tests: a few transactions written the way the load
 * generator, the participants and the world would write them, consistent by construction, so a
 * test can break exactly one thing and see the checker name it.
 */
import type { ChaosTimings, ClientEvent, ClientOp, DatabaseState, FinalTrans, Intent, Kind, NemesisEvent, ParticipantCall, Transfer } from "../contracts.ts";
import { ACCOUNT_COUNT, accountDb, initialBalance, runPaths } from "../contracts.ts";
import type { CheckData, CheckInput, StatusChange } from "./types.ts";

export const SYNTHETIC_TIMINGS: ChaosTimings = { retryIntervalMs: 1_000, maxRetryIntervalMs: 8_000, cronIntervalMs: 1_000, requestTimeoutMs: 1_000, retryJitter: 0.1 };

type Outcome = "succeed" | "failed";

export class SyntheticRun {
  now = 1_700_000_000_000;
  readonly startedAt = this.now;
  private nextId = 1;
  private nextCall = 1;
  readonly history: ClientEvent[] = [];
  readonly intents: Intent[] = [];
  readonly calls: ParticipantCall[] = [];
  readonly nemesis: NemesisEvent[] = [];
  readonly final: FinalTrans[] = [];
  readonly statusChanges: StatusChange[] = [];
  readonly db: DatabaseState = { accounts: [], effects: [], barriers: [], preparedXa: [] };
  lastFaultEndedAt = 0;
  settledAt: number | null = null;

  constructor() {
    for (let id = 0; id < ACCOUNT_COUNT; id++) this.db.accounts.push({ id, balance: initialBalance(id), frozen: 0 });
  }

  tick(ms = 10): number {
    this.now += ms;
    return this.now;
  }

  account(id: number): DatabaseState["accounts"][number] {
    return this.db.accounts.find((a) => a.id === id)!;
  }

  /** A client request and its completion (ok unless told). */
  request(gid: string, op: ClientOp | "prepareWorkflow" | "registerBranch", completion: "ok" | "fail" | "info" = "ok", status?: string): void {
    const id = this.nextId++;
    // The load generator also records prepareWorkflow and registerBranch (ClientOp on its branch).
    this.history.push({ type: "invoke", id, at: this.tick(), gid, op: op as ClientOp, via: "http", coordinator: 0 });
    if (completion === "ok") this.history.push({ type: "ok", id, at: this.tick(), gid, ...(status ? { status } : {}) });
    else this.history.push({ type: completion, id, at: this.tick(), gid, error: "synthetic" });
  }

  /** A branch call as the participant logs it; returns its start. */
  call(gid: string, branchId: string, op: string, result: "SUCCESS" | "FAILURE" | "ONGOING" | "ERROR" = "SUCCESS", durationMs = 20): number {
    const callId = `c${this.nextCall++}`;
    const start = this.tick();
    this.calls.push({ type: "start", callId, pid: 100, at: start, gid, branchId, op, path: `/api/${op}` });
    this.calls.push({ type: "end", callId, pid: 100, at: this.tick(durationMs), result });
    return start;
  }

  /** The business effect of one op: an effect row (SQL) or nothing (Redis), the barrier, the balance. */
  effect(gid: string, branchId: string, op: string, accountId: number, amount: number, frozen = 0): void {
    const db = accountDb(accountId);
    if (db !== "redis") this.db.effects.push({ gid, branchId, op, account: accountId, amount });
    this.db.barriers.push({ gid, branchId, op, reason: op, db });
    const account = this.account(accountId);
    account.balance += amount;
    account.frozen += frozen;
  }

  /** A compensation that found no action: the barrier rows of a null compensation, no effect. */
  nullCompensation(gid: string, branchId: string, op: "compensate" | "cancel", accountId: number): void {
    const db = accountDb(accountId);
    const origin = op === "compensate" ? "action" : "try";
    this.db.barriers.push({ gid, branchId, op: origin, reason: db === "redis" ? "rollback" : op, db }, { gid, branchId, op, reason: op, db });
  }

  /** One logged status change ("status changed"), as a coordinator would write it. */
  change(gid: string, type: string, from: string | null, to: string, cause = from === null ? "create" : "pass"): void {
    this.statusChanges.push({ at: this.tick(), coordinator: 0, gid, transType: type, from, to, cause });
  }

  /** A chain of changes from creation: moves(gid, "xa", "prepared", "submitted", "succeed"). */
  moves(gid: string, type: string, ...statuses: string[]): void {
    let from: string | null = null;
    for (const to of statuses) {
      this.change(gid, type, from, to);
      from = to;
    }
  }

  private intent(gid: string, kind: Kind, transfer: Transfer): void {
    this.intents.push({ gid, kind, via: "http", transfers: [transfer] });
  }

  saga(gid: string, transfer: Transfer, outcome: Outcome = "succeed"): void {
    this.intent(gid, "saga", transfer);
    this.change(gid, "saga", null, "submitted");
    this.request(gid, "submit");
    if (outcome === "succeed") {
      this.call(gid, "01", "action");
      this.effect(gid, "01", "action", transfer.from, -transfer.amount);
      this.call(gid, "02", "action");
      this.effect(gid, "02", "action", transfer.to, transfer.amount);
      this.change(gid, "saga", "submitted", "succeed");
    } else {
      this.call(gid, "01", "action", "FAILURE");
      this.change(gid, "saga", "submitted", "aborting");
      this.call(gid, "01", "compensate");
      this.nullCompensation(gid, "01", "compensate", transfer.from);
      this.change(gid, "saga", "aborting", "failed");
    }
    const done = outcome === "succeed" ? "succeed" : "prepared";
    this.final.push({
      gid,
      status: outcome,
      transType: "saga",
      branches: [
        { branchId: "01", op: "compensate", status: outcome === "failed" ? "succeed" : "prepared" },
        { branchId: "01", op: "action", status: outcome === "failed" ? "failed" : "succeed" },
        { branchId: "02", op: "compensate", status: "prepared" },
        { branchId: "02", op: "action", status: done },
      ],
    });
  }

  tcc(gid: string, transfer: Transfer): void {
    this.intent(gid, "tcc", transfer);
    this.request(gid, "prepare");
    this.moves(gid, "tcc", "prepared");
    this.call(gid, "01", "try");
    this.effect(gid, "01", "try", transfer.from, -transfer.amount, transfer.amount);
    this.call(gid, "02", "try");
    this.effect(gid, "02", "try", transfer.to, 0);
    this.request(gid, "submit");
    this.change(gid, "tcc", "prepared", "submitted", "submit");
    this.call(gid, "02", "confirm");
    this.effect(gid, "02", "confirm", transfer.to, transfer.amount);
    this.call(gid, "01", "confirm");
    this.effect(gid, "01", "confirm", transfer.from, 0, -transfer.amount);
    this.change(gid, "tcc", "submitted", "succeed");
    this.final.push({
      gid,
      status: "succeed",
      transType: "tcc",
      branches: ["01", "02"].flatMap((b) => [{ branchId: b, op: "cancel", status: "prepared" }, { branchId: b, op: "confirm", status: "succeed" }]),
    });
  }

  xa(gid: string, transfer: Transfer): void {
    this.intent(gid, "xa", transfer);
    this.request(gid, "prepare");
    this.call(gid, "01", "action");
    this.effect(gid, "01", "action", transfer.from, -transfer.amount);
    this.call(gid, "02", "action");
    this.effect(gid, "02", "action", transfer.to, transfer.amount);
    this.request(gid, "submit");
    this.call(gid, "01", "commit");
    this.call(gid, "02", "commit");
    this.moves(gid, "xa", "prepared", "submitted", "succeed");
    this.final.push({
      gid,
      status: "succeed",
      transType: "xa",
      branches: ["01", "02"].flatMap((b) => [{ branchId: b, op: "rollback", status: "prepared" }, { branchId: b, op: "commit", status: "succeed" }]),
    });
  }

  msg(gid: string, transfer: Transfer): void {
    this.intent(gid, "msg", transfer);
    this.request(gid, "prepare");
    this.effect(gid, "00", "msg", transfer.from, -transfer.amount);
    this.request(gid, "submit");
    this.call(gid, "01", "action");
    this.effect(gid, "01", "action", transfer.to, transfer.amount);
    this.moves(gid, "msg", "prepared", "submitted", "succeed");
    this.final.push({ gid, status: "succeed", transType: "msg", branches: [{ branchId: "01", op: "action", status: "succeed" }] });
  }

  /** A workflow of two saga-style branches; failed: the second action fails, the first is rolled back. */
  workflow(gid: string, transfer: Transfer, outcome: Outcome = "succeed"): void {
    this.intent(gid, "workflow", transfer);
    this.request(gid, "prepareWorkflow", "ok", "prepared");
    this.change(gid, "workflow", null, "prepared");
    this.call(gid, "01", "action");
    this.effect(gid, "01", "action", transfer.from, -transfer.amount);
    if (outcome === "succeed") {
      this.call(gid, "02", "action");
      this.effect(gid, "02", "action", transfer.to, transfer.amount);
    } else {
      this.call(gid, "02", "action", "FAILURE");
      this.call(gid, "01", "rollback");
      this.effect(gid, "01", "rollback", transfer.from, transfer.amount);
    }
    this.request(gid, "submit", "ok", outcome);
    this.change(gid, "workflow", "prepared", outcome, "workflow-submit");
    const branch = (branchId: string, status: string): FinalTrans["branches"][number] => ({ branchId, op: "action", status });
    this.final.push({ gid, status: outcome, transType: "workflow", branches: outcome === "succeed" ? [branch("01", "succeed"), branch("02", "succeed")] : [branch("01", "succeed"), branch("02", "failed")] });
  }

  /** A nemesis fault from now for `ms`. */
  fault(fault: string, target: string, ms: number): void {
    this.nemesis.push({ at: this.tick(), phase: "start", fault, target });
    this.nemesis.push({ at: this.tick(ms), phase: "end", fault, target });
    this.lastFaultEndedAt = this.now;
  }

  input(): CheckInput & CheckData {
    if (this.lastFaultEndedAt === 0) this.lastFaultEndedAt = this.now;
    return {
      seed: 42,
      store: "postgres",
      profile: "smoke",
      paths: runPaths("/tmp/dtx-chaos-synthetic"),
      final: this.final,
      db: this.db,
      lastFaultEndedAt: this.lastFaultEndedAt,
      settledAt: this.settledAt ?? this.now,
      timings: SYNTHETIC_TIMINGS,
      startedAt: this.startedAt,
      endedAt: this.now,
      history: this.history,
      intents: this.intents,
      calls: this.calls,
      nemesis: this.nemesis,
      statusChanges: this.statusChanges,
    };
  }
}
