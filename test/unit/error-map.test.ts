import { status } from "@grpc/grpc-js";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { toGrpcError } from "../../server/src/api/grpc/error-map.ts";
import { toErrorReply } from "../../server/src/api/http/error-map.ts";
import type { ErrorCode } from "../../server/src/core/errors.ts";
import { CoordinatorError, ERROR_CATALOGUE, failure, ongoing, WIRE_RESULT_CODES } from "../../server/src/core/errors.ts";

const silent = pino({ level: "silent" });
const codes = Object.keys(ERROR_CATALOGUE) as ErrorCode[];

/**
 * dtm's clients read 409 / gRPC ABORTED as FAILURE and 425 / FAILED_PRECONDITION as ONGOING, from
 * the status alone; an HTTP client that looks at the body looks for `dtm_result`. So the statuses
 * and the body must agree for every code, not only for the ones a route happens to raise today.
 */
describe("409 and 425 mean dtm's FAILURE and ONGOING, for every code", () => {
  it("every code answered 409 carries dtm_result FAILURE in its HTTP body", () => {
    const conflicts = codes.filter((code) => ERROR_CATALOGUE[code].httpStatus === 409);
    expect(conflicts).toEqual(expect.arrayContaining(["BRANCH_CONFLICT", "TOPIC_SUBSCRIBER_EXISTS", "TRANS_NOT_PREPARED"]));
    for (const code of conflicts) {
      const reply = toErrorReply(new CoordinatorError(code, `x ${code}`), silent);
      expect(reply, code).toEqual({ status: 409, body: { dtm_result: "FAILURE", message: `x ${code}`, code } });
    }
    expect(toErrorReply(failure("cannot"), silent)).toEqual({ status: 409, body: { dtm_result: "FAILURE", message: "cannot FAILURE", code: "FAILURE" } });
  });

  it("a 425 carries dtm_result ONGOING; no other status carries a dtm_result", () => {
    expect(toErrorReply(ongoing("later"), silent)).toEqual({ status: 425, body: { dtm_result: "ONGOING", message: "later", code: "ONGOING" } });
    const statusOf = (c: ErrorCode): number => ERROR_CATALOGUE[c].httpStatus;
    for (const code of codes.filter((c) => statusOf(c) !== 409 && statusOf(c) !== 425)) {
      expect(toErrorReply(new CoordinatorError(code, "x"), silent).body, code).not.toHaveProperty("dtm_result");
    }
  });

  it("gRPC: ABORTED exactly for the 409 codes and FAILED_PRECONDITION exactly for the 425 codes", () => {
    const all = { ...ERROR_CATALOGUE, ...WIRE_RESULT_CODES };
    for (const [code, spec] of Object.entries(all)) {
      expect(spec.grpcCode === status.ABORTED, code).toBe(spec.httpStatus === 409);
      expect(spec.grpcCode === status.FAILED_PRECONDITION, code).toBe(spec.httpStatus === 425);
    }
    for (const code of codes.filter((c) => ERROR_CATALOGUE[c].httpStatus === 409)) {
      const e = toGrpcError(new CoordinatorError(code, "x"), silent, "RegisterBranch");
      expect(e.code, code).toBe(status.ABORTED);
      expect(e.metadata?.get("dtx-code"), code).toEqual([code]);
    }
    expect(toGrpcError(ongoing("later"), silent, "Submit").code).toBe(status.FAILED_PRECONDITION);
  });
});
