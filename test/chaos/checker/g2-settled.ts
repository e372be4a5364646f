import type { Violation } from "../contracts.ts";
import type { RunIndex } from "./context.ts";
import { eventsAround, TERMINAL } from "./context.ts";
import type { GoalResult } from "./types.ts";

/** Time from the end of the last fault to the moment every acknowledged gid was terminal (ms), or null. */
export function settleMs(index: RunIndex): number | null {
  const { settledAt, lastFaultEndedAt } = index.input;
  return settledAt === null ? null : Math.max(0, settledAt - lastFaultEndedAt);
}

/**
 * **G2: everything converges after the faults stop.**
 *
 * Definition: the world's quiesce saw every acknowledged gid terminal (`settledAt` not null), and
 * `settledAt - lastFaultEndedAt` is at most 60 s (`Tolerances.settleLimitMs`); that difference is
 * the run's *time to settle*. And every gid the coordinators store at the end (acknowledged or
 * not: an `info` submit, a prepared TCC whose client died) is terminal: a stored gid that is still
 * `prepared`, `submitted` or `aborting` is a violation naming it. (Acknowledged gids that are not
 * terminal are reported under G1, not twice here.)
 */
export function checkSettled(index: RunIndex, reportedUnderG1: ReadonlySet<string>): GoalResult {
  const violations: Violation[] = [];
  const settle = settleMs(index);
  const limit = index.tolerances.settleLimitMs;
  if (settle === null) {
    violations.push({ goal: "G2", message: `not every acknowledged gid was terminal when quiesce gave up`, events: eventsAround(index, undefined, index.input.lastFaultEndedAt) });
  } else if (settle > limit) {
    violations.push({ goal: "G2", message: `took ${settle} ms to settle after the last fault ended (limit ${limit} ms)`, events: eventsAround(index, undefined, index.input.lastFaultEndedAt) });
  }
  let unfinished = 0;
  for (const trans of index.final.values()) {
    if (trans.status === undefined || TERMINAL.has(trans.status) || reportedUnderG1.has(trans.gid)) continue;
    unfinished++;
    violations.push({ goal: "G2", gid: trans.gid, message: `stored gid ${trans.gid} is not terminal at the end: ${trans.status}`, events: eventsAround(index, trans.gid) });
  }
  const settled = settle === null ? "never settled" : `settled ${(settle / 1000).toFixed(1)} s after the last fault`;
  return { goal: "G2", violations, detail: `${settled}; ${unfinished} unacknowledged stored gids not terminal` };
}
