import type { Redis } from "ioredis";
import type { Arg } from "./codec.ts";

/**
 * The Lua scripts of the Redis store: every write that touches more than one field or key is one
 * script, so Redis runs it atomically and a CAS (status, KV version) cannot interleave with
 * another coordinator's write. Registered with `defineCommand` (EVALSHA, falling back to EVAL
 * after a SCRIPT FLUSH or on a new server).
 *
 * Redis does not roll a script back when it fails half way, so every script checks everything
 * (CHECK / UNIQUE rules included) before its first write.
 *
 * claimDue, resetCronTime, pruneIds and retention reach trans hashes they cannot name in KEYS (the gids come
 * out of a zset), as dtm's LockOneGlobalTrans does: the prefix's hash tag keeps them in the slot
 * of the declared keys, which is what Redis Cluster needs.
 */

/** Keeps P:due and the retention in line with the status, after any write to a trans. */
const PLACE = `
local function place(g, b, due, gid, ttl)
  local st = redis.call('HGET', g, 'status')
  if st == 'succeed' or st == 'failed' then
    redis.call('ZREM', due, gid)
    if ttl > 0 then
      redis.call('EXPIRE', g, ttl)
      redis.call('EXPIRE', b, ttl)
    end
  else
    redis.call('ZADD', due, redis.call('HGET', g, 'next_cron_time'), gid)
  end
end
`;

/** Branch ARGV groups of 9 (slot + keys.ts BRANCH_COLUMNS) from ARGV[first]: checks, then inserts. */
const BRANCHES = `
local function checkBranch(a)
  if ARGV[a + 1] == '' or ARGV[a + 2] == '' then
    return redis.error_reply('CHECK constraint violated: branch_id and op must not be empty')
  end
end
local function addBranch(b, seq, a)
  local n = redis.call('HINCRBY', b, 'count', 1)
  redis.call('HSET', b, ARGV[a], n, n .. '.id', redis.call('INCR', seq),
    n .. '.branch_id', ARGV[a + 1], n .. '.op', ARGV[a + 2], n .. '.url', ARGV[a + 3], n .. '.bin_data', ARGV[a + 4],
    n .. '.status', ARGV[a + 5], n .. '.create_time', ARGV[a + 7], n .. '.update_time', ARGV[a + 8])
  if ARGV[a + 6] ~= '' then redis.call('HSET', b, n .. '.finish_time', ARGV[a + 6]) end
end
`;

/**
 * KEYS: g, b, seq, ids, due. ARGV: gid, ttl, field count f, f trans fields/values, branch groups.
 * Returns 'created' | 'exists'.
 */
const SAVE_NEW_TRANS = `${PLACE}${BRANCHES}
local g, b, seq, ids, due = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local gid, ttl, f = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('EXISTS', g) == 1 then return 'exists' end
local first = 4 + f
local seen = {}
for a = first, #ARGV, 9 do
  local bad = checkBranch(a)
  if bad then return bad end
  if seen[ARGV[a]] then return redis.error_reply('UNIQUE constraint violated: (gid, branch_id, op) given twice') end
  seen[ARGV[a]] = true
end
local id = redis.call('INCR', seq)
redis.call('HSET', g, 'id', id, unpack(ARGV, 4, first - 1))
redis.call('ZADD', ids, id, gid)
for a = first, #ARGV, 9 do addBranch(b, seq, a) end
place(g, b, due, gid, ttl)
return 'created'
`;

/**
 * KEYS: g, b, seq. ARGV: expected status, branch groups.
 * Returns 'saved' | 'status_mismatch' | 'not_found' | 'conflict'.
 */
const APPEND_BRANCHES = `${BRANCHES}
local g, b, seq = KEYS[1], KEYS[2], KEYS[3]
local st = redis.call('HGET', g, 'status')
if not st then return 'not_found' end
if st ~= ARGV[1] then return 'status_mismatch' end
for a = 2, #ARGV, 9 do
  local bad = checkBranch(a)
  if bad then return bad end
  local n = redis.call('HGET', b, ARGV[a])
  if n then
    local cur = redis.call('HMGET', b, n .. '.url', n .. '.status', n .. '.bin_data')
    if cur[1] ~= ARGV[a + 3] or cur[2] ~= ARGV[a + 5] or (cur[3] or '') ~= ARGV[a + 4] then return 'conflict' end
  end
end
for a = 2, #ARGV, 9 do
  if redis.call('HEXISTS', b, ARGV[a]) == 0 then addBranch(b, seq, a) end
end
-- A trans already finished (and so expiring) takes its new branches along.
local pttl = redis.call('PTTL', g)
if pttl > 0 then redis.call('PEXPIRE', b, pttl) end
return 'saved'
`;

