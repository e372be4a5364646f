import { Redis } from "ioredis";
import type { Branch, GlobalStatus, TransGlobal } from "../../core/types.ts";
import type { TransRow } from "../rows.ts";
import { branchFromRow, kvFromRow, transFromRow } from "../rows.ts";
import type {
  AppendResult, BranchUpdate, ClaimedTrans, KvEntry, NewBranch, NewTrans, RetentionBatch, ScanPage, ScanQuery, Store, TransGuard, TransPatch,
} from "../store.ts";
import { guardParts } from "../store.ts";
import {
  branchArgs, branchRowsFromHash, branchUpdateArgs, kvRowFromHash, pairsToRecord, patchFields, transFields, transRowFromHash,
} from "./codec.ts";
import { durabilityMessage, readDurabilityProblems } from "./durability.ts";
import { RedisKeys } from "./keys.ts";
import { defineScripts } from "./scripts.ts";
import type { ScriptCall, ScriptName } from "./scripts.ts";

/** The layout version migrate() records; a store refuses a prefix written by another layout. */
const LAYOUT_VERSION = "1";

/** 7 days, dtm's DataExpire. */
export const DEFAULT_FINISHED_EXPIRE_SECONDS = 7 * 24 * 3600;

export interface RedisStoreOptions {
  /** `redis://[user:password@]host:6379[/db]` or `rediss://` for TLS. */
  url: string;
  /** Start of every key (default `{dtx}`: hash-tagged, so all keys share one cluster slot). */
  prefix?: string;
  /**
   * How long a finished (succeed / failed) trans and its branches are kept, in seconds (default
   * 7 days); 0 keeps them for ever. Unfinished transactions never expire.
   */
  finishedExpireSeconds?: number;
  /** Connection errors (the client reconnects by itself); commands that fail reject on their own. */
  onError?: (error: Error) => void;
  /**
   * Milliseconds a command or a connect may take (default 5000). After a command times out the
   * connection is dropped and opened again: a peer that stopped answering would otherwise keep
   * every later command waiting on the same dead socket (docs/store-outages.md).
   */
  timeoutMs?: number;
  /**
   * Start even if the server can lose acknowledged writes (docs/redis.md): migrate() then calls
   * `onUnsafe` with what is unsafe instead of refusing. Default false.
   */
  allowUnsafe?: boolean;
  /** The warning when `allowUnsafe` let an unsafe server through. */
  onUnsafe?: (message: string) => void;
}

/** Idle time before the first TCP keepalive probe. */
const KEEPALIVE_DELAY_MS = 10_000;

/**
 * The Redis store (docs/protocol.md#storage, layout in keys.ts): several coordinators can share one Redis.
 * Every multi-key write is one Lua script (scripts.ts), so status changes and KV updates are
 * compare-and-sets that Redis runs atomically, and claimDue takes due transactions and pushes
 * their lease in one script: two coordinators never get the same trans while its lease holds.
 *
 * Retention: unfinished transactions are kept until they finish (dtm expires them after
 * DataExpire; losing an unfinished trans would silently drop its work). Once a trans finishes,
 * it and its branches expire after `finishedExpireSeconds` (default 7 days, 0 = keep for ever;
 * the coordinator passes retention.finishedAge); the id index forgets expired gids in the
 * retention loop's walk (deleteFinished) and when a scan meets them (docs/retention.md).
 *
 * Durability is Redis's: an acknowledged write survives a crash only with `appendonly yes`,
 * `appendfsync always` and `maxmemory-policy noeviction`; migrate() checks them (docs/redis.md).
 */
export class RedisStore implements Store {
  private readonly redis: Redis;
  private readonly keys: RedisKeys;
  private readonly scripts: Record<ScriptName, ScriptCall>;
  private readonly ttl: number;
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly timeoutMs: number;
  private lastReconnect = 0;
  /** Whether this loop iteration's commands are being gathered into one socket write. */
  private gathering = false;
  private readonly durability: Pick<RedisStoreOptions, "allowUnsafe" | "onUnsafe">;
  /** deleteFinished's walk over `P:ids`: the last id it looked at ("" = start from the lowest). */
  private retentionCursor = "";

