/**
 * `npm run chaos -- --store sqlite|postgres|mysql|redis --seed N --profile smoke|full [--dir D]`
 *
 * One chaos run (docs/chaos.md): prints the seed and store first, starts private databases,
 * coordinators and participants, runs the seeded load and nemesis, quiesces, checks the history,
 * writes report.json into the run dir and prints one summary line. Exit code 0 when every goal
 * holds, 1 on any violation, 2 when the run itself could not be carried out. Every child process
 * is killed at the end, on error and on Ctrl-C.
 */
import { mkdirSync, rmSync } from "node:fs";
import { parseArgs } from "node:util";
import type { StoreKind } from "./contracts.ts";
import { runPaths } from "./contracts.ts";
import { summaryLine } from "./checker/summary.ts";
import { isProfileName, PROFILES } from "./profile.ts";
import { killAll } from "./world/child.ts";
import { runChaos } from "./world/run.ts";
import type { World } from "./world/world.ts";
import { shutdownWorld } from "./world/world.ts";

const STORES: readonly StoreKind[] = ["sqlite", "postgres", "mysql", "redis"];
/** Time for starting the world, reading the final state and checking, beyond load and quiesce. */
const RUN_MARGIN_MS = 5 * 60_000;

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function usage(problem: string): never {
  process.stderr.write(`${problem}\nusage: npm run chaos -- --store sqlite|postgres|mysql|redis --seed N --profile smoke|full [--dir D]\n`);
  process.exit(2);
}

function parse(): { store: StoreKind; seed: number; profile: keyof typeof PROFILES; dir: string } {
  const { values } = parseArgs({
    options: { store: { type: "string" }, seed: { type: "string" }, profile: { type: "string", default: "smoke" }, dir: { type: "string" } },
    strict: true,
  });
  const store = values.store as StoreKind | undefined;
  if (!store || !STORES.includes(store)) usage(`--store must be one of ${STORES.join(", ")}`);
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
  if (!Number.isSafeInteger(seed) || seed < 0) usage("--seed must be a non-negative integer");
  if (!isProfileName(values.profile!)) usage("--profile must be smoke or full");
  return { store, seed, profile: values.profile, dir: values.dir ?? `/tmp/dtx-chaos-${store}-${seed}` };
}

async function main(): Promise<number> {
  const args = parse();
  say(`chaos: seed=${args.seed} store=${args.store} profile=${args.profile} dir=${args.dir}`);
  say(`replay: npm run chaos -- --store ${args.store} --seed ${args.seed} --profile ${args.profile}`);
  rmSync(args.dir, { recursive: true, force: true });
  mkdirSync(args.dir, { recursive: true });
  const paths = runPaths(args.dir);
  const abort = new AbortController();
  let world: World | undefined;
  const interrupt = (signal: string): void => {
    say(`chaos: ${signal}, stopping everything`);
    abort.abort();
    void shutdownWorld(world).finally(() => process.exit(130));
  };
  process.once("SIGINT", () => interrupt("SIGINT"));
  process.once("SIGTERM", () => interrupt("SIGTERM"));
  // A library error nobody listened for must not leave servers behind: stop everything, exit 2.
  const crash = (error: unknown): void => {
    process.stderr.write(`chaos: unexpected error, stopping everything: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    void shutdownWorld(world).finally(() => process.exit(2));
  };
  process.once("uncaughtException", crash);
  process.once("unhandledRejection", crash);
  // Last resort (process.exit from anywhere): SIGKILL every child still alive.
  process.once("exit", killAll);
  const started = Date.now();
  // The whole run is bounded: load and faults, quiesce, and a margin for starting and checking.
  const profile = PROFILES[args.profile];
  const bound = setTimeout(() => crash(new Error(`the run took longer than its bound of ${(profile.maxRunMs + profile.quiesceMs + RUN_MARGIN_MS) / 1000} s`)), profile.maxRunMs + profile.quiesceMs + RUN_MARGIN_MS);
  bound.unref();
  try {
    const report = await runChaos({
      store: args.store,
      seed: args.seed,
      profile,
      paths,
      signal: abort.signal,
      say,
      onWorld: (w) => (world = w),
    });
    say(`${summaryLine(report)} (${((Date.now() - started) / 1000).toFixed(0)} s, report ${paths.report})`);
    // ok: no violation, and the run proved something (the checker's coverage guard).
    return report.ok ? 0 : 1;
  } catch (error) {
    process.stderr.write(`chaos: the run failed: ${(error as Error).stack ?? String(error)}\n`);
    return 2;
  } finally {
    await shutdownWorld(world);
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    killAll();
    process.stderr.write(`chaos: ${String(error)}\n`);
    process.exit(2);
  },
);
