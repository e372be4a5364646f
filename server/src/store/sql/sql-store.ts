import { setTimeout as sleep } from "node:timers/promises";
import { sql } from "kysely";
import type { Kysely, Transaction } from "kysely";
import type { Branch, GlobalStatus, TransGlobal } from "../../core/types.ts";
import { branchFromRow, kvFromRow, transFromRow } from "../rows.ts";
import type {
  AppendResult, BranchUpdate, ClaimedTrans, KvEntry, NewBranch, NewTrans, RetentionBatch, ScanPage, ScanQuery, Store, TransGuard, TransPatch,
} from "../store.ts";
import { at, date, positionBound } from "./convert.ts";
import type { StoreDatabase } from "./tables.ts";

/** How often a write that lost a deadlock (or a serialization check) is run again. */
const CONFLICT_ATTEMPTS = 4;

/**
 * What the PostgreSQL and MySQL stores share: the reads, the KV writes and the single-statement
 * updates, written once with kysely. The writes whose SQL differs (one statement with CTEs on
 * Postgres, a short transaction on MySQL) live in the subclasses.
 *
 * Every write goes through {@link SqlStore.write}: a deadlock victim is rolled back whole by the
 * database, so running the operation again is safe, and a coordinator should not turn that into
 * a failed pass.
 */
export abstract class SqlStore implements Store {
  private readonly inFlight = new Set<Promise<unknown>>();
  /**
   * How long close() lets the pool end politely; then it destroys the connections. Ending a
   * connection waits for the server's goodbye, which a peer that vanished never sends, and a
   * coordinator that is stopping must not hang on it (docs/store-outages.md).
   */
  protected closeTimeoutMs = 5_000;
  /** Destroys every connection of the pool at once (see closeTimeoutMs). */
  protected destroyConnections: () => void = () => undefined;

  protected constructor(
    protected readonly db: Kysely<StoreDatabase>,
    private readonly isConflict: (error: unknown) => boolean,
  ) {}

  abstract migrate(): Promise<void>;
  abstract saveNewTrans(trans: NewTrans, branches: readonly NewBranch[]): Promise<"created" | "exists">;
  abstract appendBranches(gid: string, expectedStatus: GlobalStatus, branches: readonly NewBranch[], now: number): Promise<AppendResult>;
  abstract updateTrans(gid: string, expected: TransGuard, patch: TransPatch, branches: readonly BranchUpdate[]): Promise<boolean>;
  abstract claimDue(now: number, leaseUntil: number, limit: number, token: string): Promise<ClaimedTrans[]>;
  abstract resetCronTime(after: number, now: number, limit: number): Promise<{ count: number; hasRemaining: boolean }>;
  abstract createKV(cat: string, key: string, value: string, now: number): Promise<"created" | "exists">;
  abstract deleteFinished(before: number, limit: number): Promise<RetentionBatch>;

