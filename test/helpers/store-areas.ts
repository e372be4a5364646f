/**
 * A private corner of the shared test databases for one test file: a Postgres schema or a MySQL
 * database with a unique name, so parallel vitest workers never see each other's rows. An
 * unreachable server fails the test with a message saying how to start it (never a skip).
 */
import { randomBytes } from "node:crypto";
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
