import { join } from "node:path";
import Database from "better-sqlite3";
import fc from "fast-check";
import { Agent, request } from "undici";
import { expect } from "vitest";
import { AUTH_ERROR_CODES } from "../../server/src/api/auth.ts";
import type { ErrorSpec } from "../../server/src/core/errors.ts";
import { ERROR_CATALOGUE, WIRE_RESULT_CODES } from "../../server/src/core/errors.ts";
import type { TestCoordinator } from "./coordinator.ts";
import { freePort } from "./processes.ts";

/**
 * What the three fuzz suites (test/e2e/fuzz-http, fuzz-json-rpc, fuzz-grpc) share: the seed, the
 * value and text mutations, the catalogue of stable codes, and the ledger that checks the store
 * after every request and every batch (docs/input-limits.md, "Fuzzing").
 *
 * Replay: every suite prints `DTX_FUZZ_SEED=<n>`; run the same file with that variable set.
 * `DTX_FUZZ_SCALE` multiplies the number of runs (default 1; CI's total is over 20,000 requests). It
 * is at least 0.5: below that the suites' coverage checks (every kind of answer reached) would not
 * hold, and a smaller run that silently checked less would be a quiet skip.
 */

/** The seed of this run: DTX_FUZZ_SEED, else a random one (printed by {@link announceSeed}). */
export const FUZZ_SEED: number = process.env["DTX_FUZZ_SEED"] ? Number(process.env["DTX_FUZZ_SEED"]) : Math.floor(Math.random() * 2 ** 31);
export const FUZZ_SCALE: number = fuzzScale(process.env["DTX_FUZZ_SCALE"]);

function fuzzScale(raw: string | undefined): number {
  const scale = Number(raw ?? 1);
  if (!Number.isFinite(scale) || scale < 0.5) throw new Error(`DTX_FUZZ_SCALE must be a number of at least 0.5, not '${raw ?? ""}'`);
  return scale;
}

export function announceSeed(file: string): void {
  process.stdout.write(`[fuzz] ${file}: seed ${FUZZ_SEED}; replay with DTX_FUZZ_SEED=${FUZZ_SEED} npx vitest run ${file}\n`);
}

/** Every stable code a client may see, with its HTTP status and gRPC code. */
export const DOCUMENTED_CODES: Readonly<Record<string, ErrorSpec>> = { ...ERROR_CATALOGUE, ...WIRE_RESULT_CODES, ...AUTH_ERROR_CODES };

export const GID_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/;
export const MAX_MESSAGE_CHARS = 1300;

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

// ---------------------------------------------------------------------------------------------
// Values

/** Branch URLs: "" (a no-op branch) or a port where nothing listens ({@link realUrl}). */
export const urlArb = fc.constantFrom("", "", "", "dead:/a", "dead:/b?x=1", "dead-creds:/c?api_key=k");

export function realUrl(url: string, deadPort: number): string {
  if (url.startsWith("dead-creds:")) return `http://u:pw@127.0.0.1:${deadPort}${url.slice("dead-creds:".length)}`;
  return url.startsWith("dead:") ? `http://127.0.0.1:${deadPort}${url.slice("dead:".length)}` : url;
}

export const DEEP = "__DTX_FUZZ_DEEP__";

/** Numbers at and past every documented limit, and the ones JSON cannot hold exactly. */
export const absurdNumberArb: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(
    -1, -0.5, 0, 0.0001, 1.5, 2 ** 31, 2 ** 31 - 1, 2 ** 53 + 2, 1e13, 1e15, 8.64e15, 1e300, 1e308, -1e308,
    31_536_000, 31_536_001, 2_147_483, 2_147_484, 1_000_000, 1_000_001,
  ),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);

export const weirdValueArb: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(
    null, true, false, "", "NaN", "Infinity", "1e308", "true", "0", [], {}, [""], { a: "b" }, ["http://h/a"], "ftp://x", "http://",
    "not a url", "\u0000", "a\r\nb", "\u{1F600}", "\uD800", "'; DROP TABLE trans_global; --", "x".repeat(1025), "saga", "msg", "tcc",
    "xa", "workflow", "SAGA", "grpc", "json-rpc", '{"delay":1e13}', '{"Delay":-1}', '{"delay":31536001}', '{"delay":5}',
    '{"concurrent":true,"orders":{"0":[0]}}', '{"orders":{"1":[0],"0":[1]}}', "{not json", "prepared", "succeed", "failed",
    "http://u:pw@127.0.0.1:1/x?api_key=k",
  ),
  absurdNumberArb,
  fc.string({ unit: "binary", maxLength: 24 }),
  fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
);

