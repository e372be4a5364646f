import { describe, expect, it } from "vitest";
import { DtxError, DtxFailure, DtxOngoing } from "../../sdk/src/index.ts";
import { ACCOUNT_COUNT, accountDb } from "../chaos/contracts.ts";
import type { Kind } from "../chaos/contracts.ts";
import { classifyError } from "../chaos/load/outcome.ts";
import { DEFAULT_MIX, RATES, planTransaction } from "../chaos/load/plan.ts";
import type { PlanContext } from "../chaos/load/plan.ts";

const CTX: PlanContext = { seed: 42, mix: DEFAULT_MIX, coordinators: 2, participants: 2 };
const N = 4000;

describe("chaos load: the seeded mix", () => {
  it("is the same for the same seed and differs for another seed", () => {
    const a = Array.from({ length: 500 }, (_, n) => planTransaction(CTX, n));
    const b = Array.from({ length: 500 }, (_, n) => planTransaction(CTX, n));
    const other = Array.from({ length: 500 }, (_, n) => planTransaction({ ...CTX, seed: 43 }, n));
    expect(b).toEqual(a);
    expect(other.map((p) => p.intent.transfers)).not.toEqual(a.map((p) => p.intent.transfers));
    expect(a[7]!.intent.gid).toBe("c42-7");
  });

  it("does not depend on the order the transactions are planned in", () => {
    const forward = Array.from({ length: 200 }, (_, n) => planTransaction(CTX, n));
    const backward = Array.from({ length: 200 }, (_, i) => planTransaction(CTX, 199 - i)).reverse();
    expect(backward).toEqual(forward);
  });

  it("follows the mix and the rates, within sampling error", () => {
    const plans = Array.from({ length: N }, (_, n) => planTransaction(CTX, n));
    const total = Object.values(DEFAULT_MIX).reduce((s, w) => s + w, 0);
    for (const [kind, weight] of Object.entries(DEFAULT_MIX) as [Kind, number][]) {
      const share = plans.filter((p) => p.intent.kind === kind).length / N;
      expect(share, kind).toBeGreaterThan(weight / total - 0.03);
      expect(share, kind).toBeLessThan(weight / total + 0.03);
    }
    const grpc = plans.filter((p) => p.intent.via === "grpc").length / N;
    expect(grpc).toBeGreaterThan(RATES.grpc - 0.04);
    expect(grpc).toBeLessThan(RATES.grpc + 0.04);
    const msgs = plans.filter((p) => p.intent.kind === "msg");
    expect(msgs.filter((p) => p.intent.senderVanishes).length).toBeGreaterThan(0);
    expect(plans.filter((p) => p.intent.duplicate).length).toBeGreaterThan(N * 0.004);
    expect(plans.filter((p) => p.intent.conflict).length).toBeGreaterThan(N * 0.002);
    expect(new Set(plans.map((p) => p.coordinator))).toEqual(new Set([0, 1]));
    expect(new Set(plans.map((p) => p.participant))).toEqual(new Set([0, 1]));
  });

  it("only plans transfers the participants can do", () => {
    for (let n = 0; n < N; n++) {
      const { intent, legs, styles } = planTransaction(CTX, n);
      for (const t of intent.transfers) {
        expect(t.from).not.toBe(t.to);
        for (const id of [t.from, t.to]) expect(id >= 0 && id < ACCOUNT_COUNT).toBe(true);
        expect(t.amount >= 1 && t.amount <= 100).toBe(true);
        if (intent.kind === "msg") expect(accountDb(t.from)).not.toBe("redis");
        if (intent.kind === "xa") expect([accountDb(t.from), accountDb(t.to)]).not.toContain("redis");
      }
      expect(legs.reduce((s, l) => s + l.delta, 0)).toBe(0);
      if (intent.kind === "workflow") {
        expect(styles).toHaveLength(legs.length);
        styles.forEach((style, i) => {
          if (style === "xa") expect(accountDb(legs[i]!.account)).not.toBe("redis");
        });
      }
      if (intent.senderVanishes) expect(intent.duplicate).toBeUndefined();
    }
  });

  it("sends some transfers from low-balance accounts, so some transactions roll back", () => {
    const plans = Array.from({ length: 1000 }, (_, n) => planTransaction(CTX, n));
    const low = plans.filter((p) => p.intent.transfers.some((t) => t.from % 10 === 9 && t.amount > 50));
    expect(low.length).toBeGreaterThan(30);
  });
});

describe("chaos load: how an answer is recorded", () => {
  const first = { op: "submit" as const, attempt: 1 };
  const resend = { op: "submit" as const, attempt: 2 };

  it("a refusal on the first send is a definite fail", () => {
    expect(classifyError(new DtxFailure("current status 'succeed', cannot submit", { httpStatus: 409 }), first).type).toBe("fail");
    expect(classifyError(new DtxError("NOT_FOUND", "no such gid", { httpStatus: 404 }), { op: "abort", attempt: 1 }).type).toBe("fail");
    expect(classifyError(new DtxError("INVALID_ARGUMENT", "bad", { httpStatus: 400 }), resend).type).toBe("fail");
  });

  it("a refusal of a re-send after an unknown outcome says nothing definite: info", () => {
    expect(classifyError(new DtxFailure("FAILURE", { httpStatus: 409 }), resend).type).toBe("info");
    expect(classifyError(new DtxError("NOT_FOUND", "no such gid", { httpStatus: 404 }), resend).type).toBe("info");
  });

  it("timeouts, connection errors, 503 and 5xx are unknown", () => {
    for (const err of [
      new DtxError("TIMEOUT", "no answer"),
      new DtxError("UNAVAILABLE", "refused"),
      new DtxError("UNAVAILABLE", "HTTP 503", { httpStatus: 503, serverCode: "STORE_UNAVAILABLE" }),
      new DtxError("HTTP_ERROR", "HTTP 500", { httpStatus: 500 }),
      new DtxError("GRPC_ERROR", "INTERNAL", { grpcCode: 13 }),
      new Error("socket hang up"),
    ]) {
      expect(classifyError(err, first).type).toBe("info");
    }
  });

  it("ONGOING to a wait_result submit or abort is an acknowledgement of an unfinished transaction", () => {
    expect(classifyError(new DtxOngoing("still running", { httpStatus: 425 }), first)).toEqual({ type: "ok", status: "submitted" });
    expect(classifyError(new DtxOngoing("still rolling back", { httpStatus: 425 }), { op: "abort", attempt: 1 })).toEqual({ type: "ok", status: "aborting" });
    expect(classifyError(new DtxOngoing("?", { httpStatus: 425 }), { op: "registerBranch", attempt: 1 }).type).toBe("info");
  });
});
