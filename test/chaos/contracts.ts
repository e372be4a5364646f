/**
 * The chaos harness's shared shapes: what each part writes into the run directory and what the
 * checker reads back. One run = one store, one seed, one profile; everything lives under
 * `RunPaths.dir` (`/tmp/dtx-chaos-<store>-<seed>/` unless --dir is given). docs/chaos.md explains
 * the harness; RELIABILITY goals G1–G8 are the checker's rules.
 *
 * Times are `Date.now()` milliseconds of the machine (every process runs on this one machine).
 */

export type StoreKind = "sqlite" | "postgres" | "mysql" | "redis";
export type ProfileName = "smoke" | "full";
export type Via = "http" | "grpc";
/** Where an account's balance lives: account id % 3 → 0 postgres, 1 mysql (MariaDB), 2 redis. */
export type AccountDb = "postgres" | "mysql" | "redis";
export type Kind = "saga" | "saga-dag" | "tcc" | "msg" | "xa" | "workflow";

export const ACCOUNT_COUNT = 200;
/** Accounts whose id % 10 === 9 start with LOW_BALANCE, so "insufficient balance" FAILUREs happen. */
export const LOW_BALANCE = 50;
export const INITIAL_BALANCE = 10_000;
export function accountDb(id: number): AccountDb {
  return (["postgres", "mysql", "redis"] as const)[id % 3]!;
}
export function initialBalance(id: number): number {
  return id % 10 === 9 ? LOW_BALANCE : INITIAL_BALANCE;
}

/** A move of `amount` from one account to another; one global transaction has one or more. */
export interface Transfer {
  from: number;
  to: number;
  amount: number;
}

/** Files of one run, all JSON Lines except the report. */
export interface RunPaths {
  dir: string;
  /** ClientEvent lines, appended by the load generator. */
  history: string;
  /** Intent lines: what each gid was meant to do, written before its first invoke. */
  intents: string;
  /** ParticipantCall lines, appended by every participant process (one file, O_APPEND). */
  calls: string;
  /** NemesisEvent lines. */
  nemesis: string;
  /** One JSON object: the Report. */
  report: string;
  /** Coordinator i's stdout (pino JSON) goes to `coordinator-<i>.log`. */
  logDir: string;
  /** FinalTrans[] of every gid of the run, written by the world after quiesce (JSON array). */
  final: string;
  /** The DatabaseState after quiesce (JSON object). */
  db: string;
  /** The RunInfo (JSON object): seed, store, profile, timings, when faults ended and when all settled. */
  run: string;
}

export function runPaths(dir: string): RunPaths {
  return {
    dir,
    history: `${dir}/history.jsonl`,
    intents: `${dir}/intents.jsonl`,
    calls: `${dir}/calls.jsonl`,
    nemesis: `${dir}/nemesis.jsonl`,
    report: `${dir}/report.json`,
    logDir: dir,
    final: `${dir}/final.json`,
    db: `${dir}/db.json`,
    run: `${dir}/run.json`,
  };
}

/** What the load generator meant a gid to do (known before it starts). */
export interface Intent {
  gid: string;
  kind: Kind;
  via: Via;
  transfers: Transfer[];
  /**
   * Msg only: the sender commits its local transaction and then vanishes without calling submit,
   * as if killed between commit and submit; the coordinator must find out by QueryPrepared.
   */
  senderVanishes?: boolean;
  /** A deliberate second submit of the same gid (same body), sent concurrently with the first. */
  duplicate?: boolean;
  /**
   * Sagas only: after the first submit was answered, the same gid is submitted again with a
   * different body (every amount + 1). Expected: a 409 refusal (`fail`) when the saga had
   * finished, or a 200 that changes nothing (a resubmit continues the stored branches,
   * docs/deviations.md D2). Either way only `transfers` may ever apply.
   */
  conflict?: boolean;
}

/**
 * Jepsen-style client history: an `invoke`, then exactly one completion with the same `id`:
 * `ok` (the coordinator acknowledged), `fail` (a definite refusal: nothing was or will be done by
 * this request) or `info` (unknown: timeout, connection lost, 503; the operation may or may not
 * have taken effect). A process that dies leaves invokes without completion: they count as `info`.
 */
export type ClientOp = "submit" | "prepare" | "abort" | "query" | "registerBranch" | "prepareWorkflow";
export type ClientEvent =
  | {
      type: "invoke";
      id: number;
      at: number;
      gid: string;
      op: ClientOp;
      via: Via;
      coordinator: number;
      /** 1 for the first send of a request; 2..4 for the same request re-sent after an unknown (`info`) outcome. */
      attempt?: number;
    }
  | { type: "ok"; id: number; at: number; gid: string; status?: string }
  | { type: "fail" | "info"; id: number; at: number; gid: string; error: string };

/**
 * Every branch call a participant receives, as two lines: `start` when the request arrives and
 * `end` when the answer is sent (or dropped). A participant killed mid-call leaves a `start` with
 * no `end`; the call counts as running until the participant's kill (a NemesisEvent).
 */
