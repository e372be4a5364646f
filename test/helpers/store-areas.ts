/**
 * A private corner of the shared test databases for one test file: a Postgres schema or a MySQL
 * database with a unique name, so parallel vitest workers never see each other's rows. An
 * unreachable server fails the test with a message saying how to start it (never a skip).
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import mysql from "mysql2/promise";
import pg from "pg";
import { testServiceUrls, unreachableMessage } from "./services.ts";

const CONNECT_TIMEOUT_MS = 5_000;

/** `dtx_<label>_<random>`: a valid unquoted identifier on both servers. */
function uniqueName(label: string): string {
  return `dtx_${label}_${randomBytes(4).toString("hex")}`.toLowerCase().slice(0, 60);
}

async function reach<T>(service: string, url: string, connect: () => Promise<T>): Promise<T> {
  try {
    return await connect();
  } catch (cause) {
    throw new Error(unreachableMessage(service, url, cause), { cause });
  }
}

/** A schema of its own in the test PostgreSQL database. */
export class PgArea {
  readonly schema: string;
  readonly url: string;
  private client: pg.Client | undefined;

  constructor(label: string, url: string = testServiceUrls().pg) {
    this.schema = uniqueName(label);
    this.url = url;
  }

  /** Connects the admin client and makes sure the schema does not exist yet (the store creates it). */
  async open(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
    client.on("error", () => {}); // a dropped connection must not crash the worker
    await reach("PostgreSQL", this.url, () => client.connect());
    this.client = client;
    await this.drop();
  }

  async query<R>(text: string, params: unknown[] = []): Promise<R[]> {
    if (!this.client) throw new Error("PgArea.open() was not called");
    return (await this.client.query(text, params)).rows as R[];
  }

  /** `schema.table`, for the admin connection's queries. */
  table(name: string): string {
    return `${this.schema}.${name}`;
  }

  /** Empties dtx's tables in the schema. */
  async truncate(): Promise<void> {
    await this.query(`TRUNCATE ${this.schema}.trans_global, ${this.schema}.trans_branch_op, ${this.schema}.kv`);
  }

  /** The coordinator that last claimed each trans (claimDue's `owner`), by gid. */
  async owners(): Promise<Map<string, string>> {
    const rows = await this.query<{ gid: string; owner: string }>(`SELECT gid, owner FROM ${this.table("trans_global")}`);
    return new Map(rows.map((r) => [r.gid, r.owner]));
  }

  async drop(): Promise<void> {
    await this.query(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`);
  }

  async close(): Promise<void> {
    if (!this.client) return;
    await this.drop();
    await this.client.end();
    this.client = undefined;
  }
}

/** A database of its own on the test MySQL/MariaDB server. */
export class MysqlArea {
  readonly database: string;
  /** The store URL: the test server's URL with this database. */
  readonly url: string;
  private readonly adminUrl: string;
  private conn: mysql.Connection | undefined;

  constructor(label: string, adminUrl: string = testServiceUrls().mysql) {
    this.database = uniqueName(label);
    this.adminUrl = adminUrl;
    const u = new URL(this.adminUrl);
    u.pathname = `/${this.database}`;
    this.url = u.toString();
  }

  /** Connects the admin connection and creates the (empty) database. */
  async open(): Promise<void> {
    const conn = await reach("MariaDB/MySQL", this.adminUrl, () => mysql.createConnection({ uri: this.adminUrl, connectTimeout: CONNECT_TIMEOUT_MS }));
    conn.on("error", () => {});
    this.conn = conn;
    await this.query(`DROP DATABASE IF EXISTS ${this.database}`);
    await this.query(`CREATE DATABASE ${this.database} CHARACTER SET utf8mb4`);
  }

  async query<R>(text: string, params: unknown[] = []): Promise<R[]> {
    if (!this.conn) throw new Error("MysqlArea.open() was not called");
    const [rows] = await this.conn.query(text, params);
    return (Array.isArray(rows) ? rows : []) as R[];
  }

  /** `database.table`, for the admin connection's queries. */
  table(name: string): string {
    return `${this.database}.${name}`;
  }

  /** The coordinator that last claimed each trans (claimDue's `owner`), by gid. */
  async owners(): Promise<Map<string, string>> {
    const rows = await this.query<{ gid: string; owner: string }>(`SELECT gid, owner FROM ${this.table("trans_global")}`);
    return new Map(rows.map((r) => [r.gid, r.owner]));
  }

  /** Empties dtx's tables (DELETE: TRUNCATE is DDL and much slower on InnoDB). */
  async truncate(): Promise<void> {
    for (const table of ["trans_branch_op", "trans_global", "kv"]) await this.query(`DELETE FROM ${this.database}.${table}`);
  }

  async close(): Promise<void> {
    if (!this.conn) return;
    await this.query(`DROP DATABASE IF EXISTS ${this.database}`);
    await this.conn.end();
    this.conn = undefined;
  }
}

/**
 * Calls `each` with the keys matching `pattern`, a SCAN batch at a time (SCAN, not KEYS: the
 * server is shared with other test files and benchmarks).
 */
export async function forEachKeyBatch(redis: Redis, pattern: string, each: (keys: string[]) => Promise<unknown>): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) await each(keys);
  } while (cursor !== "0");
}

/** Deletes the keys matching `pattern`. */
export function unlinkMatching(redis: Redis, pattern: string): Promise<void> {
  return forEachKeyBatch(redis, pattern, (keys) => redis.unlink(...keys));
}

/** A key prefix of its own on the test Redis (the Redis store's `prefix`). */
export class RedisArea {
  /** `{dtx_<label>_<random>}`: a hash tag, as the store wants; no glob characters. */
  readonly prefix: string;
  readonly url: string;
  private client: Redis | undefined;

  constructor(label: string, url: string = testServiceUrls().redis) {
    this.prefix = `{${uniqueName(label)}}`;
    this.url = url;
  }

  async open(): Promise<void> {
    const client = new Redis(this.url, { maxRetriesPerRequest: 1, connectTimeout: CONNECT_TIMEOUT_MS, lazyConnect: true });
    client.on("error", () => {});
    await reach("Redis", this.url, async () => {
      await client.connect();
      await client.ping();
    });
    this.client = client;
    await this.drop();
  }

  /** The coordinator that last claimed each trans (the `owner` field of its hash), by gid. */
  async owners(): Promise<Map<string, string>> {
    const redis = this.redis();
    const head = `${this.prefix}:g:`;
    const out = new Map<string, string>();
    await forEachKeyBatch(redis, `${head}*`, async (keys) => {
      for (const key of keys) out.set(key.slice(head.length), (await redis.hget(key, "owner")) ?? "");
    });
    return out;
  }

  drop(): Promise<void> {
    return unlinkMatching(this.redis(), `${this.prefix}*`);
  }

  async close(): Promise<void> {
    if (!this.client) return;
    await this.drop();
    this.client.disconnect();
    this.client = undefined;
  }

  private redis(): Redis {
    if (!this.client) throw new Error("RedisArea.open() was not called");
    return this.client;
  }
}
