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
