/**
 * dtm's own clients against dtx (issue 6): the Go client github.com/dtm-labs/client
 * (test/compat/go) and the Python client PyPI dtmcli (test/compat/python), each with its own
 * participant services, run as child processes against the real coordinator (a child process on a
 * temporary SQLite file, test-control on).
 *
 * `scripts/compat.sh setup` builds the Go cases into .cache/compat/gobin and the venv into
 * .cache/compat/venv (the first run downloads Go modules and PyPI packages: minutes; later runs
 * take a second or two). Each Go and Python case shows up here as its own test, parsed from
 * `go test -v` (`--- PASS:` / `--- FAIL:`) and `pytest -v` output; the runs must also exit 0.
 *
 * The TestGrpc* cases run only when the coordinator logs a gRPC port. Cases that SIGKILL dtx and
 * start it again (workflow resume) do so through a small control server this file serves
 * (DTX_HARNESS_URL: POST /kill, POST /start); the restarted coordinator keeps the store and ports.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChildCoordinator } from "../helpers/coordinator.ts";
import { spawnCoordinator } from "../helpers/coordinator.ts";
import { MysqlArea } from "../helpers/store-areas.ts";
import { freePort } from "../helpers/processes.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const GO_DIR = join(ROOT, "test/compat/go");
const PY_FILE = join(ROOT, "test/compat/python/test_dtmcli.py");
const SETUP_TIMEOUT_MS = 10 * 60_000;
const RUN_TIMEOUT_MS = 4 * 60_000;
const START_TIMEOUT_MS = 60_000;

/** The cases, read from the sources (so they are known before anything is built). */
const goCases = readdirSync(GO_DIR)
  .filter((f) => f.endsWith("_test.go"))
  .sort()
  .flatMap((f) => [...readFileSync(join(GO_DIR, f), "utf8").matchAll(/^func (Test\w+)\(t \*testing\.T\)/gm)].map((m) => m[1]!));
const pyCases = [...readFileSync(PY_FILE, "utf8").matchAll(/^def (test_\w+)\(/gm)].map((m) => m[1]!);

interface Run {
  code: number | null;
  output: string;
  ms: number;
}

/** Runs a command to completion (killing it after timeoutMs), stdout and stderr interleaved. */
function run(cmd: string, args: string[], env: Record<string, string>, timeoutMs: number): Promise<Run> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    const chunks: string[] = [];
    child.stdout.on("data", (d: Buffer) => chunks.push(d.toString()));
    child.stderr.on("data", (d: Buffer) => chunks.push(d.toString()));
    const timer = setTimeout(() => {
      chunks.push(`\n[compat.test.ts] ${cmd} ${args.join(" ")} killed after ${timeoutMs} ms\n`);
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (e) => chunks.push(`\n[compat.test.ts] ${String(e)}\n`));
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output: chunks.join(""), ms: Date.now() - started });
    });
  });
}

interface CaseResult {
  status: "PASS" | "FAIL" | "SKIP";
  output: string;
}

/** `go test -v`: each case's lines from `=== RUN` to its `--- PASS|FAIL|SKIP:` line. */
function parseGoTest(output: string): Map<string, CaseResult> {
  const results = new Map<string, CaseResult>();
  const open = new Map<string, string[]>();
  let current: string | undefined;
  for (const line of output.split("\n")) {
    const started = /^=== (?:RUN|CONT)\s+(\S+)/.exec(line);
    if (started) {
      current = started[1]!;
      if (!open.has(current)) open.set(current, []);
      continue;
    }
    const ended = /^\s*--- (PASS|FAIL|SKIP): (\S+)/.exec(line);
    if (ended) {
      const name = ended[2]!;
      results.set(name, { status: ended[1] as CaseResult["status"], output: [...(open.get(name) ?? []), line].join("\n") });
      open.delete(name);
      current = undefined;
      continue;
    }
    if (current) open.get(current)!.push(line);
  }
  // A case that started and never ended (a panic, a timeout): failed, with what it printed.
  for (const [name, lines] of open) results.set(name, { status: "FAIL", output: lines.join("\n") });
  return results;
}

/** `pytest -v`: `file::case PASSED|FAILED|ERROR`, with the case's block from the FAILURES section. */
function parsePytest(output: string): Map<string, CaseResult> {
  const results = new Map<string, CaseResult>();
  for (const m of output.matchAll(/^\S+::(\w+) (PASSED|FAILED|ERROR|SKIPPED)/gm)) {
    const status = m[2] === "PASSED" ? "PASS" : m[2] === "SKIPPED" ? "SKIP" : "FAIL";
    const block = new RegExp(`^_{3,} (?:ERROR at \\w+ of )?${m[1]!} _{3,}$([\\s\\S]*?)(?=^_{3,} |^={3,})`, "m").exec(output);
    results.set(m[1]!, { status, output: block ? block[1]!.trim() : m[0] });
  }
  return results;
}

