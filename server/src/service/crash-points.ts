/**
 * Named points in the engine where a test can make the coordinator kill itself with SIGKILL
 * (DBOS-style debug points). Armed only through the opt-in test-control API.
 */
export const CRASH_POINTS = ["beforeBranchCall", "afterBranchCall", "beforeStatusWrite"] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

export interface CrashArm {
  point: CrashPoint;
  /** Only for this gid (any when absent). */
  gid?: string;
  /** Fire on the n-th hit (1 = the first). */
  hit: number;
}

export class CrashPoints {
  private arms: { arm: CrashArm; hits: number }[] = [];

  arm(arm: CrashArm): void {
    this.arms.push({ arm, hits: 0 });
  }

  /** Called by the engine at each point; kills the process when an armed point is reached. */
  reach(point: CrashPoint, gid: string): void {
    if (this.arms.length === 0) return;
    for (const entry of this.arms) {
      if (entry.arm.point !== point || (entry.arm.gid !== undefined && entry.arm.gid !== gid)) continue;
      entry.hits += 1;
      if (entry.hits === entry.arm.hit) process.kill(process.pid, "SIGKILL");
    }
  }
}