export type ParticipantCall =
  | { type: "start"; callId: string; pid: number; at: number; gid: string; branchId: string; op: string; path: string }
  | {
      type: "end";
      callId: string;
      pid: number;
      at: number;
      /** What the participant answered: the dtm result, or "DROPPED" (connection cut after commit). */
      result: "SUCCESS" | "FAILURE" | "ONGOING" | "ERROR" | "DROPPED";
      /** The branch fault injected on this call, if any (see BranchFault). */
      fault?: BranchFault;
    };

/**
 * Faults a participant injects per call, chosen by the seeded plan it is given:
 * error-before (500 before any effect), error-after (effect committed, then 500), drop-after
 * (effect committed, then the connection is destroyed), late (sleep past request_timeout, then do
 * the work), ongoing (425 before any effect), failure (409; only for action/try, where allowed).
 */
export type BranchFault = "error-before" | "error-after" | "drop-after" | "late" | "ongoing" | "failure";

/** One fault the nemesis injects: a `start` line when it begins and an `end` line when healed. */
export interface NemesisEvent {
  at: number;
  phase: "start" | "end";
  /** The fault's name, as its file in test/chaos/nemesis/faults/ exports it. */
  fault: string;
  /** e.g. "coordinator-1", "postgres", "participant-0". */
  target: string;
  detail?: Record<string, unknown>;
}

/** Final state of a gid as a coordinator reports it after quiesce. */
export interface FinalTrans {
  gid: string;
  /** undefined: no coordinator knows the gid. */
  status?: string;
  /** The coordinator's trans_type (saga, msg, tcc, xa, workflow), when the gid is stored. */
  transType?: string;
  branches: Array<{ branchId: string; op: string; status: string }>;
}

/** What the participants' databases hold at the end. */
export interface DatabaseState {
  /** Per account: balance and the amount held by unfinished TCC tries. */
  accounts: Array<{ id: number; balance: number; frozen: number }>;
  /**
   * Effect rows (SQL accounts: a table without unique key, written in the same local transaction
   * as the balance change and the barrier row). Redis accounts have no journal: their effects are
   * checked through balances and barrier keys.
   */
  effects: Array<{ gid: string; branchId: string; op: string; account: number; amount: number }>;
  /** Barrier rows / keys: gid, branch id, op, reason. */
  barriers: Array<{ gid: string; branchId: string; op: string; reason: string; db: AccountDb }>;
  /** XA transactions still prepared (pg_prepared_xacts, XA RECOVER). */
  preparedXa: Array<{ db: "postgres" | "mysql"; xid: string }>;
}

/** The coordinators' timings of a run (what the checker's cadence and overlap rules are measured against). */
export interface ChaosTimings {
  retryIntervalMs: number;
  maxRetryIntervalMs: number;
  cronIntervalMs: number;
  requestTimeoutMs: number;
  /** The coordinators' retry_jitter (fraction of the interval added at random; 0 when absent). */
  retryJitter?: number;
}

/**
 * `run.json`: what the world knows about a run besides the JSONL files, so that
 * `npm run chaos:check -- --dir <run dir>` can re-check it offline.
 */
export interface RunInfo {
  seed: number;
  store: StoreKind;
  profile: ProfileName;
  startedAt: number;
  endedAt: number;
  /** When the last fault was healed (its nemesis `end`), or when the load ended if no fault ran. */
  lastFaultEndedAt: number;
  /** When quiesce saw every acknowledged gid terminal, or null if it gave up (60 s). */
  settledAt: number | null;
  /**
   * When the harness began to read the final statuses (final.json). A run that never settled
   * still has coordinators at work while it reads, so a status change logged after this instant
   * may be missing from final.json; absent in runs recorded before it was kept.
   */
  finalReadAt?: number;
  timings: ChaosTimings;
}

export type Goal = "G1" | "G2" | "G3" | "G4" | "G5" | "G6" | "G7" | "G8";

export interface Violation {
  goal: Goal;
  gid?: string;
  message: string;
  /** The history, call and nemesis lines around it, for the reader. */
  events: unknown[];
}

export interface Report {
  seed: number;
  store: StoreKind;
  profile: ProfileName;
  startedAt: number;
  endedAt: number;
  transactions: { invoked: number; acknowledged: number; byKind: Record<string, number>; byFinalStatus: Record<string, number> };
  faults: Record<string, number>;
  /** Time from the end of the last fault until every acknowledged gid was terminal (ms), or null. */
  settleMs: number | null;
  goals: Record<Goal, { ok: boolean; violations: number; detail?: string }>;
  /**
   * The trivial-pass guard (after Restate): a run where too few gids were acknowledged and
   * succeeded proves nothing, so it fails even with no violation.
   */
  coverage: { ok: boolean; succeededShare: number; minShare: number; detail?: string };
  /** Unparseable JSONL lines skipped per file (a process killed mid-write leaves a torn line). */
  skippedLines: Record<string, number>;
  /** Every goal ok and coverage ok: the run passes. */
  ok: boolean;
  violations: Violation[];
}
