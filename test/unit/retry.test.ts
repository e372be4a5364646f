import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DEFAULT_OPTIONS } from "../../server/src/core/options.ts";
import type { TimingConfig } from "../../server/src/core/retry.ts";
import {
  baseInterval,
  effectiveTimeout,
  isTimedOut,
  nextInterval,
  requestTimeout,
  retryAt,
  timeoutReason,
} from "../../server/src/core/retry.ts";
import type { TransOptions, TransType } from "../../server/src/core/types.ts";

const CFG: TimingConfig = {
  retryInterval: 10_000,
  maxRetryInterval: 60_000,
  timeoutToFail: 35_000,
  requestTimeout: 3_000,
  retryJitter: 0.1,
};

const CREATED = 1_700_000_000_000;

function trans(transType: TransType, o: Partial<TransOptions> = {}) {
  return { transType, createTime: CREATED, options: { ...DEFAULT_OPTIONS, branchHeaders: {}, ...o } };
}

describe("baseInterval (docs/protocol.md#retries)", () => {
  it("uses the trans's own retry_interval first", () => {
    expect(baseInterval(trans("saga", { retryInterval: 2_500 }), CFG)).toBe(2_500);
    expect(baseInterval(trans("saga", { retryInterval: 90_000, timeoutToFail: 1_000 }), CFG)).toBe(90_000);
  });

  it("uses timeout_to_fail when it is shorter than the global interval", () => {
    expect(baseInterval(trans("tcc", { timeoutToFail: 3_000 }), CFG)).toBe(3_000);
    expect(baseInterval(trans("saga", { timeoutToFail: 9_999 }), CFG)).toBe(9_999);
  });

  it("falls back to the global interval", () => {
    expect(baseInterval(trans("saga"), CFG)).toBe(10_000);
    expect(baseInterval(trans("tcc", { timeoutToFail: 10_000 }), CFG)).toBe(10_000);
    expect(baseInterval(trans("msg", { timeoutToFail: 20_000 }), CFG)).toBe(10_000);
  });
});

