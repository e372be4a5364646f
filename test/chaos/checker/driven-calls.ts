import type { Kind } from "../contracts.ts";
import type { CallSpan } from "./calls.ts";
import type { RunIndex } from "./context.ts";
import { kindOf } from "./context.ts";

/**
 * Whether only the coordinator (not the application) makes this kind's calls of `op`: a TCC's
 * try and an XA branch's local work are called by the application through the SDK; a workflow's
 * branches too (a resumed workflow may legally re-run a branch that is still in flight, the
 * barrier makes that safe); and a msg's check-back (`op=msg`, branch 00) is called by the SDK's
 * doAndSubmit itself when its local transaction's outcome is unknown, as well as by the
 * coordinator. The participant cannot tell those callers apart, so G7 and G8 leave them out.
 */
export function coordinatorDriven(kind: Kind | undefined, op: string): boolean {
  if (kind === "workflow") return false;
  if (kind === "msg") return op !== "msg";
  if (kind === "tcc") return op !== "try";
  if (kind === "xa") return op === "commit" || op === "rollback";
  return true;
}

/** The coordinator-driven calls of each (gid, branch, op), each list in start order. */
export function drivenCallGroups(index: RunIndex): Map<string, CallSpan[]> {
  const out = new Map<string, CallSpan[]>();
  for (const [gid, spans] of index.calls) {
    const kind = kindOf(index, gid);
    for (const span of spans) {
      if (!coordinatorDriven(kind, span.op)) continue;
      const key = `${gid} ${span.branchId} ${span.op}`;
      const list = out.get(key);
      if (list) list.push(span);
      else out.set(key, [span]);
    }
  }
  return out;
}
