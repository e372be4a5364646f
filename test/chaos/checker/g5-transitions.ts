import type { Violation } from "../contracts.ts";
import type { RunIndex } from "./context.ts";
import { eventsAround, finalStatus, TERMINAL } from "./context.ts";
import type { GoalResult, StatusChange } from "./types.ts";

/**
 * The global status moves the coordinator may make, per trans type, as `from>to` (`none` = the
 * trans is created with that status). From server/src/core (saga.ts, msg.ts, phase-two.ts,
 * workflow.ts) and server/src/service (trans-service.ts, workflow-service.ts):
 * - saga: created prepared (prepare) or submitted; prepared → submitted (submit);
 *   submitted → succeed | aborting (an action FAILURE, a timeout, retry_limit); aborting → failed.
 * - msg: created prepared or submitted; prepared → submitted (submit, or QueryPrepared SUCCESS) |
 *   failed (abort, or QueryPrepared FAILURE); submitted → succeed (a msg never rolls back).
 * - tcc, xa: created prepared (or submitted by a bare submit); prepared → submitted | aborting
 *   (abort, timeout); submitted → succeed; aborting → failed.
 * - workflow: created prepared; prepared → succeed | failed (the SDK's submit).
 * - any type: a non-terminal status → failed by force-stop (cause "force-stop" only).
 */
export const LEGAL_TRANSITIONS: Readonly<Record<string, ReadonlySet<string>>> = {
  saga: new Set(["none>prepared", "none>submitted", "prepared>submitted", "submitted>succeed", "submitted>aborting", "aborting>failed"]),
  msg: new Set(["none>prepared", "none>submitted", "prepared>submitted", "prepared>failed", "submitted>succeed"]),
  tcc: new Set(["none>prepared", "none>submitted", "prepared>submitted", "prepared>aborting", "submitted>succeed", "aborting>failed"]),
  xa: new Set(["none>prepared", "none>submitted", "prepared>submitted", "prepared>aborting", "submitted>succeed", "aborting>failed"]),
  workflow: new Set(["none>prepared", "prepared>succeed", "prepared>failed"]),
};

/** Order of statuses as clients may observe them: a later observation never ranks lower. */
const RANK: Readonly<Record<string, number>> = { prepared: 0, submitted: 1, aborting: 2, succeed: 3, failed: 3 };

function isLegal(change: StatusChange, type: string | undefined): boolean {
  if (change.cause === "force-stop") return change.from !== null && !TERMINAL.has(change.from) && change.to === "failed";
  const legal = type === undefined ? undefined : LEGAL_TRANSITIONS[type];
  const key = `${change.from ?? "none"}>${change.to}`;
  // Without a known type, any type's move is accepted (a terminal status still never changes).
  return legal ? legal.has(key) : Object.values(LEGAL_TRANSITIONS).some((set) => set.has(key));
}

function typeOf(index: RunIndex, gid: string, change: StatusChange): string | undefined {
  const kind = index.intents.get(gid)?.kind;
  if (kind !== undefined) return kind === "saga-dag" ? "saga" : kind;
  return change.transType ?? index.final.get(gid)?.transType;
}

function logViolations(index: RunIndex, changes: StatusChange[]): Violation[] {
  const out: Violation[] = [];
  const byGid = new Map<string, StatusChange[]>();
  for (const c of changes) byGid.set(c.gid, [...(byGid.get(c.gid) ?? []), c]);
  for (const [gid, list] of byGid) {
    list.sort((a, b) => a.at - b.at);
    const leftFrom = new Map<string, StatusChange>();
    for (const c of list) {
      const around = (): unknown[] => [...list.map((l) => ({ statusChange: l })), ...eventsAround(index, gid, c.at)];
      if (!isLegal(c, typeOf(index, gid, c))) {
        out.push({ goal: "G5", gid, message: `illegal transition ${c.from ?? "none"} → ${c.to} (${c.cause ?? "?"}, coordinator ${c.coordinator})`, events: around() });
      }
      const key = c.from ?? "none";
      const earlier = leftFrom.get(key);
      if (earlier) {
        out.push({ goal: "G5", gid, message: `two writes left ${key}: → ${earlier.to} (coordinator ${earlier.coordinator}) and → ${c.to} (coordinator ${c.coordinator})`, events: around() });
      }
      leftFrom.set(key, c);
    }
    // A change logged once the final statuses were being read may be missing from them (a run that never settled).
    const readAt = index.input.finalReadAt ?? Number.POSITIVE_INFINITY;
    const terminal = list.filter((c) => TERMINAL.has(c.to) && c.at < readAt).at(-1);
    const status = finalStatus(index, gid);
    if (terminal && status !== terminal.to) {
      out.push({ goal: "G5", gid, message: `logged terminal ${terminal.to} but the final status is ${status ?? "absent"}`, events: eventsAround(index, gid, terminal.at) });
    }
  }
  return out;
}

