import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { ErrorSpec } from "../../server/src/core/errors.ts";
import { ERROR_CATALOGUE, WIRE_RESULT_CODES } from "../../server/src/core/errors.ts";
import { AUTH_ERROR_CODES } from "../../server/src/api/auth.ts";

/**
 * Drift gate between the error catalogue and docs/errors.md (as fastify does for its error docs):
 * every code a client can see has a `## CODE` section stating its HTTP status and gRPC code, and
 * the doc has no section for a code that no longer exists.
 */

const DOC_PATH = new URL("../../docs/errors.md", import.meta.url);
const doc = readFileSync(DOC_PATH, "utf8");

const GRPC_NAMES: Record<number, string> = {
  0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND",
  6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION",
  10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE",
  15: "DATA_LOSS", 16: "UNAUTHENTICATED",
};

const documented: Record<string, ErrorSpec> = { ...ERROR_CATALOGUE, ...WIRE_RESULT_CODES, ...AUTH_ERROR_CODES };

interface Section {
  heading: string;
  level: number;
  body: string;
}

/** Splits the doc into sections at every heading below the title; fenced code is not parsed. */
function sections(markdown: string): Section[] {
  const out: Section[] = [];
  let current: Section | undefined;
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (line.startsWith("```")) fenced = !fenced;
    const m = fenced ? null : /^(#{2,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (m) {
      current = { heading: m[2] ?? "", level: (m[1] ?? "").length, body: "" };
      out.push(current);
    } else if (current) {
      current.body += `${line}\n`;
    }
  }
  return out;
}

const docSections = sections(doc);

describe("docs/errors.md", () => {
  it("has exactly one level-1 title", () => {
    expect(doc.split("\n").filter((l) => /^#\s/.test(l))).toHaveLength(1);
  });

  it("has a `## CODE` section for every code in the catalogue", () => {
    const headings = docSections.filter((s) => s.level === 2).map((s) => s.heading);
    const missing = Object.keys(documented).filter((code) => !headings.includes(code));
    expect(missing, "codes in server/src/core/errors.ts without a section in docs/errors.md").toEqual([]);
  });

  it("has no heading that is not a catalogue code, and none twice", () => {
    const headings = docSections.map((s) => `${"#".repeat(s.level)} ${s.heading}`);
    const stray = docSections.filter((s) => s.level !== 2 || !(s.heading in documented)).map((s) => `${"#".repeat(s.level)} ${s.heading}`);
    expect(stray, "headings in docs/errors.md that are not catalogue codes").toEqual([]);
    expect(new Set(headings).size).toBe(headings.length);
  });

  it("states each code's HTTP status and gRPC code as the catalogue does", () => {
    const wrong: string[] = [];
    for (const s of docSections) {
      const spec = documented[s.heading];
      if (!spec) continue;
      const http = /^- HTTP status: \*\*(\d{3})\*\*$/m.exec(s.body)?.[1];
      const grpc = /^- gRPC code: \*\*(\d+) ([A-Z_]+)\*\*$/m.exec(s.body);
      if (http !== String(spec.httpStatus)) wrong.push(`${s.heading}: HTTP ${http ?? "missing"}, catalogue ${spec.httpStatus}`);
      if (!grpc || grpc[1] !== String(spec.grpcCode) || grpc[2] !== GRPC_NAMES[spec.grpcCode]) {
        wrong.push(`${s.heading}: gRPC ${grpc ? `${grpc[1]} ${grpc[2]}` : "missing"}, catalogue ${spec.grpcCode} ${GRPC_NAMES[spec.grpcCode] ?? "?"}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("says when each error happens and how to fix it", () => {
    const thin = docSections
      .filter((s) => !/\*\*When:\*\*\s+\S/.test(s.body) || !/\*\*Fix:\*\*\s+\S/.test(s.body))
      .map((s) => s.heading);
    expect(thin, "sections without a **When:** and a **Fix:** paragraph").toEqual([]);
  });

  it("uses only HTTP statuses a client can act on: 4xx for client mistakes, 5xx only for server faults", () => {
    for (const [code, spec] of Object.entries(documented)) {
      expect(spec.httpStatus, code).toBeGreaterThanOrEqual(400);
      expect(spec.httpStatus, code).toBeLessThan(600);
      // 503s are the server saying "not now": the store is unreachable, or the overload caps are full.
      if (spec.httpStatus >= 500) expect(["INTERNAL", "STORE_UNAVAILABLE", "OVERLOADED"], code).toContain(code);
    }
  });
});
