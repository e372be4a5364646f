/**
 * The ranges of every client-supplied number that becomes a time or a retry count
 * (docs/input-limits.md). Requests outside them are refused with INVALID_OPTIONS before anything is
 * written; values read back from a store (written by an older version, or by hand) are clamped into
 * them, and times are rendered so that no stored row can make a listing fail.
 */

/** timeout_to_fail and retry_interval: at most one year, in seconds. */
export const MAX_SECONDS = 365 * 24 * 3600;
/** request_timeout ends up in a Node timer, which silently fires after 1 ms past 2^31-1 ms. */
export const MAX_REQUEST_TIMEOUT_SECONDS = Math.floor((2 ** 31 - 1) / 1000);
/** A msg's `custom_data.delay`: at most one year, in seconds. */
export const MAX_MSG_DELAY_SECONDS = MAX_SECONDS;
/** retry_limit and retry_count. */
export const MAX_RETRY_COUNT = 1_000_000;

/** 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: RFC 3339 (and Go's time.Time) need four-digit years. */
export const EARLIEST_RENDERED_MS = -62_167_219_200_000;
export const LATEST_RENDERED_MS = 253_402_300_799_999;

/** `value` clamped into [min, max]; NaN becomes `min`. */
export function clampNumber(value: number, min: number, max: number): number {
  if (!(value >= min)) return min;
  return value > max ? max : value;
}

/**
 * An epoch-millisecond time as RFC 3339 (what dtm prints), null when unset or not a number. A time
 * outside years 0000-9999 is shown as the nearest end of that range rather than throwing (which
 * `toISOString` does past the largest JS date) or printing a six-digit year a Go client cannot parse.
 */
export function renderTime(ms: number | null | undefined): string | null {
  // A hand-edited SQLite row can hold text in an INTEGER column: the type says number, the row may not.
  if (typeof ms !== "number" || Number.isNaN(ms)) return null;
  return new Date(clampNumber(ms, EARLIEST_RENDERED_MS, LATEST_RENDERED_MS)).toISOString();
}