  async ping(): Promise<void> {
    await sql`SELECT 1`.execute(this.db);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
    const ended = this.db.destroy();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), this.closeTimeoutMs);
    });
    const outcome = await Promise.race([ended.then(() => "ended" as const), late]);
    clearTimeout(timer);
    if (outcome === "late") {
      ended.catch(() => undefined);
      this.destroyConnections();
    }
  }

  async findTrans(gid: string): Promise<TransGlobal | null> {
    const row = await this.db.selectFrom("trans_global").selectAll().where("gid", "=", gid).executeTakeFirst();
    return row ? transFromRow(row) : null;
  }

  async findBranches(gid: string): Promise<Branch[]> {
    const rows = await this.db.selectFrom("trans_branch_op").selectAll().where("gid", "=", gid).orderBy("id").execute();
    return rows.map(branchFromRow);
  }

  async scanTrans(q: ScanQuery): Promise<ScanPage> {
    let query = this.db.selectFrom("trans_global").selectAll();
    const before = positionBound(q.position);
    if (before !== undefined) query = query.where("id", "<", before);
    if (q.status) query = query.where("status", "=", q.status);
    if (q.transType) query = query.where("trans_type", "=", q.transType);
    if (q.createTimeStart !== undefined) query = query.where("create_time", ">=", at(q.createTimeStart));
    if (q.createTimeEnd !== undefined) query = query.where("create_time", "<=", at(q.createTimeEnd));
    const rows = await query.orderBy("id", "desc").limit(q.limit).execute();
    const last = rows[rows.length - 1];
    return {
      transactions: rows.map(transFromRow),
      nextPosition: rows.length === q.limit && last ? String(last.id) : "",
    };
  }

  resetNextCronTime(gid: string, now: number): Promise<boolean> {
    return this.write(async () => {
      const r = await this.db
        .updateTable("trans_global")
        .set({ next_cron_time: date(now), update_time: date(now) })
        .where("gid", "=", gid)
        // Not while a pass holds the lease (an owner and a lease still running): docs/fencing.md.
        .where((eb) => eb.or([eb("owner", "=", ""), eb("next_cron_time", "<=", at(now))]))
        .executeTakeFirst();
      if (r.numUpdatedRows === 1n) return true;
      return (await this.db.selectFrom("trans_global").select("id").where("gid", "=", gid).executeTakeFirst()) !== undefined;
    });
  }

  renewLease(gid: string, token: string, leaseUntil: number): Promise<boolean> {
    return this.write(async () => {
      const r = await this.db
        .updateTable("trans_global")
        .set({ next_cron_time: date(leaseUntil) })
        .where("gid", "=", gid)
        .where("owner", "=", token)
        .where("status", "in", ["prepared", "submitted", "aborting"])
        .executeTakeFirst();
      return r.numUpdatedRows === 1n;
    });
  }

  async findKV(cat: string, key: string): Promise<KvEntry | null> {
    const row = await this.db.selectFrom("kv").selectAll().where("cat", "=", cat).where("k", "=", key).executeTakeFirst();
    return row ? kvFromRow(row) : null;
  }

  async scanKV(cat: string, position: string, limit: number): Promise<{ kv: KvEntry[]; nextPosition: string }> {
    let query = this.db.selectFrom("kv").selectAll().where("cat", "=", cat);
    const before = positionBound(position);
    if (before !== undefined) query = query.where("id", "<", before);
    const rows = await query.orderBy("id", "desc").limit(limit).execute();
    const last = rows[rows.length - 1];
    return { kv: rows.map(kvFromRow), nextPosition: rows.length === limit && last ? String(last.id) : "" };
  }

  updateKV(cat: string, key: string, value: string, expectedVersion: number, now: number): Promise<boolean> {
    return this.write(async () => {
      const r = await this.db
        .updateTable("kv")
        .set({ v: value, version: sql<number>`version + 1`, update_time: date(now) })
        .where("cat", "=", cat)
        .where("k", "=", key)
        .where("version", "=", expectedVersion)
        .executeTakeFirst();
      return r.numUpdatedRows === 1n;
    });
  }

  deleteKV(cat: string, key: string): Promise<boolean> {
    return this.write(async () => {
      const r = await this.db.deleteFrom("kv").where("cat", "=", cat).where("k", "=", key).executeTakeFirst();
      return r.numDeletedRows === 1n;
    });
  }

  /**
   * Runs one store operation (its own transaction or statement), again if it lost a deadlock.
   * close() waits for the operations running through here, so a write already accepted is not
   * cut off by closing the pool under it.
   */
  /**
   * The start of appendBranches on both SQL stores: locks the trans row (which serialises appends
   * and updateTrans per gid) and checks its status. Undefined means: go on and append.
   */
  protected async lockForAppend(trx: Transaction<StoreDatabase>, gid: string, expectedStatus: GlobalStatus, branchCount: number): Promise<AppendResult | undefined> {
    const row = await trx.selectFrom("trans_global").select("status").where("gid", "=", gid).forUpdate().executeTakeFirst();
    if (!row) return "not_found";
    if (row.status !== expectedStatus) return "status_mismatch";
    if (branchCount === 0) return "saved";
    return undefined;
  }

  protected write<T>(run: () => Promise<T>): Promise<T> {
    const op = this.withConflictRetry(run);
    this.inFlight.add(op);
    const done = (): void => {
      this.inFlight.delete(op);
    };
    op.then(done, done);
    return op;
  }

  private async withConflictRetry<T>(run: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await run();
      } catch (error) {
        if (attempt >= CONFLICT_ATTEMPTS || !this.isConflict(error)) throw error;
        // A little random delay so the two sides of a deadlock do not collide again.
        await sleep(2 + Math.random() * 8 * attempt);
      }
    }
  }
}
