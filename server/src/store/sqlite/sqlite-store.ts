import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import type { Database } from "better-sqlite3";
import type { Branch, GlobalStatus, TransGlobal } from "../../core/types.ts";
import type {
  AppendResult, BranchUpdate, ClaimedTrans, KvEntry, NewBranch, NewTrans, RetentionBatch, ScanPage, ScanQuery, Store, TransGuard, TransPatch,
} from "../store.ts";
import { guardParts } from "../store.ts";
import { migrateSqlite } from "./migrations.ts";
import type { BranchRow, KvRow, TransRow } from "../rows.ts";
import { branchFromRow, branchToRow, isSameBranch, kvFromRow, transFromRow, transToRow } from "../rows.ts";
import { WriteBatcher } from "./write-batcher.ts";

const UNFINISHED = "('prepared', 'submitted', 'aborting')";
/** Finished transactions deleted per write transaction (deleteFinished): a few ms of the writer. */
const DELETE_SLICE = 100;

export interface SqliteStoreOptions {
  /** File path, or ":memory:". */
  path: string;
  /** `full` (default) fsyncs every commit; `normal` may lose the last commits on power loss. */
  synchronous?: "full" | "normal";
  /**
   * Milliseconds a write waits for a lock another connection holds (SQLite's busy timeout,
   * default 5000) before it fails as SQLITE_BUSY, which the API answers 503 STORE_UNAVAILABLE.
   * better-sqlite3 waits synchronously, so this is also the longest the event loop can stall.
   */
  busyTimeoutMs?: number;
}

/**
 * The embedded store: one SQLite file in WAL mode, durable by default (`synchronous=FULL`).
 * Writes go through a {@link WriteBatcher} (group commit); reads run directly. It serves one
 * coordinator process: for several coordinators use PostgreSQL, MySQL or Redis.
 */
export class SqliteStore implements Store {
  private readonly db: Database;
  private readonly writes: WriteBatcher;
  private readonly stmts: ReturnType<typeof prepareStatements>;

  constructor(options: SqliteStoreOptions) {
    if (options.path !== ":memory:") mkdirSync(dirname(options.path), { recursive: true });
    this.db = new BetterSqlite3(options.path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma(`synchronous = ${options.synchronous === "normal" ? "NORMAL" : "FULL"}`);
    this.db.pragma(`busy_timeout = ${Math.round(options.busyTimeoutMs ?? 5_000)}`);
    migrateSqlite(this.db, Date.now());
    this.stmts = prepareStatements(this.db);
    this.writes = new WriteBatcher(this.db);
  }

  async migrate(): Promise<void> {
    migrateSqlite(this.db, Date.now());
  }

  async ping(): Promise<void> {
    this.db.prepare("SELECT 1").get();
  }

  async close(): Promise<void> {
    await this.writes.write(() => undefined);
    this.db.close();
  }

  get maxBatch(): number {
    return this.writes.maxBatch;
  }

  async findTrans(gid: string): Promise<TransGlobal | null> {
    const row = this.stmts.findTrans.get(gid) as TransRow | undefined;
    return row ? transFromRow(row) : null;
  }

  async findBranches(gid: string): Promise<Branch[]> {
    return (this.stmts.findBranches.all(gid) as BranchRow[]).map(branchFromRow);
  }

  async scanTrans(q: ScanQuery): Promise<ScanPage> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (q.position !== "") {
      where.push("id < ?");
      params.push(Number(q.position));
    }
    if (q.status) {
      where.push("status = ?");
      params.push(q.status);
    }
    if (q.transType) {
      where.push("trans_type = ?");
      params.push(q.transType);
    }
    if (q.createTimeStart !== undefined) {
      where.push("create_time >= ?");
      params.push(q.createTimeStart);
    }
    if (q.createTimeEnd !== undefined) {
      where.push("create_time <= ?");
      params.push(q.createTimeEnd);
    }
    const sql = `SELECT * FROM trans_global ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id DESC LIMIT ?`;
    const rows = this.db.prepare(sql).all(...params, q.limit) as TransRow[];
    const last = rows[rows.length - 1];
    return {
      transactions: rows.map(transFromRow),
      nextPosition: rows.length === q.limit && last ? String(last.id) : "",
    };
  }

  saveNewTrans(trans: NewTrans, branches: readonly NewBranch[]): Promise<"created" | "exists"> {
    return this.writes.write(() => {
      const inserted = this.stmts.insertTrans.run(transToRow(trans));
      if (inserted.changes === 0) return "exists" as const;
      for (const b of branches) this.stmts.insertBranch.run(branchToRow(b));
      return "created" as const;
    });
  }

  appendBranches(gid: string, expectedStatus: GlobalStatus, branches: readonly NewBranch[], _now: number): Promise<AppendResult> {
    return this.writes.write((): AppendResult => {
      const row = this.stmts.findStatus.get(gid) as { status: string } | undefined;
      if (!row) return "not_found";
      if (row.status !== expectedStatus) return "status_mismatch";
      for (const b of branches) {
        const existing = this.stmts.findBranch.get(gid, b.branchId, b.op) as BranchRow | undefined;
        if (!existing) continue;
        if (!isSameBranch(existing, b)) return "conflict";
      }
      for (const b of branches) this.stmts.insertBranchIgnore.run(branchToRow(b));
      return "saved";
    });
  }

