/**
 * The chaos checker's rules (test/chaos/checker/gN-*.ts), over synthetic runs: a clean run passes,
 * and for each goal a minimal run that breaks it once is reported, naming the gid.
 */
import { describe, expect, it } from "vitest";
import type { Report } from "../chaos/contracts.ts";
import { check } from "../chaos/checker/check.ts";
import { summaryLine } from "../chaos/checker/summary.ts";
import { SyntheticRun } from "../chaos/checker/synthetic-run.ts";

/** A clean run: every kind once, Postgres, MariaDB and Redis accounts, one saga failing. */
function cleanRun(): SyntheticRun {
  const run = new SyntheticRun();
  run.saga("t42-1", { from: 0, to: 1, amount: 10 });
  run.saga("t42-2", { from: 2, to: 5, amount: 7 });
  run.saga("t42-3", { from: 9, to: 3, amount: 60 }, "failed");
  run.saga("t42-4", { from: 29, to: 3, amount: 60 }, "failed");
  run.tcc("t42-5", { from: 3, to: 4, amount: 5 });
  run.tcc("t42-6", { from: 5, to: 8, amount: 5 });
  run.xa("t42-7", { from: 6, to: 7, amount: 3 });
  run.msg("t42-8", { from: 10, to: 11, amount: 4 });
  run.workflow("t42-9", { from: 12, to: 13, amount: 2 });
  run.workflow("t42-10", { from: 15, to: 19, amount: 70 }, "failed");
  return run;
}

/** coordinator-0 SIGSTOPped from the run's `now` for `ms` (the clock is not moved); returns when it resumed. */
function pauseCoordinator0(run: SyntheticRun, ms: number): number {
  const end = run.now + ms;
  run.nemesis.push({ at: run.now, phase: "start", fault: "coordinator-pause", target: "coordinator-0", detail: { durationMs: ms } });
  run.nemesis.push({ at: end, phase: "end", fault: "coordinator-pause", target: "coordinator-0" });
  return end;
}

function violationsOf(report: Report, goal: string): Array<{ gid?: string; message: string }> {
  return report.violations.filter((v) => v.goal === goal).map((v) => ({ ...(v.gid !== undefined ? { gid: v.gid } : {}), message: v.message }));
}