/**
 * KEYS: g, b, due. ARGV: gid, expected status, ttl, check owner ('1' or '0'), expected owner,
 * field count f, f patch fields/values, then branch updates in groups of 4 (slot, status,
 * finish_time, update_time). Returns 1 if the CAS (status, and the fencing token in `owner` when
 * checked) won.
 */
const UPDATE_TRANS = `${PLACE}
local g, b, due = KEYS[1], KEYS[2], KEYS[3]
local gid, ttl, f = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[6])
if redis.call('HGET', g, 'status') ~= ARGV[2] then return 0 end
if ARGV[4] == '1' and (redis.call('HGET', g, 'owner') or '') ~= ARGV[5] then return 0 end
redis.call('HSET', g, unpack(ARGV, 7, 6 + f))
for a = 7 + f, #ARGV, 4 do
  local n = redis.call('HGET', b, ARGV[a])
  if n then
    redis.call('HSET', b, n .. '.status', ARGV[a + 1], n .. '.finish_time', ARGV[a + 2], n .. '.update_time', ARGV[a + 3])
  end
end
place(g, b, due, gid, ttl)
return 1
`;

/**
 * KEYS: due. ARGV: trans key prefix, now, leaseUntil, limit, token (the claim's new owner). Returns the claimed trans
 * hashes (HGETALL replies), oldest due first (ties by gid: the zset orders members so, where the
 * SQL stores use id). Pushing the score to leaseUntil in the same script is the lease: no other
 * claimDue sees the gid as due until it runs out.
 */
const CLAIM_DUE = `
local due = KEYS[1]
local out = {}
for _, gid in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', ARGV[2], 'LIMIT', 0, ARGV[4])) do
  local g = ARGV[1] .. gid
  local st = redis.call('HGET', g, 'status')
  if st == 'prepared' or st == 'submitted' or st == 'aborting' then
    local previous = redis.call('HGET', g, 'owner') or ''
    redis.call('HSET', g, 'next_cron_time', ARGV[3], 'owner', ARGV[5], 'update_time', ARGV[2])
    redis.call('ZADD', due, ARGV[3], gid)
    local row = redis.call('HGETALL', g)
    table.insert(row, 1, previous)
    out[#out + 1] = row
  else
    -- Only unfinished trans are in P:due; this heals an index that was edited by hand.
    redis.call('ZREM', due, gid)
  end
end
return out
`;

/**
 * KEYS: g, due. ARGV: gid, token, leaseUntil. Returns 1 if `owner` still holds the token and the
 * trans is unfinished (the lease is then pushed to leaseUntil), else 0.
 */
const RENEW_LEASE = `
local g, due = KEYS[1], KEYS[2]
local st = redis.call('HGET', g, 'status')
if st ~= 'prepared' and st ~= 'submitted' and st ~= 'aborting' then return 0 end
if (redis.call('HGET', g, 'owner') or '') ~= ARGV[2] then return 0 end
redis.call('HSET', g, 'next_cron_time', ARGV[3])
redis.call('ZADD', due, ARGV[3], ARGV[1])
return 1
`;

/** KEYS: due. ARGV: trans key prefix, after, now, limit. Returns {count, hasRemaining (0/1)}. */
const RESET_CRON_TIME = `
local due, limit = KEYS[1], tonumber(ARGV[4])
local picked, offset, more = {}, 0, 0
-- A trans with an owner is held by a running pass (its lease is its score): left alone.
while more == 0 do
  local gids = redis.call('ZRANGEBYSCORE', due, '(' .. ARGV[2], '+inf', 'LIMIT', offset, 128)
  for _, gid in ipairs(gids) do
    if (redis.call('HGET', ARGV[1] .. gid, 'owner') or '') == '' then
      if #picked < limit then picked[#picked + 1] = gid else more = 1 break end
    end
  end
  if #gids < 128 then break end
  offset = offset + 128
end
for _, gid in ipairs(picked) do
  redis.call('ZADD', due, ARGV[3], gid)
  redis.call('HSET', ARGV[1] .. gid, 'next_cron_time', ARGV[3], 'update_time', ARGV[3])
end
return {#picked, more}
`;

/**
 * KEYS: g, due. ARGV: gid, now. Returns 0 for an unknown gid. A lease held by a running pass (an
 * owner, next_cron_time still ahead) is left alone.
 */
const RESET_NEXT_CRON_TIME = `
local g, due = KEYS[1], KEYS[2]
local st = redis.call('HGET', g, 'status')
if not st then return 0 end
if (redis.call('HGET', g, 'owner') or '') ~= '' and tonumber(redis.call('HGET', g, 'next_cron_time')) > tonumber(ARGV[2]) then return 1 end
redis.call('HSET', g, 'next_cron_time', ARGV[2], 'update_time', ARGV[2])
if st ~= 'succeed' and st ~= 'failed' then redis.call('ZADD', due, ARGV[2], ARGV[1]) end
return 1
`;

