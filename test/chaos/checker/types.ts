import type {
  ChaosTimings,
  ClientEvent,
  DatabaseState,
  FinalTrans,
  Goal,
  Intent,
  NemesisEvent,
  ParticipantCall,
  ProfileName,
  RunPaths,
  StoreKind,
  Violation,
} from "../contracts.ts";

/** One global status write, as a coordinator logged it ("status changed", pino debug). */
export interface StatusChange {
  /** When the coordinator logged it (ms). */
  at: number;
  /** Which coordinator's log it came from (the `<i>` of `coordinator-<i>.log`). */
  coordinator: number;
  gid: string;
  transType?: string;
  /** null: the trans was created with status `to`. */
  from: string | null;
  to: string;
  /** Which code path wrote it: create, submit, abort, pass, force-stop, workflow-submit. */
  cause?: string;
}

/** The checker's slack for timing rules; all in ms (see g7-overlap.ts and g8-cadence.ts). */
export interface Tolerances {
  /** G7: how far two calls may overlap before it counts (the two ends of one call are logged by one process, but the event loop of a busy 2-core box lags). */
  overlapMs: number;
  /** G8: slack below the minimum retry gap (small: a storm is gaps far below one interval). */
  cadenceFloorMs: number;
  /** G8: slack above the maximum retry gap (large: a full cron batch or a slow store write delays a retry). */
  cadenceCeilingMs: number;
  /** G2: the longest time to settle after the last fault (RELIABILITY G2: 60 s). */
  settleLimitMs: number;
  /** Coverage: the least share of invoked gids that must be acknowledged and succeed. */
  minSucceededShare: number;
}

export const DEFAULT_TOLERANCES: Tolerances = {
  overlapMs: 50,
  cadenceFloorMs: 250,
  cadenceCeilingMs: 2_000,
  settleLimitMs: 60_000,
  minSucceededShare: 0.2,
};

/** Everything the checker needs, all data (the brief's CheckInput plus the JSONL contents). */
export interface CheckInput {
  seed: number;
  store: StoreKind;
  profile: ProfileName;
  paths: RunPaths;
  final: FinalTrans[];
  db: DatabaseState;
  lastFaultEndedAt: number;
  settledAt: number | null;
  /** RunInfo.finalReadAt. */
  finalReadAt?: number;
  timings: ChaosTimings;
  startedAt?: number;
  endedAt?: number;
}

export interface CheckData {
  history: ClientEvent[];
  intents: Intent[];
  calls: ParticipantCall[];
  nemesis: NemesisEvent[];
  /** Parsed from coordinator-<i>.log; absent: G5 checks only the statuses the clients saw. */
  statusChanges?: StatusChange[];
  /** Unparseable lines skipped per file, copied into the report. */
  skippedLines?: Record<string, number>;
  tolerances?: Partial<Tolerances>;
}

/** What one goal's rule found. */
export interface GoalResult {
  goal: Goal;
  violations: Violation[];
  /** A short figure for the report ("3 acknowledged gids lost", "settled in 4.2 s"). */
  detail?: string;
}
