/**
 * Scratch databases for the participant's own tests on the shared services: a PostgreSQL
 * database and a MariaDB database named `name`, and the Redis key prefix `name:`, set up with
 * setup.ts; `drop()` removes all three (its own things only).
 */
import { Redis } from "ioredis";
import mysql from "mysql2/promise";
import pg from "pg";
import type { DbUrls } from "./db-urls.ts";
import { setupParticipantDbs } from "./setup.ts";

export interface ScratchDbs {
  dbs: DbUrls;
  redisPrefix: string;
  drop(): Promise<void>;
}

function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

async function onServers(server: { pg: string; mysql: string }, fn: (pgc: pg.Client, my: mysql.Connection) => Promise<void>): Promise<void> {
  const pgc = new pg.Client({ connectionString: server.pg, connectionTimeoutMillis: 5_000, statement_timeout: 30_000 });
  await pgc.connect();
  try {
    const my = await mysql.createConnection({ uri: server.mysql, connectTimeout: 5_000 });
    try {
      await fn(pgc, my);
    } finally {
      await my.end();
    }
  } finally {
    await pgc.end();
  }
}

/** Rolls back the XA transactions still prepared in the scratch databases `name` (their xids start with `name`). */
async function rollBackPreparedXa(dbs: DbUrls, name: string): Promise<void> {
  await onServers({ pg: dbs.postgres, mysql: dbs.mysql }, async (pgc, my) => {
    const prepared = await pgc.query<{ gid: string }>("select gid from pg_prepared_xacts where database = current_database()");
    for (const { gid } of prepared.rows) await pgc.query(`rollback prepared '${gid.replaceAll("'", "''")}'`);
    const [rows] = await my.query("xa recover");
    for (const row of rows as Array<{ data: Buffer | string }>) {
      const xid = String(row.data);
      if (xid.startsWith(name)) await my.query(`xa rollback '${xid.replaceAll("'", "''")}'`);
    }
  });
}

/**
 * Creates databases `name` next to `server.pg` / `server.mysql` (URLs of an existing database
 * there) and sets them up, twice (setup must be idempotent). `name` must be a plain identifier.
 */
export async function createScratchDbs(server: { pg: string; mysql: string; redis: string }, name: string, seed = 1): Promise<ScratchDbs> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`scratch database name must be a lower-case identifier: ${name}`);
  await onServers(server, async (pgc, my) => {
    await pgc.query(`create database ${name}`);
    await my.query(`create database ${name}`);
  });
  const dbs: DbUrls = { postgres: withDatabase(server.pg, name), mysql: withDatabase(server.mysql, name), redis: server.redis };
  const redisPrefix = `${name}:`;
  await setupParticipantDbs(dbs, { seed, redisPrefix });
  await setupParticipantDbs(dbs, { seed, redisPrefix });
  return {
    dbs,
    redisPrefix,
    drop: async () => {
      // XA transactions a test left prepared (a branch killed between prepare and phase 2) would
      // block the PostgreSQL drop and hold MariaDB row locks: roll back this scratch area's own.
      await rollBackPreparedXa(dbs, name);
      await onServers(server, async (pgc, my) => {
        await pgc.query(`drop database if exists ${name} with (force)`);
        await my.query(`drop database if exists ${name}`);
      });
      const redis = new Redis(server.redis, { commandTimeout: 10_000 });
      try {
        const keys = await redis.keys(`${redisPrefix}*`);
        if (keys.length > 0) await redis.del(...keys);
      } finally {
        redis.disconnect();
      }
    },
  };
}
