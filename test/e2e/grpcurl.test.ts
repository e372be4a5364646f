/**
 * The README's grpcurl commands, run as written (through bash) against a real coordinator, with
 * grpcurl built from its Go module (scripts/grpcurl.sh) and the sample participant
 * (examples/participant.ts) as a child process. Everything goes through server reflection: no
 * .proto file is given to grpcurl. Only the address, the participant's port and the gid are
 * replaced.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestCoordinator } from "../helpers/coordinator.ts";
import { startCoordinator } from "../helpers/coordinator.ts";
import type { RunResult, SampleParticipant } from "../helpers/processes.ts";
import { ROOT, runToEnd, startSampleParticipant } from "../helpers/processes.ts";

const BUILD_TIMEOUT_MS = 10 * 60_000;


/** The `grpcurl ...` lines of the README's gRPC section, in order. */
function readmeCommands(): string[] {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const start = readme.indexOf("\n## gRPC\n");
  if (start < 0) throw new Error("README.md has no '## gRPC' section");
  const end = readme.indexOf("\n## ", start + 1);
  return readme
    .slice(start, end < 0 ? undefined : end)
    .split("\n")
    .filter((l) => l.startsWith("grpcurl "));
}

const commands = readmeCommands();
const find = (what: string): string => {
  const line = commands.find((l) => l.includes(what));
  if (!line) throw new Error(`the README's gRPC section has no grpcurl command with ${what}`);
  return line;
};

let grpcurlDir = "";
let dtx: TestCoordinator;
let participant: SampleParticipant;
let participantBase = "";



/** Runs one README line through bash with the built grpcurl first on PATH. */
function runReadmeLine(line: string, gid = "grpcurl-saga-1"): Promise<RunResult> {
  const adapted = line
    .replaceAll("localhost:36790", `127.0.0.1:${dtx.grpcPort}`)
    .replaceAll("http://127.0.0.1:8081/api", participantBase)
    .replaceAll("grpcurl-saga-1", gid);
  return runToEnd("bash", ["-c", adapted], { PATH: `${grpcurlDir}:${process.env["PATH"] ?? ""}` });
}

beforeAll(async () => {
  const build = await runToEnd("bash", ["scripts/grpcurl.sh", "build"], {}, BUILD_TIMEOUT_MS);
  if (build.code !== 0) throw new Error(`scripts/grpcurl.sh build failed (exit ${String(build.code)}):\n${build.stderr}`);
  grpcurlDir = join(build.stdout.trim(), "..");
  [dtx, participant] = await Promise.all([startCoordinator(), startSampleParticipant()]);
  participantBase = participant.base;
}, BUILD_TIMEOUT_MS + 60_000);

afterAll(async () => {
  participant?.child.kill("SIGKILL");
  await dtx?.stop();
});

describe("grpcurl over server reflection (the README's commands)", () => {
  it("the README lists list, describe, health, NewGid and a saga Submit", () => {
    expect(commands.length).toBeGreaterThanOrEqual(6);
  });

  it("list shows dtm's service and the health service", async () => {
    const r = await runReadmeLine(find(" list"));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n")).toEqual(expect.arrayContaining(["dtmgimp.Dtm", "grpc.health.v1.Health"]));
  });

  it("describe resolves dtm's service and its messages, map fields included", async () => {
    const service = await runReadmeLine(commands.find((l) => l.endsWith("describe dtmgimp.Dtm")) ?? find("describe dtmgimp.Dtm"));
    expect(service.stderr).toBe("");
    expect(service.stdout).toContain("rpc Submit ( .dtmgimp.DtmRequest ) returns ( .google.protobuf.Empty )");
    const request = await runReadmeLine(find("describe dtmgimp.DtmRequest"));
    expect(request.stderr).toBe("");
    expect(request.stdout).toContain("map<string, string> ReqExtra = 8;");
    expect(request.stdout).toContain(".dtmgimp.DtmTransOptions TransOptions = 3;");
  });

  it("every message and service of every file served resolves (describe of each symbol)", async () => {
    const listed = await runReadmeLine(`grpcurl -plaintext localhost:36790 list`);
    for (const service of listed.stdout.trim().split("\n")) {
      const r = await runReadmeLine(`grpcurl -plaintext localhost:36790 describe ${service}`);
      expect({ service, stderr: r.stderr, code: r.code }).toEqual({ service, stderr: "", code: 0 });
    }
    for (const message of ["dtmgimp.DtmTransOptions", "dtmgimp.DtmBranchRequest", "dtmgimp.DtmProgressesReply", "grpc.health.v1.HealthCheckResponse", "google.protobuf.Empty"]) {
      const r = await runReadmeLine(`grpcurl -plaintext localhost:36790 describe ${message}`);
      expect({ message, stderr: r.stderr, code: r.code }).toEqual({ message, stderr: "", code: 0 });
    }
  });

  it("the health check answers SERVING", async () => {
    const r = await runReadmeLine(find("grpc.health.v1.Health/Check"));
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.stdout)).toEqual({ status: "SERVING" });
  });

  it("NewGid returns a gid", async () => {
    const r = await runReadmeLine(find("dtmgimp.Dtm/NewGid"));
    expect(r.stderr).toBe("");
    expect((JSON.parse(r.stdout) as { Gid: string }).Gid).toMatch(/^[A-Za-z0-9]{20,24}$/);
  });

  it("the saga Submit runs both actions on the participant and the trans ends succeeded", async () => {
    const gid = `grpcurl-saga-${Date.now().toString(36)}`;
    const r = await runReadmeLine(find("dtmgimp.Dtm/Submit"), gid);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const { transaction, branches } = await dtx.client.query(gid);
    expect(transaction?.status).toBe("succeed");
    expect(branches.map((b) => `${b.op}:${b.status}`)).toEqual(["compensate:prepared", "action:succeed", "compensate:prepared", "action:succeed"]);
    const calls = participant.log.filter((l) => l.includes(`gid=${gid} `)).map((l) => l.split(" ").slice(0, 2).join(" "));
    expect(calls).toEqual(["POST /api/TransOut", "POST /api/TransIn"]);
    expect(participant.log.filter((l) => l.includes(`gid=${gid} `)).every((l) => l.endsWith("body={}"))).toBe(true);
  });
});
