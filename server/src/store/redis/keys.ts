/**
 * The Redis key layout (docs/protocol.md#storage is dtm's; this is dtx's, and where it differs it says why).
 * Every key starts with the prefix, hash-tagged by default (`{dtx}`), so all of them live in one
 * cluster slot and every Lua script may touch any of them.
 *
 * | key | type | content |
 * |---|---|---|
 * | `P:layout` | string | layout version, set by migrate() |
 * | `P:seq` | string | INCR counter: ids of transactions, branches and KV entries |
 * | `P:g:<gid>` | hash | the trans, one field per trans_global column (times in ms) |
 * | `P:b:<gid>` | hash | its branches, see {@link branchField} |
 * | `P:ids` | zset | member gid, score id: every trans, for scanTrans; expired gids pruned by retention (docs/retention.md) |
 * | `P:due` | zset | member gid, score next_cron_time (ms): unfinished trans only, for claimDue |
 * | `P:kv:<len(cat)>:<cat>:<k>` | hash | one KV entry (id, v, version, create_time, update_time) |
 * | `P:kvi:<cat>` | zset | member k, score id: the entries of one category, for scanKV |
 *
 * Deviations from dtm, each because dtx's store contract needs it:
 * - Ids are real (dtm's Redis ids are 0): scanTrans and scanKV page by an exclusive upper bound
 *   on id, so `P:seq` hands them out and `P:ids` / `P:kvi:<cat>` index them.
 * - Hashes instead of JSON strings plus a separate status key: a CAS reads one field and a patch
 *   writes only the fields it names, without decoding JSON in Lua (whose cjson rounds numbers to
 *   14 digits), and payloads stay raw bytes.
 * - `P:due` scores are milliseconds (dtm: seconds), like every time dtx stores.
 */
export class RedisKeys {
  readonly layout: string;
  readonly seq: string;
  readonly ids: string;
  readonly due: string;

  constructor(readonly prefix: string) {
    this.layout = `${prefix}:layout`;
    this.seq = `${prefix}:seq`;
    this.ids = `${prefix}:ids`;
    this.due = `${prefix}:due`;
  }

  trans(gid: string): string {
    return `${this.prefix}:g:${gid}`;
  }

  branches(gid: string): string {
    return `${this.prefix}:b:${gid}`;
  }

  /** The category's length makes `cat:k` unambiguous when either holds a colon. */
  kv(cat: string, k: string): string {
    return `${this.prefix}:kv:${cat.length}:${cat}:${k}`;
  }

  kvIndex(cat: string): string {
    return `${this.prefix}:kvi:${cat}`;
  }
}

/**
 * The branches of one trans share one hash (so a finished trans expires as two keys, and one
 * HGETALL reads them all). Branch number n (1, 2, ... in insertion order) has the fields
 * `n.id`, `n.branch_id`, `n.op`, `n.url`, `n.bin_data`, `n.status`, `n.create_time`,
 * `n.update_time` and, unless null, `n.finish_time`; `count` is the number of branches, and
 * {@link branchSlot} maps (branch_id, op) to n, which is the unique key.
 */
export function branchField(n: number, column: string): string {
  return `${n}.${column}`;
}

/** The hash field holding the number n of branch (branchId, op); the length keeps it unambiguous. */
export function branchSlot(branchId: string, op: string): string {
  return `k:${branchId.length}:${branchId}:${op}`;
}

/** The per-branch columns, in the order the Lua scripts receive them (ARGV groups). */
export const BRANCH_COLUMNS = ["branch_id", "op", "url", "bin_data", "status", "finish_time", "create_time", "update_time"] as const;
