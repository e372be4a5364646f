/**
 * A private MariaDB for one chaos run: its own datadir (mariadb-install-db), socket and port
 * under the run dir. It holds the coordinator store (database `dtx`, mysql profile) and the
 * participants' accounts (database `chaos`).
 */
import { execFileSync } from "node:child_process";
import { chownSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import mysql from "mysql2/promise";
import { freePort } from "../../helpers/processes.ts";
import { Child } from "./child.ts";
import { pollUntil } from "./poll.ts";
import { systemUser } from "./postgres.ts";

const READY_TIMEOUT_MS = 60_000;

export async function mysqlQuery(url: string, sql: string): Promise<void> {
  const conn = await mysql.createConnection({ uri: url, connectTimeout: 2_000 });
  try {
    await conn.query({ sql, timeout: 10_000 });
  } finally {
    await conn.end().catch(() => undefined);
  }
}

export async function startMariadb(dir: string): Promise<{ server: Child; port: number; url: (db: string) => string }> {
  const data = join(dir, "data");
  mkdirSync(data, { recursive: true });
  const user = systemUser("mysql");
  if (user) for (const d of [dir, data]) chownSync(d, user.uid, user.gid);
  const userArgs = user ? ["--user=mysql"] : [];
  execFileSync("mariadb-install-db", ["--no-defaults", ...userArgs, `--datadir=${data}`, "--auth-root-authentication-method=normal", "--skip-test-db"], {
    stdio: ["ignore", "ignore", "pipe"],
    timeout: 120_000,
  });
  const port = await freePort();
  const url = (db: string): string => `mysql://root@127.0.0.1:${port}/${db}`;
  const server = new Child({
    name: "mysql",
    cmd: "mariadbd",
    args: [
      "--no-defaults",
      ...userArgs,
      `--datadir=${data}`,
      `--port=${port}`,
      "--bind-address=127.0.0.1",
      `--socket=${join(dir, "mysqld.sock")}`,
      `--pid-file=${join(dir, "mysqld.pid")}`,
      "--max-connections=300",
      "--innodb-buffer-pool-size=64M",
      "--skip-name-resolve",
    ],
    logFile: join(dir, "mariadb.log"),
    ready: () => pollUntil("mariadb answers", () => mysqlQuery(url("mysql"), "SELECT 1"), READY_TIMEOUT_MS),
    readyTimeoutMs: READY_TIMEOUT_MS,
  });
  await server.start();
  await mysqlQuery(url("mysql"), "CREATE DATABASE dtx");
  await mysqlQuery(url("mysql"), "CREATE DATABASE chaos");
  return { server, port, url };
}
