import { describe, expect, it } from "vitest";
import { criticalPath } from "../../bench/lib/critical-path.ts";
import type { ProcessEvents } from "../../bench/lib/critical-path.ts";

/** One saga's stamps from `start`: the gaps between events as given. */
function saga(start: number, steps: [string, number][]): [string, number][] {
  let t = start;
  return steps.map(([kind, gap]) => {
    t += gap;
    return [kind, t];
  });
}

function events(...sagas: [string, number][][]): ProcessEvents {
  const all = sagas.flat();
  return { kinds: all.map(([k]) => k), timesUs: all.map(([, t]) => t) };
}

const REDIS_SAGA: [string, number][] = [
  ["req", 0], ["store>", 100], ["store<", 400], ["call>", 90], ["call<", 120], ["call>", 80], ["call<", 110], ["store>", 70], ["store<", 350], ["res", 60],
];

describe("bench critical path (saga-bench --critical-path)", () => {
  it("splits a saga into the coordinator's work and the round trips it waits for", () => {
    const p = events(saga(1_000, REDIS_SAGA), saga(3_000, REDIS_SAGA), saga(5_000, REDIS_SAGA));
    const cp = criticalPath([p], { startUs: 0, endUs: 10_000 });
    expect(cp?.sequence).toEqual(REDIS_SAGA.map(([k]) => k));
    expect(cp?.coordinatorUs).toBe(100 + 90 + 80 + 70 + 60);
    expect(cp?.storeUs).toBe(400 + 350);
    expect(cp?.participantUs).toBe(120 + 110);
    expect(cp?.requestToAnswerUs).toBe(1380);
    // The next request arrives 2000 µs after the last one; the answer went out 1380 µs in.
    expect(cp?.turnaroundUs).toBe(620);
    expect(cp?.segments[1]).toEqual({ from: "store>", to: "store<", waitingFor: "store", medianUs: 400 });
  });

  it("counts only sagas whose request arrived inside the window, from every process", () => {
    const a = events(saga(1_000, REDIS_SAGA), saga(3_000, REDIS_SAGA));
    const b = events(saga(5_000, REDIS_SAGA));
    expect(criticalPath([a, b], { startUs: 2_000, endUs: 6_000 })?.sagas).toBe(2);
    expect(criticalPath([a, b], { startUs: 20_000, endUs: 30_000 })).toBeNull();
  });

  it("takes the most common sequence; writes after the answer and a request read twice stay off the path", () => {
    const late: [string, number][] = [...REDIS_SAGA, ["store>", 10], ["store<", 300]];
    const twoReads: [string, number][] = [["req", 0], ["req", 5], ...REDIS_SAGA.slice(1)];
    const other: [string, number][] = [["req", 0], ["call>", 50], ["call<", 100], ["res", 20]];
    const cp = criticalPath([events(saga(0, late), saga(3_000, twoReads), saga(6_000, REDIS_SAGA), saga(9_000, other))], { startUs: 0, endUs: 20_000 });
    expect(cp?.sagas).toBe(4);
    expect(cp?.measured).toBe(3);
    expect(cp?.sequence).toEqual(REDIS_SAGA.map(([k]) => k));
  });
});