describe("nextInterval", () => {
  const base = 10_000;

  it("reset returns the base interval", () => {
    expect(nextInterval(40_000, "reset", base, CFG)).toBe(base);
    expect(nextInterval(0, "reset", base, CFG)).toBe(base);
  });

  it("keep leaves the interval as it is (capped), or starts at the base", () => {
    expect(nextInterval(20_000, "keep", base, CFG)).toBe(20_000);
    expect(nextInterval(0, "keep", base, CFG)).toBe(base);
    expect(nextInterval(600_000, "keep", base, CFG)).toBe(CFG.maxRetryInterval);
  });

  it("backoff doubles, caps at maxRetryInterval and never goes below the base", () => {
    expect(nextInterval(10_000, "backoff", base, CFG)).toBe(20_000);
    expect(nextInterval(20_000, "backoff", base, CFG)).toBe(40_000);
    expect(nextInterval(40_000, "backoff", base, CFG)).toBe(60_000);
    expect(nextInterval(60_000, "backoff", base, CFG)).toBe(60_000);
    expect(nextInterval(0, "backoff", base, CFG)).toBe(20_000);
    expect(nextInterval(1_000, "backoff", base, CFG)).toBe(20_000);
    // An own retry_interval above the cap wins over the cap.
    expect(nextInterval(0, "backoff", 120_000, CFG)).toBe(120_000);
    expect(nextInterval(120_000, "backoff", 120_000, CFG)).toBe(120_000);
  });

  it("repeated backoff is monotone non-decreasing, within [base, cap] (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3_600_000 }),
        fc.integer({ min: 1, max: 3_600_000 }),
        fc.integer({ min: 0, max: 3_600_000 }),
        fc.integer({ min: 1, max: 40 }),
        (a, b, startRaw, rounds) => {
          const [baseI, cap] = a <= b ? [a, b] : [b, a];
          const cfg = { ...CFG, retryInterval: baseI, maxRetryInterval: cap };
          let current = Math.min(startRaw, cap);
          for (let i = 0; i < rounds; i++) {
            const next = nextInterval(current, "backoff", baseI, cfg);
            expect(next).toBeGreaterThanOrEqual(current);
            expect(next).toBeGreaterThanOrEqual(baseI);
            expect(next).toBeLessThanOrEqual(cap);
            expect(Number.isInteger(next)).toBe(true);
            current = next;
          }
          // Enough doublings always reach the cap.
          if (rounds >= 23) expect(current).toBe(cap);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("retryAt", () => {
  it("adds no jitter at random01 = 0", () => {
    expect(retryAt(1_000, 10_000, CFG, 0)).toBe(11_000);
  });

  it("adds at most interval * retryJitter at random01 = 1", () => {
    expect(retryAt(1_000, 10_000, CFG, 1)).toBe(12_000);
    expect(retryAt(1_000, 10_000, { ...CFG, retryJitter: 0 }, 1)).toBe(11_000);
  });

  it("stays within [now + interval, now + interval * (1 + jitter)] (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 42 }),
        fc.integer({ min: 1, max: 3_600_000 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
        (now, interval, jitter, r) => {
          const at = retryAt(now, interval, { ...CFG, retryJitter: jitter }, r);
          expect(Number.isInteger(at)).toBe(true);
          expect(at).toBeGreaterThanOrEqual(now + interval);
          expect(at).toBeLessThanOrEqual(now + interval + interval * jitter);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("timeouts", () => {
  it("a saga has no default timeout", () => {
    const saga = trans("saga");
    expect(effectiveTimeout(saga, CFG)).toBe(0);
    expect(isTimedOut(saga, CREATED + 365 * 86_400_000, CFG)).toBe(false);
  });

  it("a workflow has no default timeout either", () => {
    expect(effectiveTimeout(trans("workflow"), CFG)).toBe(0);
  });

  it("msg, tcc and xa use the global timeout", () => {
    for (const type of ["msg", "tcc", "xa"] as const) {
      const t = trans(type);
      expect(effectiveTimeout(t, CFG)).toBe(35_000);
      expect(isTimedOut(t, CREATED + 34_999, CFG)).toBe(false);
      expect(isTimedOut(t, CREATED + 35_000, CFG)).toBe(true);
    }
  });

  it("the trans's own timeout_to_fail wins, for every type", () => {
    for (const type of ["saga", "msg", "tcc", "xa", "workflow"] as const) {
      const t = trans(type, { timeoutToFail: 5_000 });
      expect(effectiveTimeout(t, CFG)).toBe(5_000);
      expect(isTimedOut(t, CREATED + 4_999, CFG)).toBe(false);
      expect(isTimedOut(t, CREATED + 5_000, CFG)).toBe(true);
    }
  });

  it("a global timeout of 0 disables the default", () => {
    expect(isTimedOut(trans("tcc"), CREATED + 10 ** 9, { ...CFG, timeoutToFail: 0 })).toBe(false);
  });

  it("timeoutReason prints the effective timeout in whole seconds (D6)", () => {
    expect(timeoutReason(trans("saga", { timeoutToFail: 5_000 }), CFG)).toBe("Timeout after 5 seconds");
    expect(timeoutReason(trans("tcc"), CFG)).toBe("Timeout after 35 seconds");
    expect(timeoutReason(trans("xa", { timeoutToFail: 1_500 }), CFG)).toMatch(/^Timeout after \d+ seconds$/);
    fc.assert(
      fc.property(
        fc.constantFrom<TransType>("saga", "msg", "tcc", "xa", "workflow"),
        fc.integer({ min: 0, max: 10 ** 9 }),
        fc.integer({ min: 0, max: 10 ** 9 }),
        (type, own, global) => {
          expect(timeoutReason(trans(type, { timeoutToFail: own }), { ...CFG, timeoutToFail: global })).toMatch(
            /^Timeout after \d+ seconds$/,
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it("requestTimeout: the trans's own, else the global one", () => {
    expect(requestTimeout(trans("saga", { requestTimeout: 700 }), CFG)).toBe(700);
    expect(requestTimeout(trans("saga"), CFG)).toBe(3_000);
  });
});