describe("chaos checker", () => {
  it("passes a clean run and sums it up in one line", () => {
    const report = check(cleanRun().input());
    expect(report.violations).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.transactions).toMatchObject({ invoked: 10, acknowledged: 10, byFinalStatus: { succeed: 7, failed: 3 } });
    const line = summaryLine(report);
    expect(line.split("\n")).toHaveLength(1);
    expect(line).toMatch(/^chaos seed=42 store=postgres profile=smoke tx=10 ack=10 succeed=7 failed=3 .* G1 ok G2 ok G3 ok G4 ok G5 ok G6 ok G7 ok G8 ok settle=0\.0s .*PASS$/);
  });

  it("G1: an acknowledged gid no coordinator knows is lost", () => {
    const run = cleanRun();
    run.final.splice(run.final.findIndex((f) => f.gid === "t42-5"), 1);
    const report = check(run.input());
    expect(violationsOf(report, "G1")).toEqual([{ gid: "t42-5", message: expect.stringContaining("lost") as string }]);
    expect(report.ok).toBe(false);
    expect(summaryLine(report)).toContain("G1 ✗(1)");
  });

  it("G1: an acknowledged gid that is not terminal, and a stored vanished-sender msg that is not", () => {
    const run = cleanRun();
    run.final.find((f) => f.gid === "t42-1")!.status = "submitted";
    run.intents.push({ gid: "t42-99", kind: "msg", via: "http", transfers: [{ from: 12, to: 13, amount: 1 }], senderVanishes: true });
    run.request("t42-99", "prepare", "info");
    run.final.push({ gid: "t42-99", status: "prepared", transType: "msg", branches: [] });
    const g1 = violationsOf(check(run.input()), "G1");
    expect(g1.map((v) => v.gid).sort()).toEqual(["t42-1", "t42-99"]);
    expect(g1.find((v) => v.gid === "t42-99")!.message).toContain("sender vanished");
  });

  it("G2: a stored, unacknowledged gid left unfinished, and a slow settle", () => {
    const run = cleanRun();
    run.intents.push({ gid: "t42-99", kind: "saga", via: "grpc", transfers: [{ from: 12, to: 13, amount: 1 }] });
    run.request("t42-99", "submit", "info");
    run.final.push({ gid: "t42-99", status: "submitted", transType: "saga", branches: [] });
    run.fault("kill", "coordinator-1", 100);
    run.settledAt = run.lastFaultEndedAt + 61_000;
    const report = check(run.input());
    const g2 = violationsOf(report, "G2");
    expect(g2).toContainEqual({ gid: "t42-99", message: expect.stringContaining("not terminal") as string });
    expect(g2).toContainEqual({ message: expect.stringContaining("61000 ms to settle") as string });
    expect(report.settleMs).toBe(61_000);
  });

  it("G3: an effect applied twice (the same row again, the balance moved twice)", () => {
    const run = cleanRun();
    run.effect("t42-1", "02", "action", 1, 10);
    const report = check(run.input());
    expect(violationsOf(report, "G3")).toContainEqual({ gid: "t42-1", message: expect.stringContaining("op action applied 2 times") as string });
    expect(violationsOf(report, "G4")).toContainEqual({ gid: "t42-1", message: expect.stringContaining("account 1 (mysql) holds 10020") as string });
  });

  it("G3: a failed saga whose null compensation still moved money, on Redis (barrier keys only)", () => {
    const run = cleanRun();
    // t42-4: 29 (redis) -> 3; its action failed; a compensation that refunds anyway:
    run.effect("t42-4", "01", "compensate", 29, 60);
    run.db.barriers = run.db.barriers.filter((b) => !(b.gid === "t42-4" && b.op === "action"));
    const g3 = violationsOf(check(run.input()), "G3");
    expect(g3).toEqual([{ gid: "t42-4", message: expect.stringContaining("failed needs action=compensate, found action=0 compensate=1") as string }]);
  });

  it("G3: a succeeded TCC whose branch was also cancelled, and an XA that failed with committed work", () => {
    const run = cleanRun();
    run.effect("t42-5", "01", "cancel", 3, 5, -5);
    run.final.find((f) => f.gid === "t42-7")!.status = "failed";
    const g3 = violationsOf(check(run.input()), "G3");
    expect(g3).toContainEqual({ gid: "t42-5", message: expect.stringContaining("succeed needs try=confirm=1 cancel=0") as string });
    expect(g3).toContainEqual({ gid: "t42-7", message: expect.stringContaining("the XA failed but 2 effect rows are committed") as string });
  });

  it("G3: a failed workflow whose rollback did not run, and a succeeded one that also rolled back", () => {
    const run = cleanRun();
    run.db.effects = run.db.effects.filter((e) => !(e.gid === "t42-10" && e.op === "rollback"));
    run.account(15).balance -= 70;
    run.effect("t42-9", "02", "rollback", 13, -2);
    const g3 = violationsOf(check(run.input()), "G3");
    expect(g3).toEqual([
      { gid: "t42-10", message: expect.stringContaining("branch 01: a failed workflow needs commit=0 and undo=forward, found forward=1 commit=0 undo=0") as string },
      { gid: "t42-9", message: expect.stringContaining("branch 02: a succeeded workflow needs undo=0 and commit ≤ forward, found forward=1 commit=0 undo=1") as string },
    ]);
  });

  it("G4: a conservation break names the account and the gids that touched it", () => {
    const run = cleanRun();
    run.account(4).balance -= 1;
    const g4 = violationsOf(check(run.input()), "G4");
    expect(g4).toContainEqual({ message: expect.stringContaining("total balance + frozen is") as string });
    expect(g4).toContainEqual({ gid: "t42-5", message: expect.stringMatching(/account 4 \(mysql\) holds 10004 .*expected 10005; touched by 1 gids: t42-5:succeed/) as string });
  });

  it("G4: money left frozen after a TCC ended", () => {
    const run = cleanRun();
    run.account(3).balance -= 2;
    run.account(3).frozen += 2;
    const g4 = violationsOf(check(run.input()), "G4");
    expect(g4).toEqual([{ gid: "t42-3", message: expect.stringContaining("account 3 (postgres) still holds 2 frozen") as string }]);
  });

  it("G5: an illegal transition, two writers leaving one status, and a terminal status that changed", () => {
    const run = cleanRun();
    run.change("t42-2", "saga", "succeed", "failed");
    run.change("t42-6", "tcc", "submitted", "aborting");
    const g5 = violationsOf(check(run.input()), "G5");
    expect(g5).toContainEqual({ gid: "t42-2", message: expect.stringContaining("illegal transition succeed → failed") as string });
    expect(g5).toContainEqual({ gid: "t42-2", message: expect.stringContaining("logged terminal failed but the final status is succeed") as string });
    expect(g5).toContainEqual({ gid: "t42-6", message: expect.stringContaining("illegal transition submitted → aborting") as string });
    expect(g5).toContainEqual({ gid: "t42-6", message: expect.stringContaining("two writes left submitted") as string });
  });

  it("G5: a terminal change logged after the final statuses were read is not held against them (a run that never settled)", () => {
    const run = cleanRun();
    const input = { ...run.input(), finalReadAt: run.now + 5 };
    run.final.push({ gid: "t42-98", status: "submitted", transType: "saga", branches: [] });
    run.moves("t42-98", "saga", "submitted");
    run.now += 10;
    run.change("t42-98", "saga", "submitted", "succeed");
    const late = { ...input, statusChanges: run.input().statusChanges };
    expect(violationsOf(check(late), "G5")).toEqual([]);
    expect(violationsOf(check({ ...late, finalReadAt: run.now + 1 }), "G5")).toEqual([{ gid: "t42-98", message: expect.stringContaining("logged terminal succeed but the final status is submitted") as string }]);
  });

  it("G5: a status a client saw going backwards", () => {
    const run = cleanRun();
    run.request("t42-1", "query", "ok", "succeed");
    run.request("t42-1", "query", "ok", "submitted");
    expect(violationsOf(check(run.input()), "G5")).toEqual([{ gid: "t42-1", message: "status went backwards: a client saw succeed, then later submitted" }]);
  });

  it("G5: a final status outside the enums", () => {
    const run = cleanRun();
    run.final.find((f) => f.gid === "t42-7")!.branches[0]!.status = "committed";
    expect(violationsOf(check(run.input()), "G5")).toEqual([{ gid: "t42-7", message: "statuses outside the enum: 01/rollback=committed" }]);
  });

  it("G6: an XA transaction left prepared names its gid", () => {
    const run = cleanRun();
    run.db.preparedXa.push({ db: "postgres", xid: "t42-7-01" });
    expect(violationsOf(check(run.input()), "G6")).toEqual([{ gid: "t42-7", message: "XA transaction t42-7-01 left prepared in postgres" }]);
  });

  it("G7: a second call within the first one's deadline is two drivers; one after the deadline is a legal retry", () => {
    const run = cleanRun();
    const first = run.call("t42-1", "02", "compensate", "ERROR", 3_000);
    run.now = first + 390;
    run.call("t42-1", "02", "compensate", "ERROR");
    run.now = first + 1_090;
    run.call("t42-1", "02", "compensate", "SUCCESS");
    const g7 = violationsOf(check(run.input()), "G7");
    expect(g7).toHaveLength(1);
    expect(g7[0]).toEqual({ gid: "t42-1", message: expect.stringMatching(/branch 02 op compensate: call c\d+ \(pid 100\) started 400 ms after call/) as string });
  });

  it("G7: a call a coordinator sent on resuming from SIGSTOP, overlapped by the next pass's call, is excused and counted", () => {
    // Smoke, seed 20261206, sqlite (c20261206-301).
    const run = cleanRun();
    const pauseEnd = pauseCoordinator0(run, 3_000);
    run.now = pauseEnd + 40;
    const late = run.call("t42-68", "01", "action", "SUCCESS", 200);
    run.now = late + 110;
    run.call("t42-68", "01", "action", "SUCCESS");
    let report = check(run.input());
    expect(violationsOf(report, "G7")).toEqual([]);
    expect(report.goals.G7.detail).toMatch(/0 overlapping call pairs; 1 excused/);
    // Far from a resume the same overlap is two drivers.
    run.now += 30_000;
    const first = run.call("t42-69", "01", "action", "SUCCESS", 200);
    run.now = first + 110;
    run.call("t42-69", "01", "action", "SUCCESS");
    report = check(run.input());
    expect(violationsOf(report, "G7")).toEqual([{ gid: "t42-69", message: expect.stringContaining("within its 1000 ms deadline") as string }]);
  });

  it("G7: a call cut short by the participant's kill ends at the kill", () => {
    const run = cleanRun();
    run.calls.push({ type: "start", callId: "k1", pid: 100, at: run.tick(), gid: "t42-2", branchId: "01", op: "action", path: "/api/action" });
    const start = run.now;
    run.nemesis.push({ at: start + 100, phase: "start", fault: "participant-kill", target: "participant-0", detail: { pid: 100 } });
    run.nemesis.push({ at: start + 2_000, phase: "end", fault: "participant-kill", target: "participant-0" });
    run.calls.push({ type: "start", callId: "k2", pid: 101, at: start + 300, gid: "t42-2", branchId: "01", op: "action", path: "/api/action" });
    run.calls.push({ type: "end", callId: "k2", pid: 101, at: start + 320, result: "SUCCESS" });
    run.now = start + 2_000;
    run.lastFaultEndedAt = run.now;
    expect(violationsOf(check(run.input()), "G7")).toEqual([]);
  });

  it("G7: a kill that names no pid ends the calls of the process that fell silent, not of another one", () => {
    const run = cleanRun();
    const start = run.tick();
    const line = (pid: number, at: number, callId: string, gid = "t42-2"): void => {
      run.calls.push({ type: "start", callId, pid, at, gid, branchId: "01", op: "action", path: "/api/action" });
    };
    line(100, start, "k1");
    run.nemesis.push({ at: start + 100, phase: "start", fault: "participant-kill", target: "participant-1", detail: { index: 1 } });
    line(100, start + 150, "other", "t42-1");
    run.calls.push({ type: "end", callId: "other", pid: 100, at: start + 160, result: "SUCCESS" });
    run.nemesis.push({ at: start + 600, phase: "start", fault: "participant-kill", target: "participant-0", detail: { index: 0 } });
    line(300, start + 400, "k2");
    run.calls.push({ type: "end", callId: "k2", pid: 300, at: start + 420, result: "SUCCESS" });
    run.nemesis.push({ at: start + 2_000, phase: "end", fault: "participant-kill", target: "participant-0" }, { at: start + 2_000, phase: "end", fault: "participant-kill", target: "participant-1" });
    run.now = start + 2_000;
    run.lastFaultEndedAt = run.now;
    expect(violationsOf(check(run.input()), "G7")).toEqual([{ gid: "t42-2", message: expect.stringContaining("started 400 ms after call k1 (pid 100, killed at +600 ms)") as string }]);
  });

  it("G8: a retry storm, and a retry later than the cap with no fault in between", () => {
    const run = cleanRun();
    const storm = run.call("t42-3", "01", "compensate", "ERROR");
    for (let i = 1; i <= 3; i++) {
      run.now = storm + i * 1_000 + i * 10;
      run.call("t42-3", "01", "compensate", "ERROR");
    }
    run.now += 20;
    run.call("t42-3", "01", "compensate", "ERROR");
    run.now += 30_000;
    run.call("t42-3", "01", "compensate", "SUCCESS");
    const g8 = violationsOf(check(run.input()), "G8");
    expect(g8).toEqual([
      { gid: "t42-3", message: expect.stringContaining("(retry storm)") as string },
      { gid: "t42-3", message: expect.stringContaining("above the cap") as string },
    ]);
  });

  it("G7/G8 leave out the calls the application makes too: a msg check-back, a TCC try", () => {
    const run = cleanRun();
    const first = run.call("t42-8", "00", "msg", "FAILURE", 600);
    run.now = first + 490;
    run.call("t42-8", "00", "msg", "FAILURE");
    run.call("t42-5", "01", "try", "SUCCESS");
    const report = check(run.input());
    expect([...violationsOf(report, "G7"), ...violationsOf(report, "G8")]).toEqual([]);
  });

  it("G4 judges the total only once nothing is open; the accounts of an open gid are left to G1/G2", () => {
    const run = cleanRun();
    run.intents.push({ gid: "t42-99", kind: "saga", via: "http", transfers: [{ from: 16, to: 17, amount: 5 }] });
    run.request("t42-99", "submit", "info");
    run.effect("t42-99", "01", "action", 16, -5);
    run.final.push({ gid: "t42-99", status: "submitted", transType: "saga", branches: [] });
    const report = check(run.input());
    expect(violationsOf(report, "G4")).toEqual([]);
    expect(report.goals.G4.detail).toMatch(/not judged \(1 gids open\); 0 accounts differ, 2 accounts left open/);
    expect(violationsOf(report, "G2")).toEqual([{ gid: "t42-99", message: expect.stringContaining("not terminal") as string }]);
  });

  it("G8: a long gap across a fault is legal", () => {
    const run = cleanRun();
    const first = run.call("t42-3", "01", "compensate", "ERROR");
    run.fault("kill", "participant-0", 20_000);
    run.call("t42-3", "01", "compensate", "SUCCESS");
    expect(run.now - first).toBeGreaterThan(20_000);
    expect(violationsOf(check(run.input()), "G8")).toEqual([]);
  });

  it("G8: a call that reaches the participant just after the coordinator resumed, then the next pass's call, is no storm", () => {
    // Smoke, seed 20261206, sqlite (c20261206-259): the pass started confirm, was SIGSTOPped
    // before the bytes went out, and lost its claim on resume; the cron's new pass confirmed again.
    const run = cleanRun();
    const pauseEnd = pauseCoordinator0(run, 3_000);
    run.now = pauseEnd + 40;
    run.call("t42-66", "02", "confirm", "SUCCESS");
    run.now += 140;
    run.call("t42-66", "02", "confirm", "SUCCESS");
    expect(violationsOf(check(run.input()), "G8")).toEqual([]);
    // The same two calls far from any coordinator fault are a storm.
    run.now += 30_000;
    run.call("t42-67", "02", "confirm", "SUCCESS");
    run.now += 140;
    run.call("t42-67", "02", "confirm", "SUCCESS");
    expect(violationsOf(check(run.input()), "G8")).toEqual([{ gid: "t42-67", message: expect.stringContaining("(retry storm)") as string }]);
  });

  it("G8: a quick retry right after the client's repeated submit is a retry storm (a submit does not hurry a backoff)", () => {
    const run = cleanRun();
    run.call("t42-3", "01", "action", "ERROR");
    run.request("t42-3", "submit", "ok");
    run.call("t42-3", "01", "action", "SUCCESS");
    expect(violationsOf(check(run.input()), "G8")).toEqual([{ gid: "t42-3", message: expect.stringContaining("(retry storm)") as string }]);
  });

  it("G8: the cap counts from the end of the previous pass, which may go on with other branches after one failed", () => {
    // Full profile, seed 1, c1-8295: a concurrent saga's pass ran two more waves after branch 01 was late.
    const run = cleanRun();
    const gid = "t42-77";
    const first = run.call(gid, "01", "action", "ERROR");
    run.now = first + 2_500;
    run.call(gid, "04", "action", "ERROR");
    run.now = first + 4_000;
    run.call(gid, "06", "action", "ERROR");
    // 12 s after the pass's last call (under the 8.8 + 1 + 1 + 2 s cap), 16 s after branch 01's call.
    run.now = first + 4_000 + 12_000;
    run.call(gid, "01", "action", "ERROR");
    run.call(gid, "04", "action", "ERROR");
    run.call(gid, "06", "action", "ERROR");
    expect(violationsOf(check(run.input()), "G8")).toEqual([]);
    run.now += 14_000;
    run.call(gid, "01", "action", "SUCCESS");
    expect(violationsOf(check(run.input()), "G8")).toEqual([{ gid, message: expect.stringContaining("above the cap") as string }]);
  });

  it("coverage: a run where every transaction failed does not pass", () => {
    const run = new SyntheticRun();
    for (let i = 1; i <= 5; i++) run.saga(`t7-${i}`, { from: 9, to: 3 + i, amount: 60 }, "failed");
    const report = check(run.input());
    expect(report.violations).toEqual([]);
    expect(report.coverage).toMatchObject({ ok: false, succeededShare: 0 });
    expect(report.ok).toBe(false);
    expect(summaryLine(report)).toMatch(/coverage=0<0\.2 FAIL$/);
  });
});
