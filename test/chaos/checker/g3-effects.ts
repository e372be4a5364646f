import type { Kind, Violation } from "../contracts.ts";
import type { RunIndex } from "./context.ts";
import { eventsAround, finalStatus, kindOf } from "./context.ts";
import { applied, branchIds, effectRows } from "./effects.ts";
import type { GoalResult } from "./types.ts";

/** A rule broken on one branch, in words. */
type Problem = string;

function n(index: RunIndex, gid: string, branchId: string, op: string): number {
  return applied(index, gid, branchId, op) ?? 0;
}

/** The coordinator's branch ids of a gid that carry `op` (the branches it was meant to drive). */
function coordinatorBranches(index: RunIndex, gid: string, op: string): string[] {
  return [...new Set((index.final.get(gid)?.branches ?? []).filter((b) => b.op === op).map((b) => b.branchId))];
}

function sagaProblems(index: RunIndex, gid: string, status: string): Problem[] {
  const out: Problem[] = [];
  for (const id of status === "succeed" ? coordinatorBranches(index, gid, "action") : []) {
    if (applied(index, gid, id, "action") === undefined) out.push(`branch ${id}: the saga succeeded but its action left no trace (no effect row, no barrier)`);
  }
  for (const id of branchIds(index, gid)) {
    const action = n(index, gid, id, "action");
    const compensate = n(index, gid, id, "compensate");
    if (status === "succeed" && (action !== 1 || compensate !== 0)) out.push(`branch ${id}: succeed needs action=1 compensate=0, found action=${action} compensate=${compensate}`);
    if (status === "failed" && action !== compensate) out.push(`branch ${id}: failed needs action=compensate, found action=${action} compensate=${compensate}`);
  }
  return out;
}

function tccProblems(index: RunIndex, gid: string, status: string): Problem[] {
  const out: Problem[] = [];
  for (const id of status === "succeed" ? coordinatorBranches(index, gid, "confirm") : []) {
    if (applied(index, gid, id, "try") === undefined) out.push(`branch ${id}: the TCC succeeded but its try left no trace`);
  }
  for (const id of branchIds(index, gid)) {
    const [tried, confirmed, cancelled] = [n(index, gid, id, "try"), n(index, gid, id, "confirm"), n(index, gid, id, "cancel")];
    const found = `found try=${tried} confirm=${confirmed} cancel=${cancelled}`;
    if (status === "succeed" && (tried !== 1 || confirmed !== 1 || cancelled !== 0)) out.push(`branch ${id}: succeed needs try=confirm=1 cancel=0, ${found}`);
    if (status === "failed" && (confirmed !== 0 || tried !== cancelled)) out.push(`branch ${id}: failed needs confirm=0 try=cancel, ${found}`);
  }
  return out;
}

function msgProblems(index: RunIndex, gid: string, status: string): Problem[] {
  const out: Problem[] = [];
  if (status === "succeed") {
    for (const id of coordinatorBranches(index, gid, "action")) {
      const action = applied(index, gid, id, "action");
      if (action !== 1) out.push(`branch ${id}: a succeeded msg needs action=1, found ${action ?? "no trace"}`);
    }
  }
  if (status === "failed") {
    const rows = (index.effects.get(gid) ?? []).length;
    if (rows > 0) out.push(`a failed msg (its local transaction did not commit) has ${rows} effect rows`);
    const committed = (index.barriers.get(gid) ?? []).filter((b) => b.op === "msg" && b.reason === "msg");
    if (committed.length > 0) out.push(`a failed msg has the sender's committed barrier (op msg, reason msg) in ${committed.map((b) => b.db).join(", ")}`);
  }
  return out;
}

function xaProblems(index: RunIndex, gid: string, status: string): Problem[] {
  const out: Problem[] = [];
  const rows = index.effects.get(gid) ?? [];
  if (status === "succeed") {
    for (const id of coordinatorBranches(index, gid, "commit")) {
      if (!rows.some((e) => e.branchId === id)) out.push(`branch ${id}: the XA succeeded but the branch's local work is not committed (no effect row)`);
    }
  }
  if (status === "failed" && rows.length > 0) out.push(`the XA failed but ${rows.length} effect rows are committed (branches ${[...new Set(rows.map((e) => e.branchId))].join(", ")})`);
  return out;
}