/** KEYS: ids. ARGV: trans key prefix, gids. Drops index entries whose trans has expired. */
const PRUNE_IDS = `
local n = 0
for i = 2, #ARGV do
  if redis.call('EXISTS', ARGV[1] .. ARGV[i]) == 0 then n = n + redis.call('ZREM', KEYS[1], ARGV[i]) end
end
return n
`;

/**
 * KEYS: ids. ARGV: trans key prefix, branches key prefix, min score (exclusive cursor or -inf),
 * before (ms), limit. Walks up to `limit` index entries upwards from the cursor: a gid whose trans
 * expired leaves the index; a finished trans last updated before `before` is deleted with its
 * branches. Unfinished ones are never touched. Ids ascend with creation, so the first trans
 * created at or after `before` ends the walk: nothing newer can be due for deletion yet, and a
 * round costs what there is to remove, not the size of the index.
 * Returns {deleted, pruned, last score, scanned, reached young (0/1)}.
 */
const RETENTION = `
local ids, before, limit = KEYS[1], tonumber(ARGV[4]), tonumber(ARGV[5])
local entries = redis.call('ZRANGEBYSCORE', ids, ARGV[3], '+inf', 'WITHSCORES', 'LIMIT', 0, limit)
local deleted, pruned, last, scanned = 0, 0, '', 0
for i = 1, #entries, 2 do
  local gid = entries[i]
  local h = redis.call('HMGET', ARGV[1] .. gid, 'status', 'update_time', 'create_time')
  if h[1] and tonumber(h[3]) >= before then return {deleted, pruned, last, scanned, 1} end
  last = entries[i + 1]
  scanned = scanned + 1
  if not h[1] then
    pruned = pruned + redis.call('ZREM', ids, gid)
  elseif (h[1] == 'succeed' or h[1] == 'failed') and tonumber(h[2]) < before then
    redis.call('UNLINK', ARGV[1] .. gid, ARGV[2] .. gid)
    redis.call('ZREM', ids, gid)
    deleted = deleted + 1
  end
end
return {deleted, pruned, last, scanned, 0}
`;

/** KEYS: kv, kvIndex, seq. ARGV: k, v, now. Returns 'created' | 'exists'. */
const CREATE_KV = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 'exists' end
local id = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], 'id', id, 'v', ARGV[2], 'version', 1, 'create_time', ARGV[3], 'update_time', ARGV[3])
redis.call('ZADD', KEYS[2], id, ARGV[1])
return 'created'
`;

/** KEYS: kv. ARGV: v, expected version, now. Returns 1 if the CAS on version won. */
const UPDATE_KV = `
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[2] then return 0 end
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'update_time', ARGV[3])
return 1
`;

/** KEYS: kv, kvIndex. ARGV: k. Returns 1 if the entry existed. */
const DELETE_KV = `
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`;

const SCRIPTS = {
  dtxSaveNewTrans: { numberOfKeys: 5, lua: SAVE_NEW_TRANS },
  dtxAppendBranches: { numberOfKeys: 3, lua: APPEND_BRANCHES },
  dtxUpdateTrans: { numberOfKeys: 3, lua: UPDATE_TRANS },
  dtxClaimDue: { numberOfKeys: 1, lua: CLAIM_DUE },
  dtxRenewLease: { numberOfKeys: 2, lua: RENEW_LEASE },
  dtxResetCronTime: { numberOfKeys: 1, lua: RESET_CRON_TIME },
  dtxResetNextCronTime: { numberOfKeys: 2, lua: RESET_NEXT_CRON_TIME },
  dtxPruneIds: { numberOfKeys: 1, lua: PRUNE_IDS },
  dtxRetention: { numberOfKeys: 1, lua: RETENTION },
  dtxCreateKV: { numberOfKeys: 3, lua: CREATE_KV },
  dtxUpdateKV: { numberOfKeys: 1, lua: UPDATE_KV },
  dtxDeleteKV: { numberOfKeys: 2, lua: DELETE_KV },
} as const;

export type ScriptName = keyof typeof SCRIPTS;

/** A defined script: call it with its KEYS, then its ARGV. */
export type ScriptCall = (...keysThenArgs: Arg[]) => Promise<unknown>;

/**
 * Defines every script on the client and returns them typed: defineCommand adds methods that
 * ioredis' types do not know, so they are looked up once here instead of cast at each call.
 */
export function defineScripts(redis: Redis): Record<ScriptName, ScriptCall> {
  const out = {} as Record<ScriptName, ScriptCall>;
  for (const [name, definition] of Object.entries(SCRIPTS) as [ScriptName, (typeof SCRIPTS)[ScriptName]][]) {
    redis.defineCommand(name, definition);
    const method: unknown = Reflect.get(redis, name);
    if (typeof method !== "function") throw new Error(`ioredis did not define the ${name} script`);
    out[name] = (...args: Arg[]) => (method as ScriptCall).apply(redis, args);
  }
  return out;
}
