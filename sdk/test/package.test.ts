/**
 * @dtx/sdk as a user gets it: `npm pack` in sdk/ (its prepack script builds dist/), the tarball
 * installed into a fresh project in a temporary directory, then, in that project, an ESM script
 * that runs a saga against a real coordinator and participant, and `tsc --strict` over a file that
 * uses the package's types. Nothing of the repository is visible to the project except the
 * tarball, TypeScript itself and @types/node (linked from the repository's node_modules, as a
 * user's project would have them).
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Busi } from "../../test/busi/index.ts";
import { startBusi } from "../../test/busi/index.ts";
import type { TestCoordinator } from "../../test/helpers/coordinator.ts";
import { startCoordinator } from "../../test/helpers/coordinator.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const SDK = join(ROOT, "sdk");
const STEP_TIMEOUT_MS = 3 * 60_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), STEP_TIMEOUT_MS);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function expectOk(r: Run, what: string): void {
  if (r.code !== 0) throw new Error(`${what} exited ${String(r.code)}:\n${r.stdout}\n${r.stderr}`);
}

let dir = "";
let project = "";
let tarball = "";
let packed: Run;
let dtx: TestCoordinator;
let busi: Busi;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "dtx-sdk-pack-"));
  // As on a fresh checkout: no build output. prepack must make it (it did not: a 2.7 kB package).
  rmSync(join(SDK, "dist"), { recursive: true, force: true });
  // npm pack runs prepack (the build) and writes the tarball; --json lists what went in.
  packed = await run("npm", ["pack", "--json", "--pack-destination", dir], SDK);
  expectOk(packed, "npm pack (sdk/)");
  tarball = join(dir, readdirSync(dir).find((f) => f.endsWith(".tgz"))!);

  project = join(dir, "app");
  mkdirSync(project);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "sdk-user", version: "1.0.0", private: true, type: "module" }, null, 2));
  // The SDK's peer dependencies are optional and not needed for an HTTP saga: nothing is fetched.
  expectOk(await run("npm", ["install", "--offline", "--no-audit", "--no-fund", "--no-package-lock", tarball], project), "npm install <tarball>");
  // After the install (npm would prune it as extraneous).
  mkdirSync(join(project, "node_modules", "@types"), { recursive: true });
  symlinkSync(join(ROOT, "node_modules/@types/node"), join(project, "node_modules/@types/node"), "dir");
  [dtx, busi] = await Promise.all([startCoordinator(), startBusi()]);
}, 2 * STEP_TIMEOUT_MS);

afterAll(async () => {
  await dtx?.stop();
  await busi?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("@dtx/sdk packed and installed", () => {
  it("the tarball holds the build (JS and .d.ts), the SQL and the protos, and no sources or tests", () => {
    const [info] = JSON.parse(packed.stdout) as [{ files: { path: string }[]; size: number }];
    const files = info.files.map((f) => f.path);
    expect(files).toEqual(expect.arrayContaining(["package.json", "dist/index.js", "dist/index.d.ts", "sql/barrier.postgres.sql", "sql/barrier.mysql.sql", "proto/dtmgimp.proto"]));
    expect(files.filter((f) => f.startsWith("src/") || f.startsWith("test/"))).toEqual([]);
    expect(files.filter((f) => f.endsWith(".js") && f.startsWith("dist/")).length).toBeGreaterThan(20);
    expect(info.size).toBeGreaterThan(50_000);
  });

  it("an ESM script in the project runs a saga against the coordinator", async () => {
    writeFileSync(
      join(project, "saga.mjs"),
      `import { DtxClient, Saga } from "@dtx/sdk";
const [server, busi] = process.argv.slice(2);
const client = new DtxClient({ server: server + "/api/dtmsvr" });
const gid = await client.newGid();
await new Saga(client, gid, { waitResult: true })
  .add(busi + "/TransOut", busi + "/TransOutRevert", { amount: 30 })
  .add(busi + "/TransIn", busi + "/TransInRevert", { amount: 30 })
  .submit();
console.log(gid);
`,
    );
    const r = await run(process.execPath, ["saga.mjs", dtx.url, busi.baseUrl], project);
    expectOk(r, "node saga.mjs");
    const gid = r.stdout.trim();
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(busi.calls({ gid }).map((c) => `${c.name} ${c.body}`)).toEqual(['TransOut {"amount":30}', 'TransIn {"amount":30}']);
  });

  it("tsc --strict accepts a file using the package's types, and rejects a misuse", async () => {
    writeFileSync(
      join(project, "check.ts"),
      `import { DtxClient, DtxFailure, Saga, isFailure } from "@dtx/sdk";
const client: DtxClient = new DtxClient({ server: "http://127.0.0.1:36789/api/dtmsvr" });
export async function transfer(amount: number): Promise<string> {
  const gid: string = await client.newGid();
  const saga: Saga = new Saga(client, gid, { waitResult: true }).add("http://x/out", "http://x/revert", { amount });
  try {
    await saga.submit();
  } catch (error) {
    if (error instanceof DtxFailure || isFailure(error)) return "failed";
    throw error;
  }
  return gid;
}
// @ts-expect-error: the options are typed (waitResult is a boolean), not any
new Saga(client, "g", { waitResult: "yes" });
`,
    );
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { strict: true, module: "nodenext", moduleResolution: "nodenext", target: "es2022", noEmit: true, skipLibCheck: false, types: ["node"] }, files: ["check.ts"] }),
    );
    const r = await run(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], project);
    expect(r.stdout + r.stderr).toBe("");
    expect(r.code).toBe(0);
  });
});