/**
 * Workflows mix saga, TCC and XA branches, and name their ops as the workflow SDK does: the
 * branch's call is `action` (a saga action or a TCC try), its callbacks `commit` (a confirm) and
 * `rollback` (a compensation or cancel; the Redis barrier keys it as `compensate`). So per branch,
 * with forward = n(action)+n(try), commit = n(commit)+n(confirm), undo = n(rollback)+n(compensate)+n(cancel):
 * succeed ⇒ undo=0 ∧ commit ≤ forward; failed ⇒ commit=0 ∧ undo=forward. An XA branch's effect
 * row (op action) exists only once its XA transaction committed, which the same rules cover.
 */
function workflowProblems(index: RunIndex, gid: string, status: string): Problem[] {
  const out: Problem[] = [];
  for (const id of branchIds(index, gid)) {
    const sum = (...ops: string[]): number => ops.reduce((total, op) => total + n(index, gid, id, op), 0);
    const [forward, commit, undo] = [sum("action", "try"), sum("commit", "confirm"), sum("rollback", "compensate", "cancel")];
    const found = `found forward=${forward} commit=${commit} undo=${undo}`;
    if (status === "succeed" && (undo !== 0 || commit > forward)) out.push(`branch ${id}: a succeeded workflow needs undo=0 and commit ≤ forward, ${found}`);
    if (status === "failed" && (commit !== 0 || undo !== forward)) out.push(`branch ${id}: a failed workflow needs commit=0 and undo=forward, ${found}`);
  }
  return out;
}

const RULES: Record<Kind, (index: RunIndex, gid: string, status: string) => Problem[]> = {
  saga: sagaProblems,
  "saga-dag": sagaProblems,
  tcc: tccProblems,
  msg: msgProblems,
  xa: xaProblems,
  workflow: workflowProblems,
};

/** Effects of a gid no coordinator knows: nothing may have been applied for it. */
function strayProblems(index: RunIndex, gid: string): Problem[] {
  const out: Problem[] = [];
  for (const id of branchIds(index, gid)) {
    for (const op of ["action", "compensate", "try", "confirm", "cancel", "commit", "rollback", "msg"]) {
      const count = applied(index, gid, id, op) ?? 0;
      if (count > 0) out.push(`branch ${id} op ${op} applied ${count} time(s) though no coordinator knows the gid`);
    }
  }
  return out;
}

/**
 * **G3: no business effect applied twice, and effects agree with the final status.**
 *
 * With n(op) the times a branch's op was applied (effects.ts `applied`: effect rows for SQL
 * accounts; barrier keys for Redis accounts, whose double application only G4 can see):
 * - every kind: n(op) ≤ 1 per (gid, branch, op) (idempotency: the effect journal has no unique key);
 * - saga: succeed ⇒ n(action)=1 ∧ n(compensate)=0 for every branch, and every coordinator action
 *   branch left a trace; failed ⇒ n(action)=n(compensate) (no null compensation applied, no
 *   hanging action after its compensation, nothing left uncompensated);
 * - TCC: succeed ⇒ n(try)=n(confirm)=1 ∧ n(cancel)=0; failed ⇒ n(confirm)=0 ∧ n(try)=n(cancel);
 * - msg: succeed ⇒ n(action)=1 for each branch; failed ⇒ no effect rows and no committed sender
 *   barrier (op msg, reason msg);
 * - XA: succeed ⇒ every branch has its effect rows; failed ⇒ none at all;
 * - workflow: the saga and TCC pair rules on the workflow's op names (see workflowProblems);
 * - a gid no coordinator knows: nothing applied.
 * Non-terminal gids are checked for idempotency only (G1/G2 report them).
 */
export function checkEffects(index: RunIndex): GoalResult {
  const violations: Violation[] = [];
  let doubles = 0;
  for (const [gid, rows] of index.effects) {
    const seen = new Set<string>();
    for (const e of rows) {
      const key = `${e.branchId}/${e.op}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const count = effectRows(index, gid, e.branchId, e.op);
      if (count <= 1) continue;
      doubles++;
      violations.push({ goal: "G3", gid, message: `branch ${e.branchId} op ${e.op} applied ${count} times (account ${e.account}, amount ${e.amount})`, events: eventsAround(index, gid) });
    }
  }
  for (const gid of index.gids) {
    const status = finalStatus(index, gid);
    const kind = kindOf(index, gid);
    let problems: Problem[] = [];
    if (status === undefined) problems = strayProblems(index, gid);
    else if ((status === "succeed" || status === "failed") && kind !== undefined) problems = RULES[kind](index, gid, status);
    for (const problem of problems) {
      violations.push({ goal: "G3", gid, message: `${kind ?? "gid"} ${gid} (${status ?? "absent"}): ${problem}`, events: eventsAround(index, gid) });
    }
  }
  return { goal: "G3", violations, detail: `${doubles} doubly applied, ${violations.length - doubles} inconsistent with the final status` };
}
