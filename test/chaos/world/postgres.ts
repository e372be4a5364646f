/**
 * A private PostgreSQL for one chaos run: its own cluster (initdb) under the run dir, its own
 * port, run as the `postgres` user when we are root. It holds the coordinator store (database
 * `dtx`, postgres profile) and the participants' accounts (database `chaos`).
 */
import { execFileSync } from "node:child_process";
import { chownSync, existsSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { freePort } from "../../helpers/processes.ts";
import { Child } from "./child.ts";
import { pollUntil } from "./poll.ts";

const READY_TIMEOUT_MS = 60_000;

function pgBinDir(): string {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  if (versions.length === 0) throw new Error(`no PostgreSQL server under ${root} (install postgresql, or run scripts/services.sh as root)`);
  return join(root, versions[0]!, "bin");
}

/** uid/gid of a system user, when we are root (the servers refuse to run as root). */
export function systemUser(name: string): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number(execFileSync("id", ["-u", name]).toString().trim());
  const gid = Number(execFileSync("id", ["-g", name]).toString().trim());
  return { uid, gid };
}

export async function pgQuery(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000, query_timeout: 10_000 });
  client.on("error", () => undefined);
  try {
    await client.connect();
    await client.query(sql);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function startPostgres(dir: string): Promise<{ server: Child; port: number; url: (db: string) => string }> {
  const bin = pgBinDir();
  const data = join(dir, "data");
  mkdirSync(data, { recursive: true });
  const user = systemUser("postgres");
  if (user) for (const d of [dir, data]) chownSync(d, user.uid, user.gid);
  execFileSync(join(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"], {
    uid: user?.uid,
    gid: user?.gid,
    stdio: ["ignore", "ignore", "pipe"],
    timeout: 120_000,
  });
  const port = await freePort();
  const url = (db: string): string => `postgres://postgres@127.0.0.1:${port}/${db}`;
  const server = new Child({
    name: "postgres",
    cmd: join(bin, "postgres"),
    args: ["-D", data, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_prepared_transactions=64", "-c", "max_connections=200", "-c", "shared_buffers=64MB"],
    logFile: join(dir, "postgres.log"),
    uid: user?.uid,
    gid: user?.gid,
    ready: () => pollUntil("postgres answers", () => pgQuery(url("postgres"), "SELECT 1"), READY_TIMEOUT_MS),
    readyTimeoutMs: READY_TIMEOUT_MS,
  });
  await server.start();
  await pgQuery(url("postgres"), "CREATE DATABASE dtx");
  await pgQuery(url("postgres"), "CREATE DATABASE chaos");
  return { server, port, url };
}
