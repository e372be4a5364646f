/**
 * How error messages mention what a client sent (docs/input-limits.md, "What errors echo").
 *
 * A message may quote a small part of the request so the caller can find its mistake, but never
 * all of it: a client can send a 1 MB key or a value nested 5,000 levels deep, and building the
 * message must neither echo that back nor recurse into it (JSON.stringify and String() of a deeply
 * nested array overflow the stack, which once turned a client mistake into a 500).
 */

/** The longest piece of client input a message quotes, in UTF-16 units. */
export const MAX_ECHO_CHARS = 100;

/** The longest error message dtx sends (a safety net behind the per-value cap). */
export const MAX_MESSAGE_CHARS = 500;

/**
 * `text` cut to at most `max` characters (plus a note of how much was cut). A cut never splits a
 * surrogate pair, so the result is always well-formed UTF-16.
 */
export function clip(text: string, max = MAX_ECHO_CHARS): string {
  if (text.length <= max) return text;
  let end = max;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return `${text.slice(0, end)}…(${text.length - end} more characters)`;
}

/**
 * A short description of any value, for "x must be a string; got …": a quoted, clipped string;
 * a number, boolean or null as written; arrays and objects by their type and size only. Never
 * recursive, so a value of any depth is described in constant stack.
 */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (typeof value === "string") return JSON.stringify(clip(value));
  if (typeof value === "number" || typeof value === "boolean") return clip(String(value));
  if (Array.isArray(value)) return `an array of ${value.length} item${value.length === 1 ? "" : "s"}`;
  if (value instanceof Uint8Array) return `${value.byteLength} bytes`;
  if (typeof value === "object") return "an object";
  return `a ${typeof value}`;
}

/** A client-chosen name (an object key, a header name) quoted for a message, clipped. */
export function quoteName(name: string): string {
  return JSON.stringify(clip(name));
}

/**
 * `text` with every lone surrogate replaced by U+FFFD. V8's own messages can quote half of a
 * surrogate pair from the input (a JSON syntax error names one UTF-16 unit), and grpc-js sends a
 * status message through encodeURI, which throws on one; HTTP's JSON encoder escapes them instead.
 */
export function wellFormed(text: string): string {
  return text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD");
}