export const badGidArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom("a".repeat(129), "bad gid", 'bad"gid', "bad;gid", "bad\ngid", "bäd", "bad\u0000gid", "\u0000", "--", "a/b", "%41", "Az09_.:-".repeat(16), "\u{1F600}", "\uD800"),
  fc.string({ unit: "binary", minLength: 1, maxLength: 140 }),
);

/** A nested array or object `depth` levels deep, as JSON text (built without recursion). */
export function deepJson(depth: number, array: boolean): string {
  return array ? `${"[".repeat(depth)}1${"]".repeat(depth)}` : `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
}

/** JSON text, with each deep-nesting marker (`${DEEP}A5000`) replaced by that many nested levels. */
export function encodeJson(value: Json): string {
  return JSON.stringify(value).replace(new RegExp(`"${DEEP}([AO])(\\d+)"`, "g"), (_, shape: string, depth: string) => deepJson(Number(depth), shape === "A"));
}

export const deepMarkerArb: fc.Arbitrary<string> = fc
  .record({ depth: fc.constantFrom(2, 64, 1000, 5000), array: fc.boolean() })
  .map(({ depth, array }) => `${DEEP}${array ? "A" : "O"}${depth}`);

// ---------------------------------------------------------------------------------------------
// Object mutations

export type ObjMutation =
  | { kind: "drop"; key: string }
  | { kind: "set"; path: (string | number)[]; value: Json }
  | { kind: "deep"; path: (string | number)[]; marker: string }
  | { kind: "gid"; value: string }
  | { kind: "reuseGid"; index: number }
  | { kind: "huge"; path: (string | number)[]; chars: number }
  | { kind: "extraKey"; key: string; value: Json };

/** Mutations of a body whose interesting fields are `paths` (each a path into the body). */
export function objMutationArb(paths: (string | number)[][]): fc.Arbitrary<ObjMutation> {
  const keys = [...new Set(paths.map((p) => String(p[0])))];
  const pathArb = fc.constantFrom(...paths, ["gid"], ["extra"], ["__proto__"], ["constructor"]);
  return fc.oneof(
    fc.record({ kind: fc.constant("drop" as const), key: fc.constantFrom("gid", ...keys) }),
    { arbitrary: fc.record({ kind: fc.constant("set" as const), path: pathArb, value: weirdValueArb }), weight: 4 },
    fc.record({ kind: fc.constant("deep" as const), path: pathArb, marker: deepMarkerArb }),
    fc.record({ kind: fc.constant("gid" as const), value: badGidArb }),
    { arbitrary: fc.record({ kind: fc.constant("reuseGid" as const), index: fc.nat() }), weight: 2 },
    fc.record({ kind: fc.constant("huge" as const), path: pathArb, chars: fc.constantFrom(129, 1025, 10_000, 70_000) }),
    fc.record({ kind: fc.constant("extraKey" as const), key: fc.string({ maxLength: 12 }), value: weirdValueArb }),
  );
}

export function setAt(obj: JsonObject, path: (string | number)[], value: Json): void {
  let node: Json = obj;
  for (const [i, key] of path.entries()) {
    if (node === null || typeof node !== "object") return;
    const last = i === path.length - 1;
    if (Array.isArray(node)) {
      if (typeof key !== "number" || key >= node.length) return;
      if (last) node[key] = value;
      else node = node[key] ?? null;
    } else {
      const name = String(key);
      if (last) Object.defineProperty(node, name, { value, enumerable: true, writable: true, configurable: true });
      else node = Object.hasOwn(node, name) ? (node[name] ?? null) : null;
    }
  }
}

export function applyObjMutation(obj: JsonObject, m: ObjMutation, knownGids: readonly string[]): void {
  switch (m.kind) {
    case "drop":
      delete obj[m.key];
      return;
    case "set":
      setAt(obj, m.path, m.value);
      return;
    case "deep":
      setAt(obj, m.path, m.marker);
      return;
    case "gid":
      obj["gid"] = m.value;
      return;
    case "reuseGid":
      if (knownGids.length > 0) obj["gid"] = knownGids[m.index % knownGids.length] ?? null;
      return;
    case "huge":
      setAt(obj, m.path, "h".repeat(m.chars));
      return;
    case "extraKey":
      setAt(obj, [m.key], m.value);
      return;
  }
}

// ---------------------------------------------------------------------------------------------
// Text mutations (HTTP and JSON-RPC bodies)

export type TextMutation =
  | { kind: "truncate"; at: number }
  | { kind: "insert"; at: number; text: string }
  | { kind: "replaceChar"; at: number; ch: string }
  | { kind: "duplicateKey"; key: string; value: Json }
  | { kind: "bom" }
  | { kind: "numberToken"; key: string; token: string }
  | { kind: "garbage"; text: string };

const fraction = fc.double({ min: 0, max: 1, noNaN: true });

export function textMutationArb(keys: string[]): fc.Arbitrary<TextMutation> {
  return fc.oneof(
    fc.record({ kind: fc.constant("truncate" as const), at: fraction }),
    fc.record({ kind: fc.constant("insert" as const), at: fraction, text: fc.oneof(fc.string({ unit: "binary", maxLength: 8 }), fc.constantFrom(",", "}", "]", '"', "\\", "{", ":", "\u0000", "//", "/*")) }),
    fc.record({ kind: fc.constant("replaceChar" as const), at: fraction, ch: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) }),
    fc.record({ kind: fc.constant("duplicateKey" as const), key: fc.constantFrom("gid", ...keys), value: weirdValueArb }),
    fc.constant({ kind: "bom" as const }),
    fc.record({
      kind: fc.constant("numberToken" as const),
      key: fc.constantFrom("gid", ...keys),
      token: fc.constantFrom("NaN", "Infinity", "-Infinity", "1e400", "-1e400", "0x10", "01", "1.", ".5", "+1", "-0", "1e-400", "1e13"),
    }),
    fc.record({ kind: fc.constant("garbage" as const), text: fc.oneof(fc.string({ unit: "binary", maxLength: 64 }), fc.constantFrom("", "null", "[]", "42", '"x"', "{", "\uFEFF")) }),
  );
}

export function applyTextMutation(text: string, m: TextMutation): string {
  const at = (f: number): number => Math.min(text.length, Math.floor(f * (text.length + 1)));
  switch (m.kind) {
    case "truncate":
      return text.slice(0, at(m.at));
    case "insert":
      return text.slice(0, at(m.at)) + m.text + text.slice(at(m.at));
    case "replaceChar": {
      const i = Math.min(at(m.at), Math.max(0, text.length - 1));
      return text.slice(0, i) + m.ch + text.slice(i + 1);
    }
    case "duplicateKey":
      return text.endsWith("}") ? `${text.slice(0, -1)},${JSON.stringify(m.key)}:${JSON.stringify(m.value)}}` : text;
    case "bom":
      return `\uFEFF${text}`;
    case "numberToken":
      return text.endsWith("}") ? `${text.slice(0, -1)},${JSON.stringify(m.key)}:${m.token}}` : text;
    case "garbage":
      return m.text;
  }
}

/** The value the server sees for `key` in a JSON object body, if the text is one (a leading BOM is stripped, as fastify does). */
export function fieldIn(text: string, key: string): unknown {
  try {
    const value: unknown = JSON.parse(text.startsWith("\uFEFF") ? text.slice(1) : text);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>)[key] : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// The store ledger

/**
 * What the fuzzer believes the store holds, checked against the store itself: a transaction row
 * exists exactly for the gids some create request was answered for (2xx, FAILURE or ONGOING), a
 * refused request writes nothing, and every stored transaction reads back through query and /all.
 */
export class FuzzLedger {
  readonly gids = new Set<string>();
  readonly list: string[] = [];
  private readonly db: Database.Database;
  private readonly readable = new Set<string>();
  private readonly agent = new Agent({ connections: 4, keepAliveTimeout: 60_000 });
  private readonly hasTrans: Database.Statement<[string], { n: number }>;
  private readonly branchCount: Database.Statement<[string], { n: number }>;

  constructor(private readonly dtx: TestCoordinator) {
    this.db = new Database(join(dtx.dataDir, "dtx.db"), { readonly: true, fileMustExist: true });
    this.hasTrans = this.db.prepare("SELECT count(*) AS n FROM trans_global WHERE gid = ?");
    this.branchCount = this.db.prepare("SELECT count(*) AS n FROM trans_branch_op WHERE gid = ?");
  }

  close(): Promise<void> {
    this.db.close();
    return this.agent.close();
  }

  stored(gid: string): boolean {
    return (this.hasTrans.get(gid)?.n ?? 0) > 0;
  }

  branches(gid: string): number {
    return this.branchCount.get(gid)?.n ?? 0;
  }

  /**
   * After a request that named `gid`: when it may have created the transaction (`created`), the
   * row must exist and joins the ledger; otherwise a gid the ledger does not know must have no row.
   */
  afterRequest(gid: unknown, created: boolean, what: string): void {
    if (typeof gid !== "string" || !GID_PATTERN.test(gid)) return;
    if (created) {
      expect(this.stored(gid), `${what}: answered as written, but no row for ${gid}`).toBe(true);
      if (!this.gids.has(gid)) {
        this.gids.add(gid);
        this.list.push(gid);
      }
      return;
    }
    if (!this.gids.has(gid)) expect(this.stored(gid), `${what}: refused, but a row exists for ${gid}`).toBe(false);
  }

  /**
   * The batch check: row counts match the ledger, no branch row without its transaction, every
   * new gid reads back through /query, and /all pages (with a random page size) list them all.
   */
  async verify(pageSize: number): Promise<number> {
    let requests = 0;
    const transRows = (this.db.prepare("SELECT count(*) AS n FROM trans_global").get() as { n: number }).n;
    const orphans = (this.db.prepare("SELECT count(*) AS n FROM trans_branch_op WHERE gid NOT IN (SELECT gid FROM trans_global)").get() as { n: number }).n;
    expect(transRows, "trans_global rows vs transactions the fuzzer saw accepted").toBe(this.gids.size);
    expect(orphans, "branch rows without a transaction").toBe(0);
    for (const gid of this.list) {
      if (this.readable.has(gid)) continue;
      const q = await this.get(`/api/dtmsvr/query?gid=${encodeURIComponent(gid)}`);
      requests += 1;
      expect(q.status, `query ${gid}: ${q.text.slice(0, 200)}`).toBe(200);
      expect((q.json as { transaction?: { gid?: string } }).transaction?.gid).toBe(gid);
      this.readable.add(gid);
    }
    const listed = new Set<string>();
    let position = "";
    for (;;) {
      const page = await this.get(`/api/dtmsvr/all?limit=${pageSize}${position ? `&position=${position}` : ""}`);
      requests += 1;
      expect(page.status, `/all: ${page.text.slice(0, 200)}`).toBe(200);
      const body = page.json as { transactions: { gid: string }[] | null; next_position: string };
      for (const t of body.transactions ?? []) listed.add(t.gid);
      if (!body.next_position) break;
      position = body.next_position;
    }
    expect(listed.size, "/all lists every stored transaction once").toBe(this.gids.size);
    for (const gid of this.gids) expect(listed.has(gid), `/all misses ${gid}`).toBe(true);
    return requests;
  }

  private async get(path: string): Promise<{ status: number; text: string; json: unknown }> {
    const res = await request(`${this.dtx.url}${path}`, { dispatcher: this.agent });
    const text = await res.body.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.statusCode, text, json };
  }
}

/** Tallies for the end-of-suite summary and the "every path was exercised" check. */
export class FuzzStats {
  requests = 0;
  readonly outcomes = new Map<string, number>();

  count(key: string): void {
    this.outcomes.set(key, (this.outcomes.get(key) ?? 0) + 1);
  }

  summary(): string {
    return `${this.requests} requests; ${JSON.stringify(Object.fromEntries([...this.outcomes].sort((a, b) => b[1] - a[1])))}`;
  }
}

/** A port nothing listens on: bound, then released. */
export async function unusedPort(): Promise<number> {
  return freePort();
}
