import { encodeOptions } from "../core/options.ts";
import { renderTime } from "../core/time-limits.ts";
import type { Branch, TransGlobal } from "../core/types.ts";

/** dtm prints times as RFC 3339; null when unset. Never throws, whatever a stored row holds. */
const time = renderTime;

/**
 * The trans as dtm's `/query` and `/all` show it on a SQL store (docs/protocol.md#data-model): option keys
 * live inside the `options` string, and only `concurrent` appears at the top level.
 */
export function transToWire(t: TransGlobal): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: t.id,
    create_time: time(t.createTime),
    update_time: time(t.updateTime),
    gid: t.gid,
    trans_type: t.transType,
    status: t.status,
  };
  if (t.queryPrepared) out["query_prepared"] = t.queryPrepared;
  out["protocol"] = t.protocol;
  if (t.finishTime !== null) out["finish_time"] = time(t.finishTime);
  if (t.rollbackTime !== null) out["rollback_time"] = time(t.rollbackTime);
  if (t.result) out["result"] = t.result;
  if (t.rollbackReason) out["rollback_reason"] = t.rollbackReason;
  out["options"] = encodeOptions(t.options);
  if (t.customData) out["custom_data"] = t.customData;
  out["next_cron_interval"] = Number.isFinite(t.nextCronInterval) ? t.nextCronInterval / 1000 : 0;
  out["next_cron_time"] = time(t.nextCronTime);
  if (t.owner) out["owner"] = t.owner;
  if (t.extData) out["ext_data"] = t.extData;
  out["concurrent"] = t.options.concurrent;
  return out;
}

export function branchToWire(b: Branch): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: b.id,
    create_time: time(b.createTime),
    update_time: time(b.updateTime),
    gid: b.gid,
  };
  if (b.url) out["url"] = b.url;
  if (b.binData.byteLength > 0) out["bin_data"] = Buffer.from(b.binData).toString("base64");
  out["branch_id"] = b.branchId;
  out["op"] = b.op;
  out["status"] = b.status;
  if (b.finishTime !== null) out["finish_time"] = time(b.finishTime);
  return out;
}
