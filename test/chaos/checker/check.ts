import type { Goal, Report } from "../contracts.ts";
import { buildIndex } from "./context.ts";
import type { RunIndex } from "./context.ts";
import { checkCoverage } from "./coverage.ts";
import { acknowledgedGids, checkAcknowledged } from "./g1-acknowledged.ts";
import { checkSettled, settleMs } from "./g2-settled.ts";
import { checkEffects } from "./g3-effects.ts";
import { checkConservation } from "./g4-conservation.ts";
import { checkTransitions } from "./g5-transitions.ts";
import { checkPreparedXa } from "./g6-prepared-xa.ts";
import { checkOverlap } from "./g7-overlap.ts";
import { checkCadence } from "./g8-cadence.ts";
import type { CheckData, CheckInput, GoalResult } from "./types.ts";

export type { CheckData, CheckInput } from "./types.ts";

function transactionCounts(index: RunIndex, acknowledged: number): Report["transactions"] {
  const byKind: Record<string, number> = {};
  for (const intent of index.intents.values()) byKind[intent.kind] = (byKind[intent.kind] ?? 0) + 1;
  const byFinalStatus: Record<string, number> = {};
  for (const gid of index.gids) {
    const status = index.final.get(gid)?.status ?? "absent";
    byFinalStatus[status] = (byFinalStatus[status] ?? 0) + 1;
  }
  return { invoked: index.history.size, acknowledged, byKind, byFinalStatus };
}

/** Nemesis faults by name (their `start` lines), and branch faults as `branch:<fault>` (participants' `end` lines). */
function faultCounts(index: RunIndex): Record<string, number> {
  const faults: Record<string, number> = {};
  for (const n of index.nemesis) if (n.phase === "start") faults[n.fault] = (faults[n.fault] ?? 0) + 1;
  for (const spans of index.calls.values()) {
    for (const c of spans) if (c.fault !== undefined) faults[`branch:${c.fault}`] = (faults[`branch:${c.fault}`] ?? 0) + 1;
  }
  return faults;
}

/**
 * Checks a finished run against G1–G8 (each rule's exact definition is the TSDoc of its
 * gN-*.ts file) and the coverage guard. Pure: everything comes in as data (main.ts reads it from a
 * run directory; the world passes what it just collected).
 */
export function check(input: CheckInput & CheckData): Report {
  const index = buildIndex(input, input);
  const acknowledged = acknowledgedGids(index);
  const g1 = checkAcknowledged(index);
  const reportedUnderG1 = new Set(g1.violations.flatMap((v) => (v.gid === undefined ? [] : [v.gid])));
  const results: GoalResult[] = [
    g1,
    checkSettled(index, reportedUnderG1),
    checkEffects(index),
    checkConservation(index),
    checkTransitions(index),
    checkPreparedXa(index),
    checkOverlap(index),
    checkCadence(index),
  ];
  const goals = {} as Report["goals"];
  for (const r of results) {
    goals[r.goal] = { ok: r.violations.length === 0, violations: r.violations.length };
    if (r.detail !== undefined) goals[r.goal].detail = r.detail;
  }
  const coverage = checkCoverage(index, acknowledged);
  let first = Infinity;
  let last = -Infinity;
  for (const events of index.history.values()) {
    for (const e of events) {
      first = Math.min(first, e.at);
      last = Math.max(last, e.at);
    }
  }
  return {
    seed: input.seed,
    store: input.store,
    profile: input.profile,
    startedAt: input.startedAt ?? (Number.isFinite(first) ? first : 0),
    endedAt: input.endedAt ?? input.settledAt ?? (Number.isFinite(last) ? last : 0),
    transactions: transactionCounts(index, acknowledged.size),
    faults: faultCounts(index),
    settleMs: settleMs(index),
    goals,
    coverage,
    skippedLines: input.skippedLines ?? {},
    ok: results.every((r) => r.violations.length === 0) && coverage.ok,
    violations: results.flatMap((r) => r.violations),
  };
}

/** The goals in report order. */
export const GOALS: readonly Goal[] = ["G1", "G2", "G3", "G4", "G5", "G6", "G7", "G8"];
