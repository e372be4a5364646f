/**
 * Each test owns its barrier tables (a fresh machine must pass as CI does): no suite that uses the
 * shared PostgreSQL or MariaDB server may use the default barrier table, `dtm_barrier.barrier`.
 * Two suites did, in two layouts (dtm's, with an `id` column, and the SDK's), so whichever ran
 * first on a new machine made the other fail. Only these may name it:
 * - barrier-unit.test.ts checks the default name, and touches no database;
 * - barrier-mongo.test.ts runs on its own Mongo server (test/helpers/mongo.ts);
 * - test_dtmcli.py: dtm's Python client hard-codes the name (MariaDB, dtm's layout); no other
 *   suite uses it.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = new URL("../../", import.meta.url).pathname;
const ALLOWED = new Set(["test/unit/test-isolation.test.ts", "sdk/test/barrier-unit.test.ts", "sdk/test/barrier-mongo.test.ts", "test/compat/python/test_dtmcli.py"]);

function files(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return files(path);
    return /\.(ts|go|py)$/.test(e.name) ? [path] : [];
  });
}

/** The file's code lines: comment lines (//, /* *, #) and docstring-free enough for this check. */
function codeLines(text: string): string[] {
  return text.split("\n").filter((l) => !/^\s*(\/\/|\/\*|\*|#)/.test(l));
}

const suites = [...files("test"), ...files("sdk/test"), ...files("examples")].map((f) => relative(ROOT, join(ROOT, f)));

describe("test isolation: barrier tables", () => {
  it("no suite on the shared databases uses dtm_barrier.barrier (or dtm_barrier) in code", () => {
    const offenders = suites.filter((f) => !ALLOWED.has(f)).filter((f) => codeLines(readFileSync(join(ROOT, f), "utf8")).some((l) => /dtm_barrier/.test(l)));
    expect(offenders).toEqual([]);
  });

  it("a suite that creates the default barrier table first sets the default to a table of its own", () => {
    const offenders = suites.filter((f) => {
      const code = codeLines(readFileSync(join(ROOT, f), "utf8")).join("\n");
      const defaultTable = /createBarrierTable\("(postgres|mysql)", [^,)]+\)/.test(code);
      return defaultTable && !/setBarrierTableName\(/.test(code);
    });
    expect(offenders).toEqual([]);
  });
});