  updateTrans(gid: string, expected: TransGuard, patch: TransPatch, branches: readonly BranchUpdate[]): Promise<boolean> {
    const guard = guardParts(expected);
    return this.writes.write(() => {
      const changed = this.stmts.updateTrans.run({
        gid,
        expected: guard.status,
        expected_owner: guard.owner ?? null,
        owner: patch.owner ?? null,
        status: patch.status ?? null,
        update_time: patch.updateTime,
        finish_time: patch.finishTime ?? null,
        rollback_time: patch.rollbackTime ?? null,
        rollback_reason: patch.rollbackReason ?? null,
        result: patch.result ?? null,
        next_cron_time: patch.nextCronTime ?? null,
        next_cron_interval: patch.nextCronInterval ?? null,
      });
      if (changed.changes === 0) return false;
      for (const b of branches) {
        this.stmts.updateBranch.run(b.status, b.finishTime, patch.updateTime, gid, b.branchId, b.op);
      }
      return true;
    });
  }

  claimDue(now: number, leaseUntil: number, limit: number, token: string): Promise<ClaimedTrans[]> {
    return this.writes.write(() => {
      const rows = this.stmts.findDue.all(now, limit) as TransRow[];
      const claimed: ClaimedTrans[] = [];
      for (const row of rows) {
        const r = this.stmts.claim.run(leaseUntil, token, now, row.id, now);
        if (r.changes === 1) claimed.push({ ...transFromRow({ ...row, next_cron_time: leaseUntil, owner: token, update_time: now }), previousOwner: row.owner ?? "" });
      }
      return claimed;
    });
  }

  renewLease(gid: string, token: string, leaseUntil: number): Promise<boolean> {
    return this.writes.write(() => this.stmts.renewLease.run(leaseUntil, gid, token).changes === 1);
  }

  resetCronTime(after: number, now: number, limit: number): Promise<{ count: number; hasRemaining: boolean }> {
    return this.writes.write(() => {
      // A row with an owner and a lease past `after` is held by a running pass (docs/fencing.md).
      const ids = this.db
        .prepare(`SELECT id FROM trans_global WHERE status IN ${UNFINISHED} AND next_cron_time > ? AND owner = '' LIMIT ?`)
        .all(after, limit + 1) as { id: number }[];
      const take = ids.slice(0, limit);
      const update = this.db.prepare("UPDATE trans_global SET next_cron_time = ?, update_time = ? WHERE id = ?");
      for (const { id } of take) update.run(now, now, id);
      return { count: take.length, hasRemaining: ids.length > limit };
    });
  }

  resetNextCronTime(gid: string, now: number): Promise<boolean> {
    return this.writes.write(() => this.stmts.resetNext.run(now, now, gid, now).changes === 1 || this.stmts.findStatus.get(gid) !== undefined);
  }

  async findKV(cat: string, key: string): Promise<KvEntry | null> {
    const row = this.stmts.findKv.get(cat, key) as KvRow | undefined;
    return row ? kvFromRow(row) : null;
  }

  async scanKV(cat: string, position: string, limit: number): Promise<{ kv: KvEntry[]; nextPosition: string }> {
    const rows = (position === ""
      ? this.stmts.scanKvFirst.all(cat, limit)
      : this.stmts.scanKvAfter.all(cat, Number(position), limit)) as KvRow[];
    const last = rows[rows.length - 1];
    return { kv: rows.map(kvFromRow), nextPosition: rows.length === limit && last ? String(last.id) : "" };
  }

  createKV(cat: string, key: string, value: string, now: number): Promise<"created" | "exists"> {
    return this.writes.write(() => (this.stmts.insertKv.run(cat, key, value, now, now).changes === 1 ? "created" : "exists"));
  }

  updateKV(cat: string, key: string, value: string, expectedVersion: number, now: number): Promise<boolean> {
    return this.writes.write(() => this.stmts.updateKv.run(value, now, cat, key, expectedVersion).changes === 1);
  }

  deleteKV(cat: string, key: string): Promise<boolean> {
    return this.writes.write(() => this.stmts.deleteKv.run(cat, key).changes === 1);
  }

  /**
   * The rows are found on the partial index trans_global_finished. SQLite has one writer, so the
   * batch goes through the group commit in slices of {@link DELETE_SLICE}: writes queued meanwhile
   * run between two slices instead of waiting for the whole batch.
   */
  async deleteFinished(before: number, limit: number): Promise<RetentionBatch> {
    let deleted = 0;
    while (deleted < limit) {
      const slice = Math.min(DELETE_SLICE, limit - deleted);
      const n = await this.writes.write(() => {
        const rows = this.stmts.findFinished.all(before, slice) as { id: number; gid: string }[];
        for (const { id, gid } of rows) {
          this.stmts.deleteBranches.run(gid);
          this.stmts.deleteTrans.run(id);
        }
        return rows.length;
      });
      deleted += n;
      if (n < slice) return { deleted, pruned: 0, more: false };
    }
    return { deleted, pruned: 0, more: true };
  }
}

