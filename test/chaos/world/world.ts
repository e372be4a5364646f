/**
 * Everything a chaos run starts, in one place: the three database servers, the coordinators
 * (with their store proxies) and the participants. `startWorld` brings it all up; `heal` makes
 * sure every process runs again and every link passes (quiesce); `shutdown` stops it all.
 */
import type { RunPaths, StoreKind } from "../contracts.ts";
import type { Profile } from "../profile.ts";
import { killAll } from "./child.ts";
import type { Databases } from "./databases.ts";
import { startDatabases } from "./databases.ts";
import type { RunningCoordinator } from "./coordinators.ts";
import { startCoordinator } from "./coordinators.ts";
import type { RunningParticipant } from "./participants.ts";
import { startParticipant } from "./participants.ts";

export interface World {
  readonly store: StoreKind;
  readonly paths: RunPaths;
  readonly dbs: Databases;
  readonly coordinators: RunningCoordinator[];
  readonly participants: RunningParticipant[];
}

/** Coordinators sharing the store: one for SQLite (a file has one writer), two otherwise. */
export function coordinatorCount(store: StoreKind): number {
  return store === "sqlite" ? 1 : 2;
}

export async function startWorld(opts: {
  store: StoreKind;
  seed: number;
  profile: Profile;
  paths: RunPaths;
  /** Runs after the databases are up and before the participants start (tables, balances). */
  prepareDbs: (dbs: Databases) => Promise<void>;
}): Promise<World> {
  const { store, seed, profile, paths } = opts;
  const dbs = await startDatabases(paths.dir);
  await opts.prepareDbs(dbs);
  const storeUrl = store === "sqlite" ? undefined : dbs.storeUrl(store);
  const coordinator = (index: number): Promise<RunningCoordinator> => startCoordinator({ index, store, storeUrl, runDir: paths.dir, timings: profile.timings });
  const participantsStarting = Promise.all(
    Array.from({ length: profile.participants }, (_, index) =>
      startParticipant({ index, seed, paths, dbs: dbs.urls, faultRates: profile.branchFaultRates, lateMs: profile.lateMs }),
    ),
  );
  // The first coordinator runs the store's migrations alone; the others start together after it.
  const first = await coordinator(0);
  const others = await Promise.all(Array.from({ length: coordinatorCount(store) - 1 }, (_, i) => coordinator(i + 1)));
  const coordinators = [first, ...others];
  const participants = await participantsStarting;
  return { store, paths, dbs, coordinators, participants };
}

/**
 * Quiesce's first step: every proxy passes, every database, coordinator and participant runs and
 * none is paused. Databases first, so the coordinators that start find their store.
 */
export async function healWorld(world: World): Promise<void> {
  for (const c of world.coordinators) c.storeProxy?.heal();
  for (const server of Object.values(world.dbs.servers)) if (!server.child.running) await server.restart();
  for (const c of world.coordinators) {
    if (c.child.isPaused) c.child.resume();
    if (!c.child.running) await c.child.startSupervised();
  }
  for (const p of world.participants) {
    if (p.child.isPaused) p.child.resume();
    if (!p.child.running) await p.child.startSupervised();
  }
}

/** Stops every process and proxy; never throws (it runs in `finally` and on Ctrl-C). */
export async function shutdownWorld(world: World | undefined): Promise<void> {
  if (world) {
    await Promise.allSettled([...world.coordinators.map((c) => c.child.kill()), ...world.participants.map((p) => p.child.kill())]);
    await Promise.allSettled(world.coordinators.map((c) => c.storeProxy?.close()));
    await world.dbs.stop().catch(() => undefined);
  }
  killAll();
}