/** spawnCoordinator, but failing after START_TIMEOUT_MS instead of waiting for ever. */
async function startDtx(dbPath: string, env: Record<string, string>): Promise<ChildCoordinator> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`dtx did not log "dtx listening" within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
  });
  try {
    return await Promise.race([spawnCoordinator(dbPath, env), timeout]);
  } finally {
    clearTimeout(timer);
  }
}


let setup: Run | undefined;
let goRun: Run | undefined;
let pyRun: Run | undefined;
let goResults = new Map<string, CaseResult>();
let pyResults = new Map<string, CaseResult>();
let grpcAvailable = false;
let dtx: ChildCoordinator | undefined;
let harness: Server | undefined;
let dataDir = "";
let pyArea: MysqlArea | undefined;

function note(text: string): void {
  process.stderr.write(`[compat] ${text}\n`);
}

beforeAll(async () => {
  setup = await run("bash", ["scripts/compat.sh", "setup"], {}, SETUP_TIMEOUT_MS);
  note(`setup (scripts/compat.sh setup) took ${(setup.ms / 1000).toFixed(1)} s, exit ${String(setup.code)}`);
  if (setup.code !== 0) return;

  dataDir = mkdtempSync(join(tmpdir(), "dtx-compat-"));
  const env = {
    DTX_HTTP_PORT: String(await freePort()),
    DTX_GRPC_PORT: String(await freePort()),
  };
  const dbPath = join(dataDir, "dtx.db");
  dtx = await startDtx(dbPath, env);
  const grpcPort = (dtx as { grpcPort?: number }).grpcPort ?? 0;
  grpcAvailable = grpcPort > 0;

  // The control server the resume-after-kill cases use.
  harness = createServer((req, res) => {
    const reply = (status: number, body: unknown): void => {
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    };
    void (async () => {
      if (req.method === "POST" && req.url === "/kill") {
        const how = await dtx?.kill("SIGKILL");
        reply(200, { killed: String(how) });
      } else if (req.method === "POST" && req.url === "/start") {
        if (dtx && dtx.process.exitCode === null && dtx.process.signalCode === null) await dtx.kill("SIGKILL");
        dtx = await startDtx(dbPath, env);
        reply(200, { url: dtx.url });
      } else {
        reply(404, { message: "POST /kill or /start" });
      }
    })().catch((e: unknown) => reply(500, { message: String(e) }));
  });
  await new Promise<void>((resolve) => harness!.listen(0, "127.0.0.1", resolve));
  const runEnv: Record<string, string> = {
    DTX_HTTP_URL: dtx.url,
    DTX_HARNESS_URL: `http://127.0.0.1:${(harness.address() as AddressInfo).port}`,
    ...(grpcAvailable ? { DTX_GRPC_ADDR: `127.0.0.1:${grpcPort}` } : {}),
  };
  if (!grpcAvailable) note("the coordinator logged no gRPC port: the TestGrpc* cases do not run");

  // One after the other: a 2-core machine, and both suites drive the same coordinator's clock.
  goRun = await run("bash", ["scripts/compat.sh", "go"], runEnv, RUN_TIMEOUT_MS);
  goResults = parseGoTest(goRun.output);
  // The Python cases' business table in a database of their own. (dtmcli hard-codes its barrier
  // table, dtm_barrier.barrier in dtm's layout; no other suite uses that name. The Go cases make
  // their own database and schema.)
  pyArea = new MysqlArea("compat_py");
  await pyArea.open();
  pyRun = await run("bash", ["scripts/compat.sh", "python"], { ...runEnv, DTX_TEST_MYSQL_URL: pyArea.url }, RUN_TIMEOUT_MS);
  pyResults = parsePytest(pyRun.output);
  note(`Go cases ${(goRun.ms / 1000).toFixed(1)} s (exit ${String(goRun.code)}), Python cases ${(pyRun.ms / 1000).toFixed(1)} s (exit ${String(pyRun.code)})`);
}, SETUP_TIMEOUT_MS + 2 * RUN_TIMEOUT_MS);

afterAll(async () => {
  await pyArea?.close();
  await dtx?.kill("SIGKILL");
  await new Promise<void>((resolve) => (harness ? harness.close(() => resolve()) : resolve()));
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

function expectSetup(): void {
  if (setup?.code !== 0) throw new Error(`scripts/compat.sh setup failed (exit ${String(setup?.code)}):\n${setup?.output ?? "(did not run)"}`);
}

function expectCase(results: Map<string, CaseResult>, name: string, whole: Run | undefined): void {
  expectSetup();
  const r = results.get(name);
  if (!r) throw new Error(`${name} did not run. Full output:\n${whole?.output ?? "(no run)"}`);
  if (r.status !== "PASS") throw new Error(`${name}: ${r.status}\n${r.output}`);
}

describe("dtm's Go client (github.com/dtm-labs/client)", () => {
  it("scripts/compat.sh setup builds the Go cases and the venv", () => {
    expectSetup();
  });

  it("go test exits 0", () => {
    expectSetup();
    expect(goRun?.code, goRun?.output).toBe(0);
  });

  for (const name of goCases) {
    it(name, () => {
      // dtx always serves gRPC now: a coordinator that does not advertise it is a failure, not a skip.
      if (name.startsWith("TestGrpc") && setup?.code === 0 && !grpcAvailable) {
        throw new Error(`${name}: not run, the coordinator advertised no gRPC port`);
      }
      expectCase(goResults, name, goRun);
    });
  }
});

describe("dtm's Python client (PyPI dtmcli)", () => {
  it("pytest exits 0", () => {
    expectSetup();
    expect(pyRun?.code, pyRun?.output).toBe(0);
  });

  for (const name of pyCases) {
    it(name, () => {
      expectCase(pyResults, name, pyRun);
    });
  }
});
