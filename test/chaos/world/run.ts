/**
 * One chaos run from start to end: world up, load and nemesis side by side, heal and quiesce,
 * final state read back and written (final.json, db.json), then the checker. The caller (cli.ts)
 * parses the flags, prints, and makes sure `shutdownWorld` runs whatever happens.
 */
import { writeFileSync } from "node:fs";
import type { ClientEvent, Intent, Report, RunInfo, RunPaths, StoreKind } from "../contracts.ts";
import { check } from "../checker/check.ts";
import { readFinalTrans } from "../checker/final-state.ts";
import { readJsonl, readRun } from "../checker/read.ts";
import { runLoad } from "../load/generator.ts";
import { FAULTS } from "../nemesis/faults/index.ts";
import { runNemesis } from "../nemesis/nemesis.ts";
import type { NemesisResult } from "../nemesis/nemesis.ts";
import { faultSchedule } from "../nemesis/schedule.ts";
import { readDatabaseState } from "../participant/snapshot.ts";
import { setupParticipantDbs } from "../participant/setup.ts";
import type { Profile } from "../profile.ts";
import { quiesce } from "./quiesce.ts";
import { pagesFor, readStatuses } from "./statuses.ts";
import type { World } from "./world.ts";
import { coordinatorCount, healWorld, startWorld } from "./world.ts";

export interface RunOptions {
  store: StoreKind;
  seed: number;
  profile: Profile;
  paths: RunPaths;
  signal: AbortSignal;
  say: (line: string) => void;
  /** Receives the world as soon as it exists, so the caller can shut it down on any exit. */
  onWorld: (world: World) => void;
}

const anyLine = (): boolean => true;

/** Gids whose submit the coordinator acknowledged (`ok`): quiesce waits for these to exist. */
function acknowledgedGids(history: readonly ClientEvent[]): Set<string> {
  const submits = new Set<number>();
  const acked = new Set<string>();
  for (const e of history) {
    if (e.type === "invoke" && e.op === "submit") submits.add(e.id);
    else if (e.type === "ok" && submits.has(e.id)) acked.add(e.gid);
  }
  return acked;
}

/** Violations kept in report.json when all of them (each with its events) make too long a string. */
const REPORT_VIOLATIONS_CAP = 1_000;

/** The report as JSON; a run with a flood of violations keeps the first ones (a full redis run had ~10,000). */
function reportJson(report: Report): string {
  try {
    return JSON.stringify(report);
  } catch {
    return JSON.stringify({ ...report, violations: report.violations.slice(0, REPORT_VIOLATIONS_CAP), violationsOmitted: report.violations.length - REPORT_VIOLATIONS_CAP });
  }
}

