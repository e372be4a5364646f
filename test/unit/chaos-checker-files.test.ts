/**
 * The chaos checker's file side: JSONL readers that survive a torn line (a process SIGKILLed
 * mid-append), the coordinators' "status changed" log lines, and `npm run chaos:check -- --dir`
 * re-checking a run directory written to disk (exit code, report.json, one summary line).
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Report, RunInfo } from "../chaos/contracts.ts";
import { runPaths } from "../chaos/contracts.ts";
import { parseStatusLine, readJsonl, readRun } from "../chaos/checker/read.ts";
import { SyntheticRun } from "../chaos/checker/synthetic-run.ts";
import { runToEnd } from "../helpers/processes.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "dtx-chaos-check-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const jsonl = (items: unknown[]): string => items.map((i) => `${JSON.stringify(i)}\n`).join("");

/** Writes a run directory as the world would, with one coordinator log. */
function writeRun(run: SyntheticRun): void {
  const input = run.input();
  const paths = runPaths(dir);
  writeFileSync(paths.history, jsonl(input.history));
  writeFileSync(paths.intents, jsonl(input.intents));
  writeFileSync(paths.calls, jsonl(input.calls));
  writeFileSync(paths.nemesis, jsonl(input.nemesis));
  writeFileSync(paths.final, JSON.stringify(input.final));
  writeFileSync(paths.db, JSON.stringify(input.db));
  const info: RunInfo = { seed: 42, store: "postgres", profile: "smoke", startedAt: run.startedAt, endedAt: run.now, lastFaultEndedAt: input.lastFaultEndedAt, settledAt: input.settledAt, timings: input.timings };
  writeFileSync(paths.run, JSON.stringify(info));
  const log = (input.statusChanges ?? []).map((c) => ({ level: 20, time: new Date(c.at).toISOString(), service: "dtx", gid: c.gid, transType: c.transType, from: c.from, to: c.to, cause: c.cause, msg: "status changed" }));
  writeFileSync(join(dir, "coordinator-0.log"), jsonl([{ level: 30, time: new Date(run.startedAt).toISOString(), msg: "dtx listening" }, ...log]));
}

function sampleRun(): SyntheticRun {
  const run = new SyntheticRun();
  run.saga("t42-1", { from: 0, to: 1, amount: 10 });
  run.tcc("t42-2", { from: 3, to: 5, amount: 5 });
  return run;
}

describe("chaos checker files", () => {
  it("skips and counts torn lines anywhere, keeps every whole one", async () => {
    const path = join(dir, "calls.jsonl");
    writeFileSync(path, `${JSON.stringify({ type: "start", callId: "a", pid: 1, at: 1, gid: "g", branchId: "01", op: "action", path: "/a" })}\n{"type":"end","cal`);
    appendFileSync(path, `${JSON.stringify({ type: "end", callId: "a", pid: 1, at: 2, result: "SUCCESS" })}\n[1]\n{"type":"st`);
    const read = await readJsonl<{ callId: string }>(path, (o) => typeof o["callId"] === "string");
    expect(read.items.map((i) => i.callId)).toEqual(["a"]);
    expect(read.skipped).toBe(3);
    await expect(readJsonl(join(dir, "absent.jsonl"), () => true)).rejects.toThrow(/ENOENT/);
    expect(await readJsonl(join(dir, "absent.jsonl"), () => true, true)).toEqual({ items: [], skipped: 0 });
  });

  it("reads the coordinator's status lines and ignores every other log line", () => {
    const line = '{"level":20,"time":"2026-12-06T14:00:00.000Z","service":"dtx","gid":"t1-1","transType":"saga","from":"submitted","to":"succeed","cause":"pass","msg":"status changed"}';
    expect(parseStatusLine(line, 1)).toEqual({ at: Date.parse("2026-12-06T14:00:00.000Z"), coordinator: 1, gid: "t1-1", transType: "saga", from: "submitted", to: "succeed", cause: "pass" });
    expect(parseStatusLine(line.replace('"from":"submitted",', '"from":null,'), 0)).toMatchObject({ from: null, to: "succeed" });
    expect(parseStatusLine('{"level":30,"msg":"dtx listening"}', 0)).toBeUndefined();
    expect(parseStatusLine(line.slice(0, 80) + '"status changed"', 0)).toBe("torn");
  });

  it("readRun gives back what the world wrote, status changes included", async () => {
    const run = sampleRun();
    writeRun(run);
    const read = await readRun(dir);
    expect(read.history).toEqual(run.history);
    expect(read.statusChanges).toEqual(run.statusChanges);
    expect(read.skippedLines).toEqual({ history: 0, intents: 0, calls: 0, nemesis: 0, coordinatorLogs: 0 });
  });

  it("npm run chaos:check -- --dir re-checks a run: exit 0 and PASS, then exit 1 naming the lost gid", async () => {
    const run = sampleRun();
    writeRun(run);
    const pass = await runToEnd("npm", ["run", "--silent", "chaos:check", "--", "--dir", dir]);
    expect(pass.stderr).toBe("");
    expect(pass.code).toBe(0);
    expect(pass.stdout.trim().split("\n")).toHaveLength(1);
    expect(pass.stdout).toMatch(/^chaos seed=42 store=postgres profile=smoke tx=2 ack=2 .*PASS\n$/);
    expect((JSON.parse(readFileSync(join(dir, "report.json"), "utf8")) as Report).ok).toBe(true);

    writeFileSync(runPaths(dir).final, JSON.stringify(run.final.filter((f) => f.gid !== "t42-2")));
    const fail = await runToEnd("npm", ["run", "--silent", "chaos:check", "--", "--dir", dir]);
    expect(fail.code).toBe(1);
    expect(fail.stderr).toContain("G1 t42-2: acknowledged submit lost");
    expect(fail.stdout).toMatch(/G1 ✗\(1\).* FAIL\n$/);
    const report = JSON.parse(readFileSync(join(dir, "report.json"), "utf8")) as Report;
    expect(report.violations.find((v) => v.goal === "G1")).toMatchObject({ gid: "t42-2", events: expect.arrayContaining([expect.objectContaining({ gid: "t42-2", type: "ok" })]) as unknown[] });
  });

  it("a run directory without run.json is a usage error (exit 2), not a pass", async () => {
    const result = await runToEnd("npm", ["run", "--silent", "chaos:check", "--", "--dir", dir]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/chaos:check: .*ENOENT/);
  });
});
