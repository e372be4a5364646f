/**
 * Postgres array literals (`{"a","b",NULL}`) for the hot writes' array parameters
 * (./pg-hot-writes.ts), built here instead of by node-postgres. pg turns a JS array into a
 * literal element by element through its generic prepareValue: two regex replaces per string and a
 * field-by-field local-time format per Date. On the project's 2-core bench that was about 7 % of
 * the coordinator's CPU at C = 64 on Postgres (bench/README.md, "Postgres parameters"); here a
 * string without `"` or `\` is copied as it is, and times travel as epoch milliseconds, which the
 * statements turn into timestamptz themselves (see {@link msToTimestamptz}).
 *
 * The grammar is Postgres's (docs: "Array Value Input"): every element is double-quoted, so commas,
 * braces, blanks and the word NULL inside a value need nothing; inside the quotes a backslash
 * escapes the next character, so only `"` and `\` are escaped. A NULL element is the bare word.
 */

/** A `text[]` literal; null elements are SQL NULL. */
export function textArray(values: readonly (string | null)[]): string {
  return arrayLiteral(values, quoted);
}

/**
 * A `bigint[]` / `int[]` literal (intervals, masks); null elements are SQL NULL. A value that is
 * not an integer goes to Postgres as it is, and Postgres refuses it: the statement fails as it did
 * when pg formatted the number, and a batch is then re-run call by call, so only that call fails
 * (./batcher.ts).
 */
export function integerArray(values: readonly (number | null)[]): string {
  return arrayLiteral(values, String);
}

/**
 * Times (epoch milliseconds) as a `bigint[]` literal for {@link msToTimestamptz}, cut to whole
 * milliseconds toward zero as `new Date(ms)` cuts them (a msg delay may hold a fraction of one).
 */
export function msArray(values: readonly (number | null)[]): string {
  return arrayLiteral(values, (ms) => String(wholeMs(ms)));
}

/** `ms` cut to a whole millisecond toward zero, as `new Date(ms)` does. */
export function wholeMs(ms: number): number {
  return Math.trunc(ms);
}

/** A `bytea[]` literal: each element in bytea's hex input form (`\x...`), its backslash escaped. */
export function byteaArray(values: readonly Uint8Array[]): string {
  return arrayLiteral(values, (v) => `"\\\\x${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("hex")}"`);
}

/**
 * SQL that turns epoch milliseconds (an expression of the statement, never input) into
 * timestamptz. to_timestamp takes seconds as float8 and rounds to whole microseconds: a
 * millisecond value comes back exact until about the year 140000, far past the times the API
 * lets into the store (docs/input-limits.md).
 */
export function msToTimestamptz(msExpression: string): string {
  return `to_timestamp(${msExpression}::float8 / 1000)`;
}

function quoted(value: string): string {
  return value.includes("\\") || value.includes('"') ? `"${value.replace(/[\\"]/g, "\\$&")}"` : `"${value}"`;
}

function arrayLiteral<T>(values: readonly (T | null)[], element: (value: T) => string): string {
  let out = "{";
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ",";
    const v = values[i];
    out += v === null || v === undefined ? "NULL" : element(v);
  }
  return out + "}";
}
