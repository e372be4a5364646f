import type { Violation } from "../contracts.ts";
import type { RunIndex } from "./context.ts";
import { eventsAround, finalStatus, TERMINAL } from "./context.ts";
import type { GoalResult } from "./types.ts";

/**
 * The ops whose `ok` means "the coordinator has stored this gid": submit (every kind; for XA,
 * TCC and workflow it is the global's submit, after the branches), prepare, prepareWorkflow,
 * registerBranch and abort.
 */
const STORING_OPS: ReadonlySet<string> = new Set(["submit", "prepare", "prepareWorkflow", "registerBranch", "abort"]);

/** Gids with an `ok` completion of a submit, with that completion's time. */
export function acknowledgedGids(index: RunIndex): Map<string, number> {
  return new Map([...okGids(index, (op) => op === "submit")].map(([gid, ok]) => [gid, ok.at]));
}

/** The first `ok` completion of a wanted op per gid: its time and op. */
function okGids(index: RunIndex, wanted: (op: string) => boolean): Map<string, { at: number; op: string }> {
  const out = new Map<string, { at: number; op: string }>();
  for (const [gid, events] of index.history) {
    for (const e of events) {
      if (e.type !== "ok") continue;
      const invoke = index.invokes.get(e.id);
      if (invoke && wanted(invoke.op) && !out.has(gid)) out.set(gid, { at: e.at, op: invoke.op });
    }
  }
  return out;
}

/**
 * **G1: no acknowledged transaction is lost.**
 *
 * Definition: a gid is *acknowledged* when the history holds an `ok` completion of its `submit`
 * (for XA, TCC and workflow the global's submit; for msg the submit, sent after the sender's
 * local transaction). Every acknowledged gid must exist in the final coordinator state with a
 * terminal status (`succeed` or `failed`).
 *
 * Also under G1, because each is a write the coordinator confirmed:
 * - a gid whose `prepare`, `prepareWorkflow`, `registerBranch` or `abort` got `ok` must exist
 *   (stored) and end terminal;
 * - a msg whose sender vanished after its local commit (Intent.senderVanishes) was never
 *   acknowledged by a submit, but once stored (its prepare) it must end terminal too: the
 *   coordinator must find its fate through QueryPrepared.
 *
 * A violation names the gid, its final status (or "absent") and its history lines.
 */
export function checkAcknowledged(index: RunIndex): GoalResult {
  const violations: Violation[] = [];
  const acknowledged = acknowledgedGids(index);
  const confirmed = okGids(index, (op) => STORING_OPS.has(op));
  const lost: string[] = [];
  for (const [gid, ok] of confirmed) {
    const status = finalStatus(index, gid);
    if (status !== undefined && TERMINAL.has(status)) continue;
    const what = acknowledged.has(gid) ? "acknowledged submit" : `acknowledged ${ok.op}`;
    if (status === undefined) lost.push(gid);
    violations.push({
      goal: "G1",
      gid,
      message: status === undefined ? `${what} lost: no coordinator knows ${gid}` : `${what} of ${gid} is not terminal: ${status}`,
      events: eventsAround(index, gid, ok.at),
    });
  }
  for (const intent of index.intents.values()) {
    if (!intent.senderVanishes || confirmed.has(intent.gid)) continue;
    const status = finalStatus(index, intent.gid);
    if (status === undefined || TERMINAL.has(status)) continue;
    violations.push({
      goal: "G1",
      gid: intent.gid,
      message: `msg ${intent.gid} whose sender vanished is stored but not terminal: ${status} (QueryPrepared never decided it)`,
      events: eventsAround(index, intent.gid),
    });
  }
  return {
    goal: "G1",
    violations,
    detail: `${acknowledged.size} acknowledged, ${lost.length} lost, ${violations.length - lost.length} not terminal`,
  };
}
