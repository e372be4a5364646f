import { describe, expect, it } from "vitest";
import { classifyHttpResult } from "../../server/src/driver/outcome.ts";

describe("classifyHttpResult (D9: status code, then dtm_result, then dtm's substring rule)", () => {
  it("a 200 whose dtm_result is SUCCESS is a success even when ONGOING or FAILURE appears elsewhere in the body", () => {
    for (const strict of [false, true]) {
      expect(classifyHttpResult(200, '{"dtm_result":"SUCCESS","note":"was ONGOING"}', strict)).toEqual({ kind: "success" });
      expect(classifyHttpResult(200, '{"dtm_result":"SUCCESS","message":"no FAILURE"}', strict)).toEqual({ kind: "success" });
      expect(classifyHttpResult(200, ' {"history":["ONGOING","FAILURE"],"dtm_result":"SUCCESS"}', strict)).toEqual({ kind: "success" });
    }
  });

  it("dtm_result ONGOING / FAILURE decides over words of the other outcome", () => {
    expect(classifyHttpResult(200, '{"dtm_result":"ONGOING","message":"no FAILURE yet"}', false)).toEqual({ kind: "ongoing" });
    expect(classifyHttpResult(200, '{"dtm_result":"FAILURE","message":"not ONGOING"}', false)).toMatchObject({ kind: "failure" });
  });

  it("the status code decides before dtm_result", () => {
    expect(classifyHttpResult(409, '{"dtm_result":"SUCCESS"}', false)).toMatchObject({ kind: "failure" });
    expect(classifyHttpResult(425, '{"dtm_result":"SUCCESS"}', false)).toEqual({ kind: "ongoing" });
    // SUCCESS stops the word rule but does not turn an HTTP error into a success.
    expect(classifyHttpResult(500, '{"dtm_result":"SUCCESS","x":"ONGOING"}', false)).toMatchObject({ kind: "error" });
  });

  it("without dtm_result, dtm's legacy word rule applies unless strict", () => {
    expect(classifyHttpResult(200, "still ONGOING", false)).toEqual({ kind: "ongoing" });
    expect(classifyHttpResult(200, "FAILURE: no money", false)).toMatchObject({ kind: "failure" });
    expect(classifyHttpResult(200, "still ONGOING", true)).toEqual({ kind: "success" });
    expect(classifyHttpResult(500, "FAILURE: no money", true)).toMatchObject({ kind: "error" });
    expect(classifyHttpResult(200, '{"dtm_result":"whatever","m":"ONGOING"}', false)).toEqual({ kind: "ongoing" });
  });
});

describe("what an outcome quotes of a branch's answer (docs/security.md#what-clients-see-of-branch-answers)", () => {
  const quiet = { strict: false, echoBodies: false };
  const echo = { strict: false, echoBodies: true };

  it("keeps the branch's own message of dtm's shapes, never the rest of the body", () => {
    expect(classifyHttpResult(409, '{"dtm_result":"FAILURE","message":"no money","trace":"at db.js:1"}', quiet)).toEqual({ kind: "failure", message: "no money" });
    expect(classifyHttpResult(409, '{"error":"account frozen","trace":"x"}', quiet)).toEqual({ kind: "failure", message: "account frozen" });
    expect(classifyHttpResult(200, '{"dtm_result":"FAILURE","message":"late"}', quiet)).toEqual({ kind: "failure", message: "late" });
    expect(classifyHttpResult(500, '{"message":"db down"}', quiet)).toEqual({ kind: "error", message: "http status 500: db down" });
  });

  it("drops a raw body unless echoBodies; says the branch answered FAILURE instead", () => {
    expect(classifyHttpResult(409, "Traceback: secret", quiet)).toEqual({ kind: "failure", message: "HTTP 409: the branch answered FAILURE" });
    expect(classifyHttpResult(200, "FAILURE: secret", quiet)).toEqual({ kind: "failure", message: "HTTP 200: the branch answered FAILURE" });
    expect(classifyHttpResult(502, "<html>secret</html>", quiet)).toEqual({ kind: "error", message: "http status 502 (body not shown)" });
    expect(classifyHttpResult(502, "", quiet)).toEqual({ kind: "error", message: "http status 502" });
    expect(classifyHttpResult(409, "Traceback: secret", echo)).toEqual({ kind: "failure", message: "Traceback: secret" });
    expect(classifyHttpResult(502, "<html>secret</html>", echo)).toEqual({ kind: "error", message: "http status 502: <html>secret</html>" });
    expect(classifyHttpResult(409, "x".repeat(600), echo)).toEqual({ kind: "failure", message: `${"x".repeat(512)}...` });
  });

  it("a 401 is a retryable error marked unauthenticated, whatever words its body holds", () => {
    for (const strict of [false, true]) {
      expect(classifyHttpResult(401, '{"message":"branch signature refused: no x-dtx-signature"}', strict)).toEqual({
        kind: "error", message: "http status 401: branch signature refused: no x-dtx-signature", unauthenticated: true,
      });
      expect(classifyHttpResult(401, "FAILURE", strict)).toMatchObject({ kind: "error", unauthenticated: true });
    }
  });
});
