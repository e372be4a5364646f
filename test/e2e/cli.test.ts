/**
 * The `dtx` command as shipped: the build (`npm run build`) run as the package's `bin`
 * (dist/server/src/main.js), and `npm start`. --help and --version answer without starting a
 * server; `start --config FILE` starts one and says what it is; the start warnings appear for a
 * coordinator open to other hosts; SIGTERM to the `npm start` pid reaches node (no shell in
 * between) and stops the server.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HEAP_FLAGS } from "../../server/src/cli/heap-flags.ts";
import { processAlive, runToEnd } from "../helpers/processes.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string; bin: Record<string, string>; scripts: Record<string, string> };
const BIN = join(ROOT, pkg.bin["dtx"]!);
const BUILD_TIMEOUT_MS = 5 * 60_000;
const STEP_TIMEOUT_MS = 30_000;

let dir = "";
const running = new Set<ChildProcess>();


interface LogLine {
  level: number;
  msg: string;
  code?: string;
  branchUrlPolicy?: string;
  pid?: number;
  httpPort?: number;
  version?: string;
}

interface Started {
  child: ChildProcess;
  lines: LogLine[];
  started: LogLine;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns a server and resolves at its "dtx started" line (with every log line so far). */
function startServer(cmd: string, args: string[], env: Record<string, string>): Promise<Started> {
  const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    }),
  );
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const lines: LogLine[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "dtx started" within ${STEP_TIMEOUT_MS} ms:\n${stderr}`)), STEP_TIMEOUT_MS);
    createInterface({ input: child.stdout! }).on("line", (text) => {
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        return; // npm's own lines
      }
      lines.push(line);
      if (line.msg === "dtx started") {
        clearTimeout(timer);
        resolve({ child, lines, started: line, exited });
      }
    });
    void exited.then((how) => reject(new Error(`exited (${JSON.stringify(how)}) before "dtx started":\n${stderr}`)));
  });
}

/** Waits (bounded poll) for a log line the server writes after "dtx started". */
async function lineWith(s: Started, test: (l: LogLine) => boolean): Promise<LogLine> {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  for (;;) {
    const line = s.lines.find(test);
    if (line) return line;
    if (Date.now() > deadline) throw new Error("no such log line after the start");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Waits (bounded poll, for a real event) until `pid` is gone. */
async function gone(pid: number, timeoutMs = STEP_TIMEOUT_MS): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!processAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !processAlive(pid);
}

/** The parent pid of `pid`, from /proc (field 4 of stat, after the parenthesised name). */
function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

const loopbackEnv = (): Record<string, string> => ({
  DTX_HOST: "127.0.0.1",
  DTX_HTTP_PORT: "0",
  DTX_GRPC_PORT: "0",
  DTX_STORE_PATH: join(dir, `dtx-${Math.random().toString(36).slice(2)}.db`),
  DTX_LOG_LEVEL: "info",
});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "dtx-cli-"));
  const build = await runToEnd("npm", ["run", "build"], {}, BUILD_TIMEOUT_MS);
  if (build.code !== 0) throw new Error(`npm run build failed:\n${build.stdout}\n${build.stderr}`);
}, BUILD_TIMEOUT_MS + 10_000);

afterAll(async () => {
  for (const child of running) child.kill("SIGKILL");
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the dtx command (package bin)", () => {
  it("the bin is the build's main.js, with a node shebang", () => {
    expect(pkg.bin).toEqual({ dtx: "dist/server/src/main.js" });
    // The heap flags are npm start's: the command is sized like every other way of starting dtx (docs/overload.md).
    expect(readFileSync(BIN, "utf8").split("\n")[0]).toBe(`#!/usr/bin/env -S node ${HEAP_FLAGS.join(" ")}`);
  });

  it("npm start, the bin and the Docker image give node the same heap flags", () => {
    expect(pkg.scripts["start"]).toBe(`exec node ${HEAP_FLAGS.join(" ")} dist/server/src/main.js start`);
    const cmd = /^CMD (\[.*\])$/m.exec(readFileSync(join(ROOT, "deploy", "Dockerfile"), "utf8"))?.[1];
    expect(JSON.parse(cmd ?? "null")).toEqual(["node", ...HEAP_FLAGS, "dist/server/src/main.js"]);
  });

  it("run through its shebang (as an installed bin is), it starts with the capped heap and warns about nothing on loopback", async () => {
    chmodSync(BIN, 0o755);
    const version = await runToEnd(BIN, ["--version"], loopbackEnv());
    expect({ code: version.code, stdout: version.stdout }).toEqual({ code: 0, stdout: `dtx ${pkg.version}\n` });
    const s = await startServer(BIN, ["start"], { ...loopbackEnv(), DTX_LOG_LEVEL: "info" });
    expect(s.lines.filter((l) => l.level >= 40)).toEqual([]);
    s.child.kill("SIGTERM");
    expect(await s.exited).toEqual({ code: 0, signal: null });
  });

  it("--help prints the usage and exits 0 without starting a server", async () => {
    for (const flag of ["--help", "-h"]) {
      const r = await runToEnd(process.execPath, [...HEAP_FLAGS, BIN, flag], loopbackEnv());
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain("Usage: dtx [command] [options]");
      expect(r.stdout).toContain("--config FILE");
      expect(r.stdout).not.toContain("dtx started");
    }
  });

  it("--version prints the package version and exits 0", async () => {
    const r = await runToEnd(process.execPath, [...HEAP_FLAGS, BIN, "--version"], loopbackEnv());
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 0, stdout: `dtx ${pkg.version}\n` });
  });

  it("an unknown option exits 2 and says which", async () => {
    const r = await runToEnd(process.execPath, [...HEAP_FLAGS, BIN, "--port", "1"], loopbackEnv());
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('dtx: unknown option "--port"');
  });

  it("start --config FILE reads the file; on loopback it warns about nothing; SIGTERM stops it", async () => {
    const file = join(dir, "dtx.yml");
    writeFileSync(file, `host: 127.0.0.1\nhttpPort: 0\ngrpcPort: 0\nstore:\n  path: ${join(dir, "config-file.db")}\nmaxBranches: 77\n`);
    const env = { DTX_LOG_LEVEL: "info" };
    const s = await startServer(process.execPath, [...HEAP_FLAGS, BIN, "start", "--config", file], env);
    expect(s.started).toMatchObject({ version: pkg.version, pid: s.child.pid });
    const starting = s.lines.find((l) => l.msg === "dtx starting") as unknown as { config: { maxBranches: number; store: { path: string } } };
    expect(starting.config.maxBranches).toBe(77);
    expect(starting.config.store.path).toBe(join(dir, "config-file.db"));
    const health = await fetch(`http://127.0.0.1:${s.started.httpPort}/api/dtx/health`);
    expect(health.status).toBe(200);
    expect(s.lines.filter((l) => l.level >= 40)).toEqual([]);
    s.child.kill("SIGTERM");
    expect(await s.exited).toEqual({ code: 0, signal: null });
  });

  it("on loopback with the branch URL policy off, the start line and an info line say so, pointing at the production checklist", async () => {
    const s = await startServer(process.execPath, [...HEAP_FLAGS, BIN, "start"], loopbackEnv());
    expect(s.started.branchUrlPolicy).toBe("off");
    const notice = await lineWith(s, (l) => l.code === "BRANCH_URLS_OFF");
    expect(notice.level).toBe(30);
    expect(notice.msg).toMatch(/^the branch URL policy is off: the coordinator calls any URL a client names/);
    expect(notice.msg).toContain("docs/production-checklist.md");
    s.child.kill("SIGTERM");
    await s.exited;
  });

  it("listening on 0.0.0.0 with auth off and the branch URL policy open, it warns about both", async () => {
    const s = await startServer(process.execPath, [...HEAP_FLAGS, BIN, "start"], { ...loopbackEnv(), DTX_HOST: "0.0.0.0" });
    const warnings = s.lines.filter((l) => l.level === 40);
    expect(warnings.map((l) => l.code)).toEqual(["AUTH_OFF_NON_LOOPBACK", "BRANCH_URLS_OPEN_NON_LOOPBACK"]);
    expect(warnings[0]!.msg).toContain("host 0.0.0.0");
    expect(warnings[1]!.msg).toMatch(/^the branch URL policy is off and the API listens on host 0\.0\.0\.0/);
    expect(warnings[1]!.msg).toContain("open relay");
    expect(warnings[1]!.msg).toContain("docs/production-checklist.md");
    s.child.kill("SIGTERM");
    await s.exited;
  });

  it("with a token and an allow-list, 0.0.0.0 starts without warnings", async () => {
    const tokens = JSON.stringify([{ name: "ops", sha256: "b".repeat(64), roles: ["client", "admin", "metrics"] }]);
    const s = await startServer(process.execPath, [...HEAP_FLAGS, BIN], { ...loopbackEnv(), DTX_HOST: "0.0.0.0", DTX_AUTH_TOKENS: tokens, DTX_BRANCH_URLS_ALLOW: "http://10.0.0.5:8080" });
    expect(s.lines.filter((l) => l.level >= 40)).toEqual([]);
    s.child.kill("SIGTERM");
    await s.exited;
  });
});

describe("npm start", () => {
  it("runs node as npm's own child (no shell), so SIGTERM to the npm pid stops the server", async () => {
    expect(pkg.scripts["start"]).toMatch(/^exec node /);
    const s = await startServer("npm", ["start", "--silent"], loopbackEnv());
    const nodePid = s.started.pid!;
    try {
      expect(nodePid).not.toBe(s.child.pid);
      expect(parentOf(nodePid)).toBe(s.child.pid);
      const port = s.started.httpPort!;
      expect((await fetch(`http://127.0.0.1:${port}/api/dtx/health`)).status).toBe(200);
      s.child.kill("SIGTERM");
      await s.exited;
      expect(await gone(nodePid)).toBe(true);
      await expect(fetch(`http://127.0.0.1:${port}/api/dtx/health`)).rejects.toThrow();
    } finally {
      // A server left behind by a failed run would hold its ports for ever.
      if (processAlive(nodePid)) process.kill(nodePid, "SIGKILL");
    }
  });
});
