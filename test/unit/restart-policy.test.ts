import { describe, expect, it } from "vitest";
import { RestartPolicy } from "../../server/src/cluster/restart-policy.ts";

const OPTIONS = { baseDelayMs: 500, maxDelayMs: 3_000, windowMs: 60_000, maxCrashesInWindow: 5 };

describe("RestartPolicy: when the primary restarts a crashed worker", () => {
  it("backs off exponentially from the base, capped", () => {
    const policy = new RestartPolicy(OPTIONS);
    const delays = [0, 1, 2, 3, 4].map((i) => policy.crashed(i * 1000));
    expect(delays).toEqual([500, 1000, 2000, 3000, 3000].map((delayMs, i) => ({ kind: "restart", delayMs, recentCrashes: i + 1 })));
  });

  it("gives up on the crash past the limit within the window", () => {
    const policy = new RestartPolicy(OPTIONS);
    for (let i = 0; i < 5; i++) expect(policy.crashed(i).kind).toBe("restart");
    expect(policy.crashed(10)).toEqual({ kind: "give-up", recentCrashes: 6 });
  });

  it("forgets crashes older than the window: a rare crash restarts at the base delay", () => {
    const policy = new RestartPolicy(OPTIONS);
    for (let i = 0; i < 5; i++) policy.crashed(i);
    expect(policy.crashed(60_000 + 10)).toEqual({ kind: "restart", delayMs: 500, recentCrashes: 1 });
    expect(policy.crashed(10 * 60_000)).toEqual({ kind: "restart", delayMs: 500, recentCrashes: 1 });
  });
});
