/**
 * A child process of the chaos run that the nemesis can kill, pause and restart: started from a
 * fixed recipe (command, args, env, log file), so a restart brings back the same server on the
 * same port. Every child ever started is tracked in `LIVE`, and `killAll()` SIGKILLs whatever is
 * left, so a run that fails or is interrupted leaves nothing running.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { appendFileSync, closeSync, openSync } from "node:fs";

export interface ChildRecipe {
  /** For logs and nemesis events, e.g. "coordinator-1", "postgres". */
  name: string;
  cmd: string;
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** stdout and stderr are appended here. */
  logFile: string;
  /** Run as this user (the databases refuse to run as root). */
  uid?: number;
  gid?: number;
  /** Resolves once the process serves (bounded by the caller's timeout); rejects if it cannot. */
  ready: (child: ChildProcess) => Promise<void>;
  /** How long `ready` may take. */
  readyTimeoutMs: number;
}

const LIVE = new Set<ChildProcess>();
const GENTLE_KILL_BOUND_MS = 15_000;
const START_ATTEMPTS = 3;

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

export class Child {
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private paused = false;
  /** Bumped on every start: how many times this child has been (re)started. */
  starts = 0;

  constructor(readonly recipe: ChildRecipe) {}

  get name(): string {
    return this.recipe.name;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get running(): boolean {
    return this.proc !== undefined && alive(this.proc);
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Spawns the process and waits until it is ready; kills it if it is not ready in time. */
  async start(): Promise<void> {
    if (this.running) throw new Error(`${this.name} is already running`);
    const { recipe } = this;
    const fd = openSync(recipe.logFile, "a");
    let proc: ChildProcess;
    try {
      proc = spawn(recipe.cmd, recipe.args, {
        cwd: recipe.cwd,
        env: { ...process.env, ...recipe.env },
        stdio: ["ignore", "pipe", fd],
        uid: recipe.uid,
        gid: recipe.gid,
      });
    } finally {
      closeSync(fd);
    }
    this.proc = proc;
    this.paused = false;
    this.starts += 1;
    LIVE.add(proc);
    this.exited = new Promise<void>((resolve) =>
      proc.once("exit", () => {
        LIVE.delete(proc);
        resolve();
      }),
    );
    // stdout is both the log and the ready signal: copy it to the log file as it comes.
    const log = openSync(recipe.logFile, "a");
    proc.stdout?.on("data", (chunk: Buffer) => {
      try {
        appendFileSync(log, chunk);
      } catch {
        // the log is best effort
      }
    });
    proc.once("exit", () => closeSync(log));
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        recipe.ready(proc),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`${this.name} not ready within ${recipe.readyTimeoutMs} ms (log: ${recipe.logFile})`)), recipe.readyTimeoutMs);
        }),
        this.exited.then(() => {
          throw new Error(`${this.name} exited (${String(proc.exitCode ?? proc.signalCode)}) before it was ready (log: ${recipe.logFile})`);
        }),
      ]);
    } catch (error) {
      await this.kill();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Starts it, trying again (up to `attempts` times) when it exits or is not ready, as a process
   * supervisor would: a coordinator refuses to start when its store times out at its start-up
   * checks, which a loaded machine makes happen right after a fault.
   */
  async startSupervised(attempts = START_ATTEMPTS): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.start();
        return;
      } catch (error) {
        if (attempt >= attempts) throw error;
      }
    }
  }

  /** Sends `signal` (SIGKILL by default) and waits for the exit; a paused process is resumed first so it can die. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const proc = this.proc;
    if (!proc || !alive(proc)) return;
    proc.kill(signal);
    if (this.paused && signal !== "SIGKILL") proc.kill("SIGCONT");
    this.paused = false;
    // A process that ignores a gentler signal is SIGKILLed after a bound.
    if (signal !== "SIGKILL" && !(await this.waitExit(GENTLE_KILL_BOUND_MS))) proc.kill("SIGKILL");
    await this.exited;
  }

  /** Waits (bounded) for the process to exit on its own, e.g. after `pg_ctl stop`. */
  async waitExit(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      this.exited.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    return done;
  }

  pause(): void {
    if (!this.proc || !alive(this.proc)) return;
    this.proc.kill("SIGSTOP");
    this.paused = true;
  }

  resume(): void {
    if (!this.proc || !alive(this.proc)) return;
    this.proc.kill("SIGCONT");
    this.paused = false;
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.start();
  }
}

/** SIGKILLs every child still alive (resuming the paused ones is not needed for SIGKILL). */
export function killAll(): void {
  for (const proc of LIVE) {
    try {
      proc.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
}

/** How many children are alive (the run checks it is 0 at the end). */
export function liveChildren(): number {
  return LIVE.size;
}
