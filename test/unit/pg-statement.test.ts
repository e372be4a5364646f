/**
 * Statements of fixed text (server/src/store/sql/pg-statement.ts): names become $1, $2, ... in
 * order of first use, a repeated name is the same parameter, literals go in verbatim, and the
 * parameters come out in $n order. The statements themselves run against a real Postgres in the
 * store suites (test/store/postgres-*.test.ts).
 */
import { describe, expect, it } from "vitest";
import { around, literal, pgStatement } from "../../server/src/store/sql/pg-statement.ts";

describe("pgStatement", () => {
  it("numbers names in order of first use and reuses the number of a repeated name", () => {
    const s = pgStatement<"gid" | "status" | "owner">`UPDATE t SET status = ${"status"} WHERE gid = ${"gid"} AND (${"owner"} IS NULL OR owner = ${"owner"})`;
    expect(s.text).toBe("UPDATE t SET status = $1 WHERE gid = $2 AND ($3 IS NULL OR owner = $3)");
    expect(s.params({ gid: "g1", status: "succeed", owner: null })).toEqual(["succeed", "g1", null]);
  });

  it("puts literals in verbatim and gives them no parameter", () => {
    const s = pgStatement<"mask">`SELECT CASE WHEN (${"mask"} & ${literal(4)}) <> 0 THEN ${literal("'x'")} END`;
    expect(s.text).toBe("SELECT CASE WHEN ($1 & 4) <> 0 THEN 'x' END");
    expect(s.params({ mask: 5 })).toEqual([5]);
  });

  it("puts a parameter inside an expression with around(), numbered like any other", () => {
    const s = pgStatement<"a" | "t">`SELECT ${"a"}, ${around("t", (ref) => `to_timestamp(${ref}::float8 / 1000)`)}, ${around("a", (ref) => `${ref} + 1`)}`;
    expect(s.text).toBe("SELECT $1, to_timestamp($2::float8 / 1000), $1 + 1");
    expect(s.params({ a: 1, t: 2 })).toEqual([1, 2]);
  });

  it("keeps arrays as one parameter each", () => {
    const s = pgStatement<"ids">`SELECT * FROM unnest(${"ids"}::text[])`;
    expect(s.params({ ids: ["a", "b"] })).toEqual([["a", "b"]]);
  });
});
