/**
 * The participant processes of a chaos run (test/chaos/participant/main.ts): each serves every
 * account on a fixed port (kept across restarts), logs each branch call to the run's calls file,
 * and injects branch faults from the profile's rates and its own seed.
 */
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { RunPaths } from "../contracts.ts";
import type { FaultRates } from "../participant/faults.ts";
import { participantArgs } from "../participant/spawn.ts";
import { freePort, ROOT } from "../../helpers/processes.ts";
import { Child } from "./child.ts";
import type { DbUrls } from "../participant/db-urls.ts";

const READY_TIMEOUT_MS = 60_000;

export interface RunningParticipant {
  readonly index: number;
  readonly child: Child;
  /** `http://127.0.0.1:<port>`: the base the branch URLs are built from. */
  readonly base: string;
}

function printsReady(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      if (line.includes('"ready":true')) {
        lines.close();
        resolve();
      }
    });
  });
}

export async function startParticipant(opts: {
  index: number;
  seed: number;
  paths: RunPaths;
  dbs: DbUrls;
  faultRates: FaultRates;
  lateMs: number;
}): Promise<RunningParticipant> {
  const port = await freePort();
  const child = new Child({
    name: `participant-${opts.index}`,
    cmd: process.execPath,
    args: ["--import", "tsx", ...participantArgs({ port, index: opts.index, seed: opts.seed, calls: opts.paths.calls, dbs: opts.dbs, faultRates: opts.faultRates, lateMs: opts.lateMs })],
    cwd: ROOT,
    logFile: join(opts.paths.dir, `participant-${opts.index}.log`),
    ready: printsReady,
    readyTimeoutMs: READY_TIMEOUT_MS,
  });
  await child.start();
  return { index: opts.index, child, base: `http://127.0.0.1:${port}` };
}
