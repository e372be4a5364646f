import type { Violation } from "../contracts.ts";
import type { CallSpan } from "./calls.ts";
import type { RunIndex } from "./context.ts";
import { eventsAround, resumedShortlyBefore } from "./context.ts";
import { drivenCallGroups } from "./driven-calls.ts";
import type { GoalResult } from "./types.ts";

/**
 * **G7: no two coordinators drove one branch at once (seen from the participant).**
 *
 * Definition: for two calls c1, c2 of one (gid, branch id, op) with c1.start ≤ c2.start, it is a
 * violation when
 *
 *     c2.start < min(c1.end, c1.start + requestTimeout) − overlapMs
 *
 * Why this window: a pass calls a branch and waits at most `requestTimeout` for the answer; only
 * then may it (or, once the lease has run out, another coordinator) call again. So while c1 is
 * running *and* its caller is still waiting for it, nobody may start c2: that would be two
 * drivers at once (a lease that did not exclude, a fencing token not checked). A call that runs
 * past its caller's deadline (a "late" branch fault, a participant stuck) may legally be
 * overlapped by the retry after that deadline: the barrier, not the coordinator, protects that
 * case. A participant killed mid-call leaves a start without an end: the call ends at the
 * participant's kill event (calls.ts); if even that is unknown it ends at the caller's deadline.
 * `overlapMs` (Tolerances, default 50 ms) absorbs the timestamps of two processes taken on one
 * busy machine. Calls the application makes (TCC try, XA local work, workflows) are left out
 * (driven-calls.ts).
 *
 * Excused, and counted apart: a c1 that reached the participant at most `requestTimeout` after a
 * coordinator was resumed from SIGSTOP. Its pass started it before the pause, under a lease and
 * deadline that ran out while the process was frozen; the bytes left on resume, after which the
 * pass lost its claim and the next pass called again. Fencing cannot stop a frozen process's
 * request (docs/fencing.md, "Limits"); the barrier keeps it harmless (G3 checks that). Found by
 * the smoke profile, seed 20261206, sqlite (c20261206-301).
 */
export function checkOverlap(index: RunIndex): GoalResult {
  const violations: Violation[] = [];
  const timeout = index.input.timings.requestTimeoutMs;
  const tolerance = index.tolerances.overlapMs;
  let pairs = 0;
  let excused = 0;
  for (const spans of drivenCallGroups(index).values()) {
    for (let i = 0; i < spans.length; i++) {
      const c1 = spans[i]!;
      const busyUntil = Math.min(c1.end ?? Infinity, c1.start + timeout) - tolerance;
      const sentLate = resumedShortlyBefore(index, c1.start, timeout);
      for (let j = i + 1; j < spans.length && spans[j]!.start < busyUntil; j++) {
        if (sentLate) {
          excused++;
          continue;
        }
        pairs++;
        violations.push(overlapViolation(index, c1, spans[j]!, timeout));
      }
    }
  }
  return { goal: "G7", violations, detail: `${pairs} overlapping call pairs; ${excused} excused (the first call sent by a coordinator just resumed from SIGSTOP)` };
}

function overlapViolation(index: RunIndex, c1: CallSpan, c2: CallSpan, timeout: number): Violation {
  const ended = c1.end === undefined ? "no end" : `${c1.endedByKill ? "killed" : "ended"} at +${c1.end - c1.start} ms`;
  return {
    goal: "G7",
    gid: c1.gid,
    message: `branch ${c1.branchId} op ${c1.op}: call ${c2.callId} (pid ${c2.pid}) started ${c2.start - c1.start} ms after call ${c1.callId} (pid ${c1.pid}, ${ended}), within its ${timeout} ms deadline`,
    events: [{ call: c1 }, { call: c2 }, ...eventsAround(index, c1.gid, c2.start)],
  };
}
