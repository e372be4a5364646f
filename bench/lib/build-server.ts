import { execFileSync } from "node:child_process";
import { existsSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";

/**
 * Compiles server/src with tsc (tsconfig.build.json) into `<tmp>/build` and returns the node
 * arguments to run it. The build dir gets a package.json ("type": "module") and symlinks to the
 * repo's node_modules/ and proto/, so packages and data files resolve as they do in the repo.
 */
export function buildServer(tmp: string, repoRoot: string): string[] {
  const outDir = path.join(tmp, "build");
  const tsc = path.join(repoRoot, "node_modules", "typescript", "bin", "tsc");
  console.log(`bench: compiling server/src with tsc into ${outDir} ...`);
  try {
    execFileSync(process.execPath, [tsc, "-p", "tsconfig.build.json", "--outDir", outDir], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    const out = (error as { stdout?: Buffer }).stdout?.toString() ?? "";
    throw new Error(`tsc failed:\n${out.slice(0, 4000)}`);
  }
  writeFileSync(path.join(outDir, "package.json"), '{"type":"module"}\n');
  // Packages, and the data files the server finds relative to its own location (proto/).
  for (const dir of ["node_modules", "proto"]) {
    if (existsSync(path.join(repoRoot, dir))) symlinkSync(path.join(repoRoot, dir), path.join(outDir, dir), "dir");
  }
  return [path.join(outDir, "server", "src", "main.js")];
}