  constructor(options: RedisStoreOptions) {
    this.durability = { allowUnsafe: options.allowUnsafe ?? false, ...(options.onUnsafe ? { onUnsafe: options.onUnsafe } : {}) };
    this.keys = new RedisKeys(options.prefix ?? "{dtx}");
    this.ttl = Math.floor(options.finishedExpireSeconds ?? DEFAULT_FINISHED_EXPIRE_SECONDS);
    this.timeoutMs = options.timeoutMs ?? 5_000;
    this.redis = new Redis(options.url, {
      // A command waits through a couple of reconnect attempts, then rejects: a Redis that is
      // down is a fault the caller sees, not a request that hangs in the offline queue.
      maxRetriesPerRequest: 2,
      // Every command, sent or still in the offline queue, fails after this.
      commandTimeout: this.timeoutMs,
      connectTimeout: this.timeoutMs,
      keepAlive: KEEPALIVE_DELAY_MS,
      // A command that timed out was answered (as a failure) already: sending it again after a
      // reconnect would run a write its caller was told did not go through in time.
      autoResendUnfulfilledCommands: false,
    });
    // Without a listener ioredis prints every reconnect error to the console.
    this.redis.on("error", (error: Error) => options.onError?.(error));
    // Every command (reads, scripts, ping) goes through sendCommand: watch each for a timeout,
    // and gather the commands of one loop iteration into one socket write.
    const send = this.redis.sendCommand.bind(this.redis);
    this.redis.sendCommand = (command, stream) => {
      command.promise.then(undefined, (error: unknown) => this.reconnectAfterTimeout(error));
      this.gatherWrites();
      return send(command, stream);
    };
    this.scripts = defineScripts(this.redis);
  }

  /**
   * Corks the connection until the end of this event-loop iteration, so every command sent before
   * then leaves in one `writev`. Under load a coordinator sends many commands per iteration (one
   * per transaction that reached a write), and one syscall each was the largest single cost of a
   * saga on Redis (bench/README.md, "Redis: where the coordinator's CPU goes"). A lone command
   * waits only for the rest of the iteration: `setImmediate` runs right after the I/O callbacks.
   */
  private gatherWrites(): void {
    if (this.gathering || this.redis.status !== "ready") return;
    const socket = this.redis.stream;
    this.gathering = true;
    socket.cork();
    setImmediate(() => {
      this.gathering = false;
      socket.uncork();
    });
  }

  /**
   * After a command timed out, drops the connection and opens a new one (at most once per
   * timeout): TCP keepalive does not probe a socket with unanswered data, so a peer that went
   * silent would otherwise hold this connection, and every command on it, for many minutes.
   */
  private reconnectAfterTimeout(error: unknown): void {
    if (!(error instanceof Error) || error.message !== "Command timed out") return;
    const now = Date.now();
    if (now - this.lastReconnect < this.timeoutMs) return;
    this.lastReconnect = now;
    this.redis.disconnect(true);
  }

  /**
   * No schema: checks that the server keeps acknowledged writes (./durability.ts), records the
   * layout version, and refuses a prefix another layout wrote.
   */
  async migrate(): Promise<void> {
    const problems = await readDurabilityProblems(this.redis);
    if (problems.length > 0) {
      if (!this.durability.allowUnsafe) throw new Error(durabilityMessage(problems, false));
      this.durability.onUnsafe?.(durabilityMessage(problems, true));
    }
    await this.redis.set(this.keys.layout, LAYOUT_VERSION, "NX");
    const version = await this.redis.get(this.keys.layout);
    if (version !== LAYOUT_VERSION) {
      throw new Error(`the keys under prefix ${this.keys.prefix} have layout version ${version ?? "(none)"}, this dtx writes ${LAYOUT_VERSION}`);
    }
  }

  async ping(): Promise<void> {
    await this.redis.ping();
  }

  /**
   * Waits for the writes already sent, then QUITs (which Redis answers after earlier replies). A
   * QUIT that gets no answer within the command timeout (the peer vanished) drops the connection.
   */
  async close(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }

  async findTrans(gid: string): Promise<TransGlobal | null> {
    const h = await this.redis.hgetall(this.keys.trans(gid));
    return h["gid"] === undefined ? null : transFromRow(transRowFromHash(h));
  }

  async findBranches(gid: string): Promise<Branch[]> {
    const h = await this.redis.hgetallBuffer(this.keys.branches(gid));
    return branchRowsFromHash(gid, h).map(branchFromRow);
  }

