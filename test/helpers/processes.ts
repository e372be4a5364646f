/**
 * Child processes and ports for the e2e tests that run the project as a user would: a command run
 * to its end (the built `dtx`, bash running a README line), the sample participant
 * (examples/participant.ts) on a free port, and a port that was free a moment ago.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";

/** The repository's root folder. */
export const ROOT = new URL("../../", import.meta.url).pathname;

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `cmd args` in the repository root with `env` added to this process's environment, and
 * resolves when it has exited; SIGKILLed (resolving with that signal) after `timeoutMs`.
 */
export function runToEnd(cmd: string, args: string[], env: Record<string, string> = {}, timeoutMs = 30_000): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (e) => (stderr += String(e)));
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Whether a process with this pid still exists (signal 0 probes without signalling). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago (so a restarted server can keep its URL). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface SampleParticipant {
  /** `http://127.0.0.1:<port>/api`, as the participant prints it. */
  readonly base: string;
  /** Every line it has printed (it logs each call). */
  readonly log: readonly string[];
  readonly child: ChildProcess;
}

/** Starts examples/participant.ts on a free port; resolves once it listens. The caller kills `child`. */
export async function startSampleParticipant(): Promise<SampleParticipant> {
  const port = await freePort();
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "examples/participant.ts")], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const log: string[] = [];
  const base = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      log.push(line);
      const m = /listening on (http:\/\/\S+\/api)/.exec(line);
      if (m) resolve(m[1]!);
    });
    child.once("exit", (code) => reject(new Error(`the sample participant exited (${String(code)}) before listening`)));
  });
  return { base, log, child };
}
