/**
 * Postgres' own pgbench as a reference client: it runs a transaction script from C, with no Node
 * and no driver, so what it measures is what the database charges for those statements.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/** pgbench from PATH, else from Debian's /usr/lib/postgresql/<version>/bin (newest first). */
export function findPgbench(): string | undefined {
  for (const dir of (process.env["PATH"] ?? "").split(path.delimiter)) {
    const p = path.join(dir, "pgbench");
    if (dir && existsSync(p)) return p;
  }
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  return versions.map((v) => path.join(root, v, "bin", "pgbench")).find((p) => existsSync(p));
}

export interface PgbenchRun {
  latencyUs: number;
  tps: number;
}

/**
 * Runs `script` (pgbench's script language) with `clients` connections on one thread for
 * `seconds`, in the simple query protocol (so `\;` sends statements in one round trip).
 */
export async function runPgbench(bin: string, url: string, script: string, clients: number, seconds: number): Promise<PgbenchRun> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "dtx-pgbench-"));
  try {
    const file = path.join(dir, "script.sql");
    writeFileSync(file, script);
    const args = ["-n", "-M", "simple", "-c", String(clients), "-j", "1", "-T", String(Math.max(1, Math.round(seconds))), "-f", file, url];
    const out = await new Promise<string>((resolve, reject) => {
      execFile(bin, args, { encoding: "utf8" }, (err, stdout, stderr) => (err ? reject(new Error(`pgbench failed: ${stderr || err.message}`)) : resolve(stdout)));
    });
    const latency = /latency average = ([\d.]+) ms/.exec(out)?.[1];
    const tps = /tps = ([\d.]+)/.exec(out)?.[1];
    if (latency === undefined || tps === undefined) throw new Error(`unexpected pgbench output:\n${out}`);
    return { latencyUs: Math.round(Number(latency) * 1000), tps: Math.round(Number(tps)) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
