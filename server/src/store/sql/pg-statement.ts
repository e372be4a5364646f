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
 * same parameter. `literal(...)` puts text in verbatim (constants, never input).
 */

/** Text put into a statement as it is (see {@link literal}). */
export interface Literal {
  readonly literal: string;
}

/** `text` verbatim in a {@link pgStatement}: a constant of the code, never a value from a request. */
export function literal(text: string | number): Literal {
  return { literal: String(text) };
}

export interface PgStatement<K extends string> {
  /** The SQL, with `$1`, `$2`, ... for the parameters. */
  readonly text: string;
  /** The parameter values in `$n` order. */
  params(values: Readonly<Record<K, unknown>>): unknown[];
}

/** See the module comment. */
export function pgStatement<K extends string>(strings: TemplateStringsArray, ...parts: (K | Literal)[]): PgStatement<K> {
  const order: K[] = [];
  let text = strings[0] ?? "";
  parts.forEach((part, i) => {
    if (typeof part === "string") {
      let n = order.indexOf(part);
      if (n < 0) n = order.push(part) - 1;
      text += `$${n + 1}`;
    } else {
      text += part.literal;
    }
    text += strings[i + 1] ?? "";
  });
  return { text, params: (values) => order.map((name) => values[name]) };
}