export async function runChaos(opts: RunOptions): Promise<Report> {
  const { store, seed, profile, paths, say } = opts;
  const startedAt = Date.now();
  const world = await startWorld({ store, seed, profile, paths, prepareDbs: (dbs) => setupParticipantDbs(dbs.urls, { seed }) });
  opts.onWorld(world);
  say(`world up in ${((Date.now() - startedAt) / 1000).toFixed(1)} s: ${world.coordinators.length} coordinator(s), ${world.participants.length} participant(s)`);

  const shape = { store, coordinators: coordinatorCount(store), participants: profile.participants };
  const schedule = faultSchedule(seed, profile, shape, FAULTS);
  const loadStartedAt = Date.now();
  const loadAbort = new AbortController();
  const abortLoad = (): void => loadAbort.abort();
  opts.signal.addEventListener("abort", abortLoad);
  const runBound = setTimeout(abortLoad, profile.maxRunMs);
  let loadDone = false;
  const load = runLoad({
    seed,
    count: profile.transactions,
    concurrency: profile.concurrency,
    coordinators: world.coordinators.map((c) => ({ httpUrl: c.httpUrl, grpcTarget: c.grpcTarget })),
    participants: world.participants.map((p) => p.base),
    dbs: world.dbs.urls,
    paths,
    signal: loadAbort.signal,
    maxRunMs: profile.maxRunMs,
  }).finally(() => (loadDone = true));
  const nemesis: Promise<NemesisResult> = runNemesis({
    schedule,
    faults: FAULTS,
    world,
    eventsFile: paths.nemesis,
    startedAt: loadStartedAt,
    minGapMs: profile.faultMinGapMs,
    shouldStop: () => opts.signal.aborted || Date.now() - loadStartedAt >= profile.maxRunMs || (loadDone && Date.now() - loadStartedAt >= profile.minFaultWindowMs),
    say,
  });
  // A load that fails makes the nemesis stop at its next gap (loadDone); both end before we go on.
  const [loadSettled, nemesisSettled] = await Promise.allSettled([load, nemesis]);
  if (loadSettled.status === "rejected") throw loadSettled.reason;
  if (nemesisSettled.status === "rejected") throw nemesisSettled.reason;
  const loadResult = loadSettled.value;
  const nemesisResult = nemesisSettled.value;
  clearTimeout(runBound);
  opts.signal.removeEventListener("abort", abortLoad);
  if (opts.signal.aborted) throw new Error("interrupted");
  say(`load done: ${loadResult.invoked} invoked, ${loadResult.acknowledged} acknowledged in ${((Date.now() - loadStartedAt) / 1000).toFixed(1)} s; faults ${JSON.stringify(nemesisResult.counts)}`);

  try {
    return await settleAndCheck(opts, world, startedAt, nemesisResult);
  } finally {
    // The load's workflow callback endpoint served the coordinators' workflow resumes until now.
    await loadResult.stop();
  }
}

async function settleAndCheck(opts: RunOptions, world: World, startedAt: number, nemesisResult: NemesisResult): Promise<Report> {
  const { store, seed, profile, paths, say } = opts;
  await healWorld(world);
  const history = (await readJsonl<ClientEvent>(paths.history, anyLine)).items;
  const intents = (await readJsonl<Intent>(paths.intents, anyLine)).items;
  const gids = [...new Set(intents.map((i) => i.gid))];
  const coordinatorUrl = world.coordinators[0]!.httpUrl;
  const settle = await quiesce({
    gids,
    acknowledged: acknowledgedGids(history),
    read: async (open) => {
      const statuses = await readStatuses(coordinatorUrl, pagesFor(gids.length));
      return open.map((gid) => ({ gid, status: statuses.get(gid), branches: [] }));
    },
    timeoutMs: profile.quiesceMs,
    say,
  });
  say(
    settle.settledAt === null
      ? `quiesce: ${settle.open.length} gids still open after ${profile.quiesceMs / 1000} s`
      : `quiesce: settled ${((settle.settledAt - nemesisResult.lastFaultEndedAt) / 1000).toFixed(1)} s after the last fault`,
  );

  // Everything the checker reads goes to files first, so `npm run chaos:check` can re-check offline.
  const finalReadAt = Date.now();
  const final = await readFinalTrans(coordinatorUrl, gids);
  const db = await readDatabaseState(world.dbs.urls);
  const t = profile.timings;
  const info: RunInfo = {
    seed,
    store,
    profile: profile.name,
    startedAt,
    endedAt: Date.now(),
    lastFaultEndedAt: nemesisResult.lastFaultEndedAt,
    settledAt: settle.settledAt,
    finalReadAt,
    timings: {
      retryIntervalMs: t.retryInterval * 1000,
      maxRetryIntervalMs: t.maxRetryInterval * 1000,
      cronIntervalMs: t.cronInterval * 1000,
      requestTimeoutMs: t.requestTimeout * 1000,
      retryJitter: t.retryJitter,
    },
  };
  writeFileSync(paths.final, JSON.stringify(final));
  writeFileSync(paths.db, JSON.stringify(db));
  writeFileSync(paths.run, JSON.stringify(info, null, 2));
  const report = check(await readRun(paths.dir));
  writeFileSync(paths.report, `${reportJson(report)}\n`);
  return report;
}
