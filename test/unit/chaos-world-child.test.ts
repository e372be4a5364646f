/**
 * The chaos world's child processes (test/chaos/world/child.ts): started from a recipe and ready
 * on a printed line, SIGKILLed and started again on the same recipe, paused and resumed for real
 * (SIGSTOP/SIGCONT), and none left alive by killAll.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, describe, expect, it } from "vitest";
import { Child, killAll, liveChildren } from "../chaos/world/child.ts";
import type { ChildRecipe } from "../chaos/world/child.ts";

const dir = mkdtempSync(join(tmpdir(), "dtx-chaos-child-"));
afterAll(() => {
  killAll();
  rmSync(dir, { recursive: true, force: true });
});

/** A process that prints "ready" then a tick every 20 ms until killed. */
function ticker(name: string, overrides: Partial<ChildRecipe> = {}): Child {
  return new Child({
    name,
    cmd: process.execPath,
    args: ["-e", "console.log('ready'); setInterval(() => console.log('tick ' + Date.now()), 20)"],
    logFile: join(dir, `${name}.log`),
    ready: (proc) => new Promise((resolve) => createInterface({ input: proc.stdout! }).once("line", () => resolve())),
    readyTimeoutMs: 10_000,
    ...overrides,
  });
}

const ticks = (name: string): number => readFileSync(join(dir, `${name}.log`), "utf8").split("\n").filter((l) => l.startsWith("tick")).length;

async function ticksGrow(name: string, timeoutMs = 5_000): Promise<boolean> {
  const before = ticks(name);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (ticks(name) > before) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

describe("chaos world child process", () => {
  it("starts when ready, dies by SIGKILL, restarts as a new process with the same log", async () => {
    const child = ticker("a");
    await child.start();
    const first = child.pid;
    expect(child.running).toBe(true);
    await child.kill();
    expect(child.running).toBe(false);
    await child.restart();
    expect(child.running).toBe(true);
    expect(child.pid).not.toBe(first);
    expect(child.starts).toBe(2);
    expect(readFileSync(join(dir, "a.log"), "utf8").match(/^ready$/gm)).toHaveLength(2);
    await child.kill();
  });

  it("a paused process writes nothing until resumed", async () => {
    const child = ticker("b");
    await child.start();
    child.pause();
    expect(child.isPaused).toBe(true);
    // A stopped process cannot tick: over 300 ms (15 of its intervals) at most the line or two
    // already in the pipe when it stopped arrive.
    const atPause = ticks("b");
    await ticksGrow("b", 300);
    await ticksGrow("b", 300);
    expect(ticks("b") - atPause).toBeLessThanOrEqual(2);
    child.resume();
    expect(await ticksGrow("b")).toBe(true);
    await child.kill();
  });

  it("fails the start of a process that exits before it is ready, and of one that is never ready", async () => {
    const exits = ticker("c", { args: ["-e", "process.exit(3)"] });
    await expect(exits.start()).rejects.toThrow(/exited \(3\) before it was ready/);
    const silent = ticker("d", { args: ["-e", "setInterval(() => {}, 1000)"], readyTimeoutMs: 300 });
    await expect(silent.start()).rejects.toThrow(/not ready within 300 ms/);
    expect(silent.running).toBe(false);
  });

  it("killAll leaves no child alive, paused ones included", async () => {
    const a = ticker("e");
    const b = ticker("f");
    await Promise.all([a.start(), b.start()]);
    b.pause();
    killAll();
    await Promise.all([a.waitExit(5_000), b.waitExit(5_000)]);
    expect(liveChildren()).toBe(0);
  });
});