  /**
   * Walks the id index newest first in chunks and filters in the process, as dtm scans: Redis
   * has no secondary indexes, so a selective filter reads the trans it skips.
   */
  async scanTrans(q: ScanQuery): Promise<ScanPage> {
    const filtered = q.status !== undefined || q.transType !== undefined || q.createTimeStart !== undefined || q.createTimeEnd !== undefined;
    const chunk = filtered ? Math.max(q.limit * 4, 256) : q.limit;
    const rows: TransRow[] = [];
    let max = q.position === "" ? "+inf" : `(${Number(q.position)}`;
    while (rows.length < q.limit) {
      const flat = await this.redis.zrevrangebyscore(this.keys.ids, max, "-inf", "WITHSCORES", "LIMIT", 0, chunk);
      const gids = flat.filter((_, i) => i % 2 === 0);
      const hashes = await Promise.all(gids.map((gid) => this.redis.hgetall(this.keys.trans(gid))));
      const expired: string[] = [];
      for (const [i, h] of hashes.entries()) {
        if (h["gid"] === undefined) {
          expired.push(gids[i] as string);
          continue;
        }
        const row = transRowFromHash(h);
        if (matches(q, row) && rows.length < q.limit) rows.push(row);
      }
      if (expired.length > 0) await this.write("dtxPruneIds", this.keys.ids, this.keys.trans(""), ...expired);
      if (gids.length < chunk) break;
      max = `(${flat[flat.length - 1]}`;
    }
    const last = rows[rows.length - 1];
    return { transactions: rows.map(transFromRow), nextPosition: rows.length === q.limit && last ? String(last.id) : "" };
  }

  async saveNewTrans(trans: NewTrans, branches: readonly NewBranch[]): Promise<"created" | "exists"> {
    const k = this.keys;
    const fields = transFields(trans);
    const r = await this.write(
      "dtxSaveNewTrans",
      k.trans(trans.gid), k.branches(trans.gid), k.seq, k.ids, k.due,
      trans.gid, this.ttl, fields.length, ...fields, ...branches.flatMap(branchArgs),
    );
    return r === "created" ? "created" : "exists";
  }

  async appendBranches(gid: string, expectedStatus: GlobalStatus, branches: readonly NewBranch[], _now: number): Promise<AppendResult> {
    const k = this.keys;
    const r = await this.write("dtxAppendBranches", k.trans(gid), k.branches(gid), k.seq, expectedStatus, ...branches.flatMap(branchArgs));
    if (r === "saved" || r === "status_mismatch" || r === "not_found" || r === "conflict") return r;
    throw new Error(`appendBranches: unexpected script reply ${String(r)}`);
  }

  async updateTrans(gid: string, expected: TransGuard, patch: TransPatch, branches: readonly BranchUpdate[]): Promise<boolean> {
    const k = this.keys;
    const guard = guardParts(expected);
    const fields = patchFields(patch);
    const r = await this.write(
      "dtxUpdateTrans",
      k.trans(gid), k.branches(gid), k.due,
      gid, guard.status, this.ttl, guard.owner === undefined ? "0" : "1", guard.owner ?? "",
      fields.length, ...fields, ...branches.flatMap((u) => branchUpdateArgs(u, patch.updateTime)),
    );
    return r === 1;
  }

  async claimDue(now: number, leaseUntil: number, limit: number, token: string): Promise<ClaimedTrans[]> {
    const r = await this.write("dtxClaimDue", this.keys.due, this.keys.trans(""), now, leaseUntil, limit, token);
    // Each reply is the owner the trans had before, then its hash after the claim (scripts.ts).
    return stringLists(r).map(([previousOwner = "", ...flat]) => ({ ...transFromRow(transRowFromHash(pairsToRecord(flat))), previousOwner }));
  }

  async renewLease(gid: string, token: string, leaseUntil: number): Promise<boolean> {
    return (await this.write("dtxRenewLease", this.keys.trans(gid), this.keys.due, gid, token, leaseUntil)) === 1;
  }

  async resetCronTime(after: number, now: number, limit: number): Promise<{ count: number; hasRemaining: boolean }> {
    const r = await this.write("dtxResetCronTime", this.keys.due, this.keys.trans(""), after, now, limit);
    if (!Array.isArray(r)) throw new Error(`resetCronTime: unexpected script reply ${String(r)}`);
    return { count: Number(r[0]), hasRemaining: r[1] === 1 };
  }