/**
 * Statuses the clients saw (`ok` completions that carry one) never go backwards: when A's `ok`
 * came before B was invoked, rank(B) ≥ rank(A), and once a terminal status was seen any later one
 * is that same status; the final status agrees too.
 */
function historyViolations(index: RunIndex): Violation[] {
  const out: Violation[] = [];
  for (const [gid, events] of index.history) {
    const seen: Array<{ at: number; status: string }> = [];
    for (const e of events) {
      if (e.type === "ok" && e.status !== undefined && e.status in RANK) seen.push({ at: e.at, status: e.status });
    }
    const fin = finalStatus(index, gid);
    for (const e of events) {
      if (e.type !== "ok" || e.status === undefined || !(e.status in RANK)) continue;
      const invokedAt = index.invokes.get(e.id)?.at ?? e.at;
      const before = seen.filter((s) => s.at < invokedAt);
      const worst = before.find((s) => RANK[s.status]! > RANK[e.status!]! || (TERMINAL.has(s.status) && s.status !== e.status));
      if (worst) out.push({ goal: "G5", gid, message: `status went backwards: a client saw ${worst.status}, then later ${e.status}`, events: eventsAround(index, gid, e.at) });
    }
    const lastTerminal = seen.filter((s) => TERMINAL.has(s.status)).at(-1);
    if (lastTerminal && fin !== undefined && fin !== lastTerminal.status) {
      out.push({ goal: "G5", gid, message: `a client saw ${lastTerminal.status}, but the final status is ${fin}`, events: eventsAround(index, gid, lastTerminal.at) });
    }
  }
  return out;
}

const BRANCH_STATUSES: ReadonlySet<string> = new Set(["prepared", "succeed", "failed"]);

/** Final statuses outside the enums (server/src/core/types.ts): a global's, or any of its branches'. */
function enumViolations(index: RunIndex): Violation[] {
  const out: Violation[] = [];
  for (const trans of index.final.values()) {
    const odd = trans.branches.filter((b) => !BRANCH_STATUSES.has(b.status)).map((b) => `${b.branchId}/${b.op}=${b.status}`);
    if (trans.status !== undefined && !(trans.status in RANK)) odd.unshift(`global=${trans.status}`);
    if (odd.length > 0) out.push({ goal: "G5", gid: trans.gid, message: `statuses outside the enum: ${odd.join(", ")}`, events: eventsAround(index, trans.gid) });
  }
  return out;
}

/**
 * **G5: only legal status transitions; a terminal status never changes.**
 *
 * Definition: every "status changed" line the coordinators logged (`{gid, transType, from, to,
 * cause}`, pino debug, from `coordinator-<i>.log`) is a move of {@link LEGAL_TRANSITIONS} for the
 * gid's type (force-stop: any non-terminal → failed); no status is left twice (two writers that
 * both won a CAS from the same status); and the last terminal status logged is the final one.
 * Also, statuses clients observed in `ok` completions never go backwards in real time (see
 * historyViolations). And every final status, global or branch, is one of the enum's.
 * Lines lost when a coordinator was killed between its write and its log are not an error: the
 * rule judges the moves it sees.
 */
export function checkTransitions(index: RunIndex): GoalResult {
  const changes = index.statusChanges;
  const violations = [...(changes ? logViolations(index, changes) : []), ...historyViolations(index), ...enumViolations(index)];
  const stored = [...index.final.values()].some((f) => f.status !== undefined);
  let source = changes ? `${changes.length} logged transitions` : "no coordinator log (history only)";
  if (changes?.length === 0 && stored) source = "no status lines in the coordinator logs (not started at log level debug?), history only";
  return { goal: "G5", violations, detail: `${source}; ${violations.length} illegal` };
}
