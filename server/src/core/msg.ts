import type { Decision, Pass, Processor } from "./pass.ts";
import { retryKindOf } from "./pass.ts";
import type { TimingConfig } from "./retry.ts";
import { isTimedOut } from "./retry.ts";

/** The `delay` of a msg's custom_data in ms (the key is matched case-insensitively, as dtm does). */
export function msgDelay(customData: string): number {
  if (!customData) return 0;
  try {
    const parsed: unknown = JSON.parse(customData);
    if (parsed === null || typeof parsed !== "object") return 0;
    for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
      if (key.toLowerCase() === "delay" && typeof value === "number" && Number.isFinite(value) && value > 0) return value * 1000;
    }
  } catch {
    return 0;
  }
  return 0;
}

const EMPTY = new Uint8Array(0);

/**
 * Two-phase message (PROTOCOL §7.2). A prepared msg whose sender went quiet past its timeout is
 * checked back through `query_prepared`: SUCCESS submits it, FAILURE fails it, anything else waits.
 * A submitted msg calls every branch (in order, or all at once when `concurrent`) until each has
 * succeeded; it never rolls back.
 */
export function msgProcessor(cfg: TimingConfig): Processor {
  return {
    decide(pass: Pass, now: number): Decision {
      if (pass.trans.status === "prepared") return decidePrepared(pass, now, cfg);
      if (pass.trans.status !== "submitted") return { kind: "done" };
      const delay = msgDelay(pass.trans.customData);
      if (delay > 0 && now < pass.trans.createTime + delay) return { kind: "stop", retry: "keep", at: pass.trans.createTime + delay };
      const pending = pass.branches.map((b, i) => (b.op === "action" && b.status !== "succeed" ? i : -1)).filter((i) => i >= 0);
      if (pending.length === 0) return { kind: "transition", to: "succeed" };
      const startable = pending.filter((i) => !pass.inFlight.has(i) && !pass.parked.has(i));
      if (pass.trans.options.concurrent) {
        if (startable.length > 0) return { kind: "invoke", indexes: startable };
        return pass.inFlight.size > 0 ? { kind: "await" } : { kind: "stop", retry: retryKindOf(pass) };
      }
      const first = pending[0]!;
      if (pass.inFlight.has(first)) return { kind: "await" };
      if (pass.parked.has(first)) return { kind: "stop", retry: retryKindOf(pass) };
      return { kind: "invoke", indexes: [first] };
    },
    failureIsTerminal: () => false,
  };
}

function decidePrepared(pass: Pass, now: number, cfg: TimingConfig): Decision {
  if (!isTimedOut(pass.trans, now, cfg)) return { kind: "done" };
  const answer = pass.checkBack;
  if (answer === undefined) return { kind: "checkBack", op: "msg", body: EMPTY };
  if (answer.kind === "success") return { kind: "transition", to: "submitted" };
  if (answer.kind === "failure") return { kind: "transition", to: "failed", reason: `query_prepared answered FAILURE: ${answer.message}` };
  return { kind: "stop", retry: answer.kind === "ongoing" ? "reset" : "backoff" };
}
