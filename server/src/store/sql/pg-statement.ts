/**
 * Postgres statements whose text is built once, when the module loads. Kysely builds a query's
 * SQL on every call (its query builder, and its `sql` tag too, make an operation tree and compile
 * it), which was about 12 % of the coordinator's CPU per saga at C = 1 on Postgres. The store's
 * hot writes have a fixed text (branch lists travel as arrays); only their parameters change.
 *
 *     const FIND = pgStatement<"gid">`SELECT id FROM trans_global WHERE gid = ${"gid"}::text`;
 *     FIND.text                 // SELECT id FROM trans_global WHERE gid = $1::text
 *     FIND.params({ gid: "a" }) // ["a"]
 *
 * Each distinct name becomes one `$n`, numbered in order of first use; a name used twice is the
 * same parameter. `literal(...)` puts text in verbatim (constants, never input), and
 * `around(name, sql)` puts a parameter inside an expression of the code's own (a conversion).
 */

/** Text put into a statement as it is (see {@link literal}). */
export interface Literal {
  readonly literal: string;
}

/** `text` verbatim in a {@link pgStatement}: a constant of the code, never a value from a request. */
export function literal(text: string | number): Literal {
  return { literal: String(text) };
}

/** A parameter inside an expression of the statement's own (see {@link around}). */
export interface Around<K extends string> {
  readonly name: K;
  readonly sql: (ref: string) => string;
}

/** Parameter `name` as `sql($n)`, e.g. `around("t", msToTimestamptz)` for `to_timestamp($1::float8 / 1000)`. */
export function around<K extends string>(name: K, sql: (ref: string) => string): Around<K> {
  return { name, sql };
}

export interface PgStatement<K extends string> {
  /** The SQL, with `$1`, `$2`, ... for the parameters. */
  readonly text: string;
  /** The parameter values in `$n` order. */
  params(values: Readonly<Record<K, unknown>>): unknown[];
}

/** See the module comment. */
export function pgStatement<K extends string>(strings: TemplateStringsArray, ...parts: (K | Literal | Around<K>)[]): PgStatement<K> {
  const order: K[] = [];
  const ref = (name: K): string => {
    let n = order.indexOf(name);
    if (n < 0) n = order.push(name) - 1;
    return `$${n + 1}`;
  };
  let text = strings[0] ?? "";
  parts.forEach((part, i) => {
    if (typeof part === "string") text += ref(part);
    else if ("literal" in part) text += part.literal;
    else text += part.sql(ref(part.name));
    text += strings[i + 1] ?? "";
  });
  return { text, params: (values) => order.map((name) => values[name]) };
}
