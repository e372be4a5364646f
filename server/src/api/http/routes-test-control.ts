import type { FastifyInstance } from "fastify";
import { CoordinatorError } from "../../core/errors.ts";
import { MAX_SECONDS } from "../../core/time-limits.ts";
import type { AdjustableClock } from "../../core/clock.ts";
import type { RecoveryLoop } from "../../cron/recovery-loop.ts";
import type { RetentionLoop } from "../../cron/retention-loop.ts";
import type { CrashPoints } from "../../service/crash-points.ts";
import { CRASH_POINTS } from "../../service/crash-points.ts";
import { asObject } from "../../service/request.ts";

export interface TestControlDeps {
  clock: AdjustableClock;
  cron: RecoveryLoop;
  crash: CrashPoints;
  /** Resolves once every pass running now has ended. */
  settle: () => Promise<void>;
  /** Absent when retention is off (retention.finishedAge 0). */
  retention?: RetentionLoop;
}

const MAX_ADVANCE_MS = MAX_SECONDS * 1000;

function advanceOf(body: unknown): number {
  const raw = body === undefined || body === null ? {} : asObject(body);
  const ms = raw["advanceMs"] ?? 0;
  // One step of at most a year: the clock must stay a time every store and toISOString can hold.
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0 || ms > MAX_ADVANCE_MS) {
    throw new CoordinatorError("INVALID_REQUEST", `advanceMs must be a number of milliseconds between 0 and ${MAX_ADVANCE_MS}`);
  }
  return ms;
}

/**
 * The opt-in test-control API under /api/dtx/test (DTX_TEST_CONTROL=1, refused in production):
 * move the coordinator's clock forward, run one cron round or one retention round, wait for
 * running passes to end, arm a crash point.
 */
export function testControlRoutes(deps: TestControlDeps) {
  return async (app: FastifyInstance): Promise<void> => {
    app.post("/clock", async (req) => {
      deps.clock.advance(advanceOf(req.body));
      return { now: deps.clock.now(), offset_ms: deps.clock.offsetMs };
    });
    app.post("/cron", async (req) => {
      deps.clock.advance(advanceOf(req.body));
      const processed = await deps.cron.tickOnce();
      return { processed, now: deps.clock.now() };
    });
    app.post("/retention", async (req) => {
      const { retention } = deps;
      if (!retention) throw new CoordinatorError("INVALID_REQUEST", "retention is off (retention.finishedAge is 0)");
      deps.clock.advance(advanceOf(req.body));
      const round = await retention.runOnce();
      return { ...round, now: deps.clock.now() };
    });
    app.post("/settle", async () => {
      await deps.settle();
      return { settled: true };
    });
    app.post("/crash", async (req) => {
      const o = asObject(req.body);
      const point = o["point"];
      if (typeof point !== "string" || !(CRASH_POINTS as readonly string[]).includes(point)) {
        throw new CoordinatorError("INVALID_REQUEST", `point must be one of ${CRASH_POINTS.join(", ")}`);
      }
      const gid = o["gid"];
      const hit = o["hit"] ?? 1;
      if (gid !== undefined && typeof gid !== "string") throw new CoordinatorError("INVALID_REQUEST", "gid must be a string");
      if (typeof hit !== "number" || !Number.isInteger(hit) || hit < 1) throw new CoordinatorError("INVALID_REQUEST", "hit must be a whole number >= 1");
      deps.crash.arm({ point: point as (typeof CRASH_POINTS)[number], hit, ...(gid !== undefined ? { gid } : {}) });
      return { armed: true };
    });
  };
}