  async resetNextCronTime(gid: string, now: number): Promise<boolean> {
    return (await this.write("dtxResetNextCronTime", this.keys.trans(gid), this.keys.due, gid, now)) === 1;
  }

  async findKV(cat: string, key: string): Promise<KvEntry | null> {
    const h = await this.redis.hgetall(this.keys.kv(cat, key));
    return h["id"] === undefined ? null : kvFromRow(kvRowFromHash(cat, key, h));
  }

  async scanKV(cat: string, position: string, limit: number): Promise<{ kv: KvEntry[]; nextPosition: string }> {
    const max = position === "" ? "+inf" : `(${Number(position)}`;
    const ks = await this.redis.zrevrangebyscore(this.keys.kvIndex(cat), max, "-inf", "LIMIT", 0, limit);
    const hashes = await Promise.all(ks.map((k) => this.redis.hgetall(this.keys.kv(cat, k))));
    // An entry deleted between the two reads is left out.
    const kv = hashes.flatMap((h, i) => (h["id"] === undefined ? [] : [kvFromRow(kvRowFromHash(cat, ks[i] as string, h))]));
    const last = kv[kv.length - 1];
    return { kv, nextPosition: ks.length === limit && last ? String(last.id) : "" };
  }

  async createKV(cat: string, key: string, value: string, now: number): Promise<"created" | "exists"> {
    const r = await this.write("dtxCreateKV", this.keys.kv(cat, key), this.keys.kvIndex(cat), this.keys.seq, key, value, now);
    return r === "created" ? "created" : "exists";
  }

  async updateKV(cat: string, key: string, value: string, expectedVersion: number, now: number): Promise<boolean> {
    return (await this.write("dtxUpdateKV", this.keys.kv(cat, key), value, expectedVersion, now)) === 1;
  }

  async deleteKV(cat: string, key: string): Promise<boolean> {
    return (await this.write("dtxDeleteKV", this.keys.kv(cat, key), this.keys.kvIndex(cat), key)) === 1;
  }

  /**
   * Finished transactions normally expire by TTL (finishedExpireSeconds); this walks `P:ids` from
   * the lowest id, `limit` entries per call, forgetting gids that expired and deleting finished
   * ones older than `before` that carry no TTL (finished while retention was off, or under a
   * longer one). The walk ends at the first trans created at or after `before` (or at the end of
   * the index); the next round starts again from the lowest id. Each coordinator keeps its own
   * cursor.
   */
  async deleteFinished(before: number, limit: number): Promise<RetentionBatch> {
    const min = this.retentionCursor === "" ? "-inf" : `(${this.retentionCursor}`;
    const r = await this.write("dtxRetention", this.keys.ids, this.keys.trans(""), this.keys.branches(""), min, before, limit);
    if (!Array.isArray(r) || r.length !== 5) throw new Error(`deleteFinished: unexpected script reply ${String(r)}`);
    const [deleted, pruned, last, scanned, reachedYoung] = r as [number, number, string, number, number];
    const more = Number(reachedYoung) === 0 && Number(scanned) === limit;
    this.retentionCursor = more ? String(last) : "";
    return { deleted: Number(deleted), pruned: Number(pruned), more };
  }

  /** Runs a script; close() waits for the ones running, so an accepted write is not cut off. */
  private write(name: ScriptName, ...args: (string | number | Buffer)[]): Promise<unknown> {
    const op = this.scripts[name](...args);
    this.inFlight.add(op);
    const done = (): void => {
      this.inFlight.delete(op);
    };
    op.then(done, done);
    return op;
  }
}

function matches(q: ScanQuery, row: TransRow): boolean {
  return (q.status === undefined || row.status === q.status)
    && (q.transType === undefined || row.trans_type === q.transType)
    && (q.createTimeStart === undefined || row.create_time >= q.createTimeStart)
    && (q.createTimeEnd === undefined || row.create_time <= q.createTimeEnd);
}

/** A script's array of HGETALL replies, checked. */
function stringLists(reply: unknown): string[][] {
  if (!Array.isArray(reply) || !reply.every((x) => Array.isArray(x) && x.every((s) => typeof s === "string"))) {
    throw new Error("claimDue: unexpected script reply");
  }
  return reply as string[][];
}
