/**
 * Fills a store with finished transactions, fast, for the retention bench (bench/README.md,
 * "Retention"): what a busy coordinator's database holds in steady state, when retention keeps a
 * week of history. Each trans is a finished one-step saga (its compensate and action branches,
 * 2 rows), 95 % succeed and 5 % failed, ids and update times ascending together as in real
 * traffic, with the row shapes the store itself writes (server/src/store/rows.ts).
 *
 * Postgres: two INSERT ... SELECT over generate_series, then VACUUM ANALYZE (a table that size
 * has been vacuumed and analysed by autovacuum in real life). SQLite: one transaction of prepared
 * INSERTs. The store is migrated first by opening it, so the retention index exists.
 */
import BetterSqlite3 from "better-sqlite3";
import { encodeOptions, DEFAULT_OPTIONS } from "../../server/src/core/options.ts";
import { SqliteStore } from "../../server/src/store/sqlite/sqlite-store.ts";
import { migratedSchemaClient } from "./pg-schema-client.ts";

export interface SeedSpec {
  /** Transactions to add (each with 2 branch rows). */
  count: number;
  /** The newest update_time (ms); the oldest is `newest - spanMs`. */
  newest: number;
  spanMs: number;
  /** Gid prefix, so several seeds never collide. */
  prefix: string;
}

const OPTIONS = encodeOptions({ ...DEFAULT_OPTIONS, branchHeaders: {} });
const BRANCH_URL = "http://127.0.0.1:8081/api/busi";

/** update_time of seed row i (1..count): ascending with i. */
function timeOf(spec: SeedSpec, i: number): number {
  return Math.round(spec.newest - ((spec.count - i) * spec.spanMs) / spec.count);
}

export async function seedPostgres(url: string, schema: string, spec: SeedSpec): Promise<void> {
  const client = await migratedSchemaClient(url, schema);
  try {
    // t: the update time of row i, as a timestamp; a trans finished 20 ms after it was created.
    const rows = `SELECT i, to_timestamp(($2::bigint - (($1::bigint - i) * $3::bigint) / $1::bigint) / 1000.0) AS t
      FROM generate_series(1, $1::bigint) AS i`;
    await client.query(`INSERT INTO trans_global (gid, trans_type, status, query_prepared, protocol, create_time, update_time,
        finish_time, rollback_time, options, custom_data, next_cron_interval, next_cron_time, owner, ext_data, result, rollback_reason)
      SELECT $4 || i, 'saga', CASE WHEN i % 20 = 0 THEN 'failed' ELSE 'succeed' END, '', 'http', t - interval '20 ms', t,
        CASE WHEN i % 20 = 0 THEN NULL ELSE t END, CASE WHEN i % 20 = 0 THEN t ELSE NULL END, $5, '', 10000, t + interval '10 s',
        '', '', '', CASE WHEN i % 20 = 0 THEN 'branch answered FAILURE' ELSE '' END
      FROM (${rows}) AS s ORDER BY i`, [spec.count, spec.newest, spec.spanMs, spec.prefix, OPTIONS]);
    await client.query(`INSERT INTO trans_branch_op (gid, url, bin_data, branch_id, op, status, finish_time, create_time, update_time)
      SELECT $4 || i, $5 || b.path, convert_to('{"amount":30}', 'UTF8'), '01', b.op,
        CASE WHEN b.op = 'action' THEN (CASE WHEN i % 20 = 0 THEN 'failed' ELSE 'succeed' END)
             ELSE (CASE WHEN i % 20 = 0 THEN 'succeed' ELSE 'prepared' END) END,
        CASE WHEN b.op = 'action' OR i % 20 = 0 THEN t ELSE NULL END, t - interval '20 ms', t
      FROM (${rows}) AS s CROSS JOIN (VALUES (1, 'compensate', '/TransOutRevert'), (2, 'action', '/TransOut')) AS b(ord, op, path)
      ORDER BY i, b.ord`, [spec.count, spec.newest, spec.spanMs, spec.prefix, BRANCH_URL]);
    await client.query("VACUUM ANALYZE trans_global");
    await client.query("VACUUM ANALYZE trans_branch_op");
  } finally {
    await client.end();
  }
}

export async function seedSqlite(path: string, spec: SeedSpec): Promise<void> {
  await new SqliteStore({ path }).close();
  const db = new BetterSqlite3(path);
  try {
    const insertTrans = db.prepare(`INSERT INTO trans_global (gid, trans_type, status, query_prepared, protocol, create_time,
        update_time, finish_time, rollback_time, options, custom_data, next_cron_interval, next_cron_time, owner, ext_data, result,
        rollback_reason) VALUES (?, 'saga', ?, '', 'http', ?, ?, ?, ?, ?, '', 10000, ?, '', '', '', ?)`);
    const insertBranch = db.prepare(`INSERT INTO trans_branch_op (gid, url, bin_data, branch_id, op, status, finish_time, create_time,
        update_time) VALUES (?, ?, ?, '01', ?, ?, ?, ?, ?)`);
    const payload = Buffer.from('{"amount":30}');
    db.transaction(() => {
      for (let i = 1; i <= spec.count; i++) {
        const t = timeOf(spec, i);
        const failed = i % 20 === 0;
        const gid = `${spec.prefix}${i}`;
        insertTrans.run(gid, failed ? "failed" : "succeed", t - 20, t, failed ? null : t, failed ? t : null, OPTIONS, t + 10_000, failed ? "branch answered FAILURE" : "");
        insertBranch.run(gid, `${BRANCH_URL}/TransOutRevert`, payload, "compensate", failed ? "succeed" : "prepared", failed ? t : null, t - 20, t);
        insertBranch.run(gid, `${BRANCH_URL}/TransOut`, payload, "action", failed ? "failed" : "succeed", t, t - 20, t);
      }
    }).immediate();
    db.pragma("wal_checkpoint(TRUNCATE)");
  } finally {
    db.close();
  }
}