function prepareStatements(db: Database) {
  return {
    findTrans: db.prepare("SELECT * FROM trans_global WHERE gid = ?"),
    findStatus: db.prepare("SELECT status FROM trans_global WHERE gid = ?"),
    findBranches: db.prepare("SELECT * FROM trans_branch_op WHERE gid = ? ORDER BY id ASC"),
    findBranch: db.prepare("SELECT * FROM trans_branch_op WHERE gid = ? AND branch_id = ? AND op = ?"),
    insertTrans: db.prepare(`INSERT INTO trans_global (gid, trans_type, status, query_prepared, protocol, create_time,
        update_time, finish_time, rollback_time, options, custom_data, next_cron_interval, next_cron_time, owner,
        ext_data, result, rollback_reason)
      VALUES (@gid, @trans_type, @status, @query_prepared, @protocol, @create_time, @update_time, @finish_time,
        @rollback_time, @options, @custom_data, @next_cron_interval, @next_cron_time, @owner, @ext_data, @result,
        @rollback_reason)
      ON CONFLICT (gid) DO NOTHING`),
    insertBranch: db.prepare(`INSERT INTO trans_branch_op (gid, url, bin_data, branch_id, op, status, finish_time,
        create_time, update_time)
      VALUES (@gid, @url, @bin_data, @branch_id, @op, @status, @finish_time, @create_time, @update_time)`),
    insertBranchIgnore: db.prepare(`INSERT INTO trans_branch_op (gid, url, bin_data, branch_id, op, status, finish_time,
        create_time, update_time)
      VALUES (@gid, @url, @bin_data, @branch_id, @op, @status, @finish_time, @create_time, @update_time)
      ON CONFLICT (gid, branch_id, op) DO NOTHING`),
    updateTrans: db.prepare(`UPDATE trans_global SET
        status = COALESCE(@status, status),
        update_time = @update_time,
        finish_time = COALESCE(@finish_time, finish_time),
        rollback_time = COALESCE(@rollback_time, rollback_time),
        rollback_reason = COALESCE(@rollback_reason, rollback_reason),
        result = COALESCE(@result, result),
        next_cron_time = COALESCE(@next_cron_time, next_cron_time),
        next_cron_interval = COALESCE(@next_cron_interval, next_cron_interval),
        owner = COALESCE(@owner, owner)
      WHERE gid = @gid AND status = @expected AND (@expected_owner IS NULL OR owner = @expected_owner)`),
    updateBranch: db.prepare(
      "UPDATE trans_branch_op SET status = ?, finish_time = ?, update_time = ? WHERE gid = ? AND branch_id = ? AND op = ?",
    ),
    findDue: db.prepare(`SELECT * FROM trans_global WHERE status IN ${UNFINISHED} AND next_cron_time <= ?
      ORDER BY next_cron_time LIMIT ?`),
    claim: db.prepare(`UPDATE trans_global SET next_cron_time = ?, owner = ?, update_time = ?
      WHERE id = ? AND next_cron_time <= ? AND status IN ${UNFINISHED}`),
    renewLease: db.prepare(`UPDATE trans_global SET next_cron_time = ? WHERE gid = ? AND owner = ? AND status IN ${UNFINISHED}`),
    // Not while a pass holds the lease (an owner and a lease still running): docs/fencing.md.
    resetNext: db.prepare("UPDATE trans_global SET next_cron_time = ?, update_time = ? WHERE gid = ? AND NOT (owner <> '' AND next_cron_time > ?)"),
    findKv: db.prepare("SELECT * FROM kv WHERE cat = ? AND k = ?"),
    scanKvFirst: db.prepare("SELECT * FROM kv WHERE cat = ? ORDER BY id DESC LIMIT ?"),
    scanKvAfter: db.prepare("SELECT * FROM kv WHERE cat = ? AND id < ? ORDER BY id DESC LIMIT ?"),
    insertKv: db.prepare("INSERT INTO kv (cat, k, v, version, create_time, update_time) VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (cat, k) DO NOTHING"),
    updateKv: db.prepare("UPDATE kv SET v = ?, version = version + 1, update_time = ? WHERE cat = ? AND k = ? AND version = ?"),
    deleteKv: db.prepare("DELETE FROM kv WHERE cat = ? AND k = ?"),
    findFinished: db.prepare(`SELECT id, gid FROM trans_global INDEXED BY trans_global_finished
      WHERE status IN ('succeed', 'failed') AND update_time < ? ORDER BY update_time LIMIT ?`),
    deleteBranches: db.prepare("DELETE FROM trans_branch_op WHERE gid = ?"),
    deleteTrans: db.prepare("DELETE FROM trans_global WHERE id = ?"),
  };
}
