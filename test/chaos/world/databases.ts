/**
 * The three private database servers of a chaos run (PostgreSQL, MariaDB, Redis), started in
 * parallel under the run dir. They hold the participants' accounts in every profile, and the
 * coordinator store in the profile of the same name, as production would share them.
 */
import { join } from "node:path";
import type { AccountDb, StoreKind } from "../contracts.ts";
import type { DbUrls } from "../participant/db-urls.ts";
import type { Child } from "./child.ts";
import { startMariadb } from "./mariadb.ts";
import { startPostgres } from "./postgres.ts";
import { startRedis } from "./redis.ts";

/** Where the participants keep their accounts (direct links, no proxy). */
export type { DbUrls } from "../participant/db-urls.ts";

export interface DbServer {
  readonly kind: AccountDb;
  readonly child: Child;
  /** The port it listens on (a restart keeps it). */
  readonly port: number;
  /**
   * Crashes it without a clean shutdown: PostgreSQL gets SIGQUIT (what `pg_ctl stop -m
   * immediate` sends: no checkpoint, crash recovery at the next start), MariaDB and Redis SIGKILL.
   */
  crash(): Promise<void>;
  /** Starts it again on the same data and port; resolves when it answers. */
  restart(): Promise<void>;
}

export interface Databases {
  readonly servers: Record<AccountDb, DbServer>;
  readonly urls: DbUrls;
  /** The coordinator store's URL (direct, without proxy) for a server store kind. */
  storeUrl(store: Exclude<StoreKind, "sqlite">): string;
  stop(): Promise<void>;
}

function server(kind: AccountDb, child: Child, port: number, crashSignal: NodeJS.Signals): DbServer {
  return {
    kind,
    child,
    port,
    crash: () => child.kill(crashSignal),
    restart: () => child.start(),
  };
}

export async function startDatabases(runDir: string): Promise<Databases> {
  const results = await Promise.allSettled([startPostgres(join(runDir, "pg")), startMariadb(join(runDir, "mysql")), startRedis(join(runDir, "redis"))]);
  const failed = results.find((r) => r.status === "rejected");
  const started = results.flatMap((r) => (r.status === "fulfilled" ? [r.value.server] : []));
  if (failed) {
    await Promise.all(started.map((c) => c.kill()));
    throw failed.reason;
  }
  const [pgResult, myResult, redisResult] = results as [
    PromiseFulfilledResult<Awaited<ReturnType<typeof startPostgres>>>,
    PromiseFulfilledResult<Awaited<ReturnType<typeof startMariadb>>>,
    PromiseFulfilledResult<Awaited<ReturnType<typeof startRedis>>>,
  ];
  const pg = pgResult.value;
  const my = myResult.value;
  const redis = redisResult.value;
  const servers: Record<AccountDb, DbServer> = {
    postgres: server("postgres", pg.server, pg.port, "SIGQUIT"),
    mysql: server("mysql", my.server, my.port, "SIGKILL"),
    redis: server("redis", redis.server, redis.port, "SIGKILL"),
  };
  return {
    servers,
    urls: { postgres: pg.url("chaos"), mysql: my.url("chaos"), redis: redis.url(1) },
    storeUrl: (store) => (store === "postgres" ? pg.url("dtx") : store === "mysql" ? my.url("dtx") : redis.url(0)),
    async stop() {
      await Promise.all(Object.values(servers).map((s) => s.crash()));
    },
  };
}
