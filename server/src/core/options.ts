import { clampNumber, MAX_REQUEST_TIMEOUT_SECONDS, MAX_RETRY_COUNT, MAX_SECONDS } from "./time-limits.ts";
import type { TransOptions } from "./types.ts";

export const DEFAULT_OPTIONS: TransOptions = Object.freeze({
  waitResult: false,
  timeoutToFail: 0,
  requestTimeout: 0,
  retryInterval: 0,
  branchHeaders: Object.freeze({}) as Record<string, string>,
  concurrent: false,
  retryLimit: 0,
  retryCount: 0,
});

/**
 * Encodes options as dtm stores them in the `options` column: JSON in the key order of Go's
 * TransOptions, seconds for durations, omitting empty values except `concurrent`.
 */
export function encodeOptions(o: TransOptions): string {
  const out: Record<string, unknown> = {};
  if (o.waitResult) out["wait_result"] = true;
  if (o.timeoutToFail) out["timeout_to_fail"] = o.timeoutToFail / 1000;
  if (o.requestTimeout) out["request_timeout"] = o.requestTimeout / 1000;
  if (o.retryInterval) out["retry_interval"] = o.retryInterval / 1000;
  if (Object.keys(o.branchHeaders).length > 0) out["branch_headers"] = o.branchHeaders;
  out["concurrent"] = o.concurrent;
  if (o.retryLimit) out["retry_limit"] = o.retryLimit;
  if (o.retryCount) out["retry_count"] = o.retryCount;
  return JSON.stringify(out);
}

/**
 * Decodes a stored `options` column; tolerant of anything an older coordinator (or a hand edit)
 * wrote: values outside the ranges a request may set are clamped into them (core/time-limits.ts).
 */
export function decodeOptions(text: string): TransOptions {
  if (!text) return { ...DEFAULT_OPTIONS, branchHeaders: {} };
  let raw: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(text);
    raw = parsed !== null && typeof parsed === "object" ? (parsed as Record<string, unknown>) : {};
  } catch {
    raw = {};
  }
  const seconds = (key: string, max = MAX_SECONDS): number => {
    const v = raw[key];
    return typeof v === "number" && Number.isFinite(v) && v > 0 ? Math.round(clampNumber(v, 0, max) * 1000) : 0;
  };
  const count = (key: string): number => {
    const v = raw[key];
    return typeof v === "number" && Number.isFinite(v) && v > 0 ? Math.floor(clampNumber(v, 0, MAX_RETRY_COUNT)) : 0;
  };
  const headers = raw["branch_headers"];
  return {
    waitResult: raw["wait_result"] === true,
    timeoutToFail: seconds("timeout_to_fail"),
    requestTimeout: seconds("request_timeout", MAX_REQUEST_TIMEOUT_SECONDS),
    retryInterval: seconds("retry_interval"),
    branchHeaders: stringRecord(headers),
    concurrent: raw["concurrent"] === true,
    retryLimit: count("retry_limit"),
    retryCount: count("retry_count"),
  };
}

function stringRecord(value: unknown): Record<string, string> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return {};
  // fromEntries defines own properties, so a header named "__proto__" stays a header.
  return Object.fromEntries(Object.entries(value as Record<string, unknown>).filter((e): e is [string, string] => typeof e[1] === "string"));
}
