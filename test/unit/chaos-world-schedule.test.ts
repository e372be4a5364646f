/**
 * The chaos nemesis schedule is a pure function of the seed: a seed replays the same faults with
 * the same targets and timings (docs/chaos.md "Replaying a seed"), and it respects the profile.
 */
import { describe, expect, it } from "vitest";
import { FAULTS } from "../chaos/nemesis/faults/index.ts";
import { faultSchedule } from "../chaos/nemesis/schedule.ts";
import { PROFILES } from "../chaos/profile.ts";
import { forkRng } from "../chaos/rng.ts";

const SHAPE = { store: "postgres" as const, coordinators: 2, participants: 2 };

describe("chaos nemesis schedule", () => {
  it("is the same for the same seed and differs for another seed", () => {
    const a = faultSchedule(42, PROFILES.smoke, SHAPE, FAULTS);
    const b = faultSchedule(42, PROFILES.smoke, SHAPE, FAULTS);
    const c = faultSchedule(43, PROFILES.smoke, SHAPE, FAULTS);
    expect(a.length).toBeGreaterThan(3);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
  });

  it("keeps faults apart by the minimum gap, inside the run bound, never overlapping", () => {
    for (const seed of [1, 7, 42, 1234, 99999]) {
      const schedule = faultSchedule(seed, PROFILES.smoke, SHAPE, FAULTS);
      expect(schedule[0]!.atMs).toBe(PROFILES.smoke.firstFaultAfterMs);
      for (const [i, item] of schedule.entries()) {
        expect(item.atMs).toBeLessThan(PROFILES.smoke.maxRunMs);
        const next = schedule[i + 1];
        if (next) {
          expect(next.atMs - item.atMs).toBeGreaterThanOrEqual(PROFILES.smoke.faultMinGapMs);
          expect(next.atMs).toBeGreaterThan(item.atMs + item.plan.durationMs);
        }
      }
    }
  });

  it("plans only the faults that apply to the store (no store black-hole or participant-db crash on SQLite)", () => {
    const sqlite = faultSchedule(5, PROFILES.full, { store: "sqlite", coordinators: 1, participants: 2 }, FAULTS);
    const names = new Set(sqlite.map((s) => s.fault));
    expect(names.has("store-blackhole")).toBe(false);
    expect(names.has("participant-db-crash")).toBe(false);
    expect(names).toContain("coordinator-kill");
    expect(names).toContain("store-crash");
    for (const s of sqlite) if (s.fault === "store-crash") expect(["postgres", "mysql", "redis"]).toContain(s.plan.target);
    for (const s of sqlite) if (s.fault === "coordinator-kill") expect(s.plan.target).toBe("coordinator-0");
  });

  it("uses every fault on a server store over a full run", () => {
    const names = new Set(faultSchedule(3, PROFILES.full, SHAPE, FAULTS).map((s) => s.fault));
    expect([...names].sort()).toEqual(FAULTS.map((f) => f.name).sort());
  });

  it("draws independent streams per name from one seed", () => {
    const nemesis = forkRng(42, "nemesis");
    const again = forkRng(42, "nemesis");
    const load = forkRng(42, "load");
    const draws = (r: ReturnType<typeof forkRng>): number[] => Array.from({ length: 8 }, () => r.int(0, 1_000_000));
    const first = draws(nemesis);
    expect(draws(again)).toEqual(first);
    expect(draws(load)).not.toEqual(first);
  });
});
