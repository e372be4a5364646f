/**
 * The two run profiles: `smoke` (CI, a few minutes per store) and `full` (by hand, 10,000
 * transactions per store). A profile fixes the workload size, the nemesis cadence, the branch
 * fault rates the participants draw from, and the coordinators' short test timings.
 */
import type { ProfileName } from "./contracts.ts";
import type { FaultRates } from "./participant/faults.ts";

/** Coordinator timings, in seconds like the DTX_* variables they become. */
export interface CoordinatorTimings {
  retryInterval: number;
  maxRetryInterval: number;
  requestTimeout: number;
  cronInterval: number;
  timeoutToFail: number;
  /** Slack of a claim's lease beyond a call's deadline; the lease is about retryInterval + this. */
  leaseMargin: number;
  /** Fraction of a retry interval added at random. */
  retryJitter: number;
}

export interface Profile {
  name: ProfileName;
  /** Global transactions the load generator submits. */
  transactions: number;
  /** Submits in flight at most. */
  concurrency: number;
  /** Participant processes (each serves every account; the load spreads over them). */
  participants: number;
  /** Mean gap between two faults (exponential inter-arrival), and the minimum gap. */
  faultMeanGapMs: number;
  faultMinGapMs: number;
  /** The nemesis waits this long after the load starts before the first fault. */
  firstFaultAfterMs: number;
  /** Faults go on at least this long, even if the load finished earlier (bounded by maxRunMs). */
  minFaultWindowMs: number;
  /** Hard bound of load + faults; the load is aborted after it. */
  maxRunMs: number;
  /** Quiesce: poll until every acknowledged gid is terminal, at most this long. */
  quiesceMs: number;
  /** Per-call probabilities of each branch fault, given to the participants. */
  branchFaultRates: FaultRates;
  /** How long a `late` branch sleeps before it works (past requestTimeout). */
  lateMs: number;
  timings: CoordinatorTimings;
}

const TIMINGS: CoordinatorTimings = {
  retryInterval: 1,
  maxRetryInterval: 8,
  requestTimeout: 1,
  cronInterval: 0.5,
  timeoutToFail: 5,
  leaseMargin: 1,
  retryJitter: 0.1,
};

const BRANCH_FAULT_RATES: FaultRates = {
  "error-before": 0.05,
  "error-after": 0.015,
  "drop-after": 0.015,
  late: 0.02,
  ongoing: 0.03,
  failure: 0.01,
  /** The participant handles a call twice at once (duplicate delivery). */
  duplicate: 0.01,
};

export const PROFILES: Record<ProfileName, Profile> = {
  smoke: {
    name: "smoke",
    transactions: 400,
    concurrency: 32,
    participants: 2,
    faultMeanGapMs: 9_000,
    faultMinGapMs: 5_000,
    firstFaultAfterMs: 2_000,
    minFaultWindowMs: 40_000,
    maxRunMs: 100_000,
    quiesceMs: 60_000,
    branchFaultRates: BRANCH_FAULT_RATES,
    lateMs: 1_500,
    timings: TIMINGS,
  },
  full: {
    name: "full",
    transactions: 10_000,
    concurrency: 32,
    participants: 2,
    faultMeanGapMs: 20_000,
    faultMinGapMs: 5_000,
    firstFaultAfterMs: 5_000,
    minFaultWindowMs: 240_000,
    maxRunMs: 1_800_000,
    quiesceMs: 60_000,
    branchFaultRates: BRANCH_FAULT_RATES,
    lateMs: 1_500,
    timings: TIMINGS,
  },
};

export function isProfileName(name: string): name is ProfileName {
  return name === "smoke" || name === "full";
}
