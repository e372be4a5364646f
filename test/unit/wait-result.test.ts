import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GLOBAL_STATUSES, isFinal, TRANS_TYPES } from "../../server/src/core/types.ts";
import type { WaitRequest } from "../../server/src/core/wait-result.ts";
import { waitVerdict } from "../../server/src/core/wait-result.ts";

const REQUESTS: readonly WaitRequest[] = ["submit", "abort"];
const anyType = fc.constantFrom(...TRANS_TYPES);
const anyStatus = fc.constantFrom(...GLOBAL_STATUSES);
const anyRequest = fc.constantFrom(...REQUESTS);

describe("waitVerdict (D11: a wait_result answer tells the truth)", () => {
  it("is ONGOING for every unfinished status, whatever the type and the request", () => {
    fc.assert(
      fc.property(anyType, anyRequest, anyStatus, (type, request, status) => {
        fc.pre(!isFinal(status));
        expect(waitVerdict(type, request, status)).toBe("ONGOING");
      }),
    );
  });

  it("never answers ONGOING for a final status, and never SUCCESS or FAILURE for an unfinished one", () => {
    fc.assert(
      fc.property(anyType, anyRequest, anyStatus, (type, request, status) => {
        expect(waitVerdict(type, request, status) === "ONGOING").toBe(!isFinal(status));
      }),
    );
  });

  it("a submit succeeds only on succeed and fails only on failed", () => {
    fc.assert(
      fc.property(anyType, anyStatus, (type, status) => {
        const verdict = waitVerdict(type, "submit", status);
        expect(verdict === "SUCCESS").toBe(status === "succeed");
        expect(verdict === "FAILURE").toBe(status === "failed");
      }),
    );
  });

  it("an abort succeeds once the trans rolled back (failed), as dtm answers, and fails only if it committed", () => {
    fc.assert(
      fc.property(anyType, anyStatus, (type, status) => {
        const verdict = waitVerdict(type, "abort", status);
        expect(verdict === "SUCCESS").toBe(status === "failed");
        expect(verdict === "FAILURE").toBe(status === "succeed");
      }),
    );
  });

  it("does not depend on the transaction type", () => {
    fc.assert(
      fc.property(anyType, anyType, anyRequest, anyStatus, (a, b, request, status) => {
        expect(waitVerdict(a, request, status)).toBe(waitVerdict(b, request, status));
      }),
    );
  });

  it("covers every type x status x request (the whole table)", () => {
    const table: string[] = [];
    for (const type of TRANS_TYPES) for (const request of REQUESTS) for (const status of GLOBAL_STATUSES) table.push(`${type} ${request} ${status} ${waitVerdict(type, request, status)}`);
    expect(table.filter((row) => row.startsWith("saga "))).toEqual([
      "saga submit prepared ONGOING", "saga submit submitted ONGOING", "saga submit aborting ONGOING", "saga submit succeed SUCCESS", "saga submit failed FAILURE",
      "saga abort prepared ONGOING", "saga abort submitted ONGOING", "saga abort aborting ONGOING", "saga abort succeed FAILURE", "saga abort failed SUCCESS",
    ]);
    expect(table).toHaveLength(TRANS_TYPES.length * REQUESTS.length * GLOBAL_STATUSES.length);
  });
});
