/**
 * The README's curl examples, run as written (through bash) against a real coordinator and the
 * sample participant (examples/participant.ts) as a child process: the two-step saga, the failing
 * saga (the participant told to fail with `?fail=1`, the compensations called in reverse) and the
 * JSON-RPC submit. Only the coordinator's address and the participant's port are replaced. Also
 * checks what the README says about an empty payload: the branch is called with GET.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestCoordinator } from "../helpers/coordinator.ts";
import { startCoordinator } from "../helpers/coordinator.ts";
import type { RunResult, SampleParticipant } from "../helpers/processes.ts";
import { ROOT, runToEnd, startSampleParticipant } from "../helpers/processes.ts";



interface Example {
  /** The first command of the section's `curl -s -XPOST` block, as written. */
  command: string;
  /** The `# ...` line after it: the answer the README shows. */
  shown: string;
}

/** The first `curl -s -XPOST` block of a README section: its command and the answer it shows. */
function readmeExample(heading: string): Example {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const start = readme.indexOf(`\n## ${heading}\n`);
  if (start < 0) throw new Error(`README.md has no '## ${heading}' section`);
  const end = readme.indexOf("\n## ", start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  const block = /```sh\n(curl -s -XPOST[\s\S]*?)```/.exec(section)?.[1];
  if (!block) throw new Error(`the README's '${heading}' section has no curl -s -XPOST block`);
  const lines = block.split("\n");
  const shownAt = lines.findIndex((l) => l.startsWith("# "));
  if (shownAt < 0) throw new Error(`the README's '${heading}' example shows no answer`);
  return { command: lines.slice(0, shownAt).join("\n"), shown: lines[shownAt]!.slice(2) };
}

let dtx: TestCoordinator;
let participant: SampleParticipant;
let participantBase = "";



/** Runs a README command through bash against this test's coordinator and participant. */
function runReadme(command: string): Promise<RunResult> {
  const adapted = command
    .replaceAll("localhost:36789", dtx.url.replace("http://", ""))
    .replaceAll("http://127.0.0.1:8081/api", participantBase);
  return runToEnd("bash", ["-c", adapted]);
}

/** The participant's log lines for one gid, without the gid (the participant logs each call). */
function callsOf(gid: string): string[] {
  return participant.log.filter((l) => l.includes(` gid=${gid} `)).map((l) => l.replace(` gid=${gid}`, ""));
}

interface QueryAnswer {
  transaction: { status: string; rollback_reason?: string } | null;
  branches: { branch_id: string; op: string; status: string }[];
}

async function query(gid: string): Promise<QueryAnswer> {
  const res = await fetch(`${dtx.url}/api/dtmsvr/query?gid=${gid}`);
  return (await res.json()) as QueryAnswer;
}

beforeAll(async () => {
  [dtx, participant] = await Promise.all([startCoordinator(), startSampleParticipant()]);
  participantBase = participant.base;
});

afterAll(async () => {
  participant?.child.kill("SIGKILL");
  await dtx?.stop();
});

describe("the README's curl examples", () => {
  it("the two-step saga succeeds with the answer the README shows", async () => {
    const example = readmeExample("A two-step saga with curl");
    const r = await runReadme(example.command);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(example.shown);
    expect((await query("transfer-1")).transaction?.status).toBe("succeed");
    expect(callsOf("transfer-1")).toEqual([
      'POST /api/TransOut branch_id=01 op=action body={"amount":30}',
      'POST /api/TransIn branch_id=02 op=action body={"amount":30}',
    ]);
  });

  it("the failing saga ends failed, with both compensations called in reverse", async () => {
    const example = readmeExample("A failing saga");
    const r = await runReadme(example.command);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(example.shown);
    expect(JSON.parse(r.stdout)).toMatchObject({ dtm_result: "FAILURE", code: "FAILURE" });

    const q = await query("transfer-2");
    expect(q.transaction?.status).toBe("failed");
    // The sample participant's answer has no message field, and its raw body is not echoed (echoBranchBodies).
    expect(q.transaction?.rollback_reason).toBe("HTTP 409: the branch answered FAILURE");
    expect(q.branches.map((b) => `${b.branch_id} ${b.op} ${b.status}`)).toEqual([
      "01 compensate succeed",
      "01 action succeed",
      "02 compensate succeed",
      "02 action failed",
    ]);
    expect(callsOf("transfer-2")).toEqual([
      'POST /api/TransOut branch_id=01 op=action body={"amount":30}',
      'POST /api/TransIn branch_id=02 op=action body={"amount":30} -> FAILURE',
      'POST /api/TransInRevert branch_id=02 op=compensate body={"amount":30}',
      'POST /api/TransOutRevert branch_id=01 op=compensate body={"amount":30}',
    ]);
  });

  it("the JSON-RPC submit answers what the README shows", async () => {
    const example = readmeExample("JSON-RPC");
    const r = await runReadme(example.command);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(example.shown);
    expect((await query("transfer-3")).transaction?.status).toBe("succeed");
  });

  it("a step with an empty payload is called with GET and no body", async () => {
    const res = await fetch(`${dtx.url}/api/dtmsvr/submit`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        gid: "empty-payload-1",
        trans_type: "saga",
        wait_result: true,
        steps: [{ action: `${participantBase}/TransOut`, compensate: `${participantBase}/TransOutRevert` }],
        payloads: [""],
      }),
    });
    expect(res.status).toBe(200);
    expect(callsOf("empty-payload-1")).toEqual(["GET /api/TransOut branch_id=01 op=action body="]);
  });
});
