import { describe, expect, it } from "vitest";
import { clip, describeValue } from "../../server/src/core/echo.ts";
import { msgDelay, msgDelayProblem } from "../../server/src/core/msg.ts";
import { decodeOptions } from "../../server/src/core/options.ts";
import { MAX_SECONDS, renderTime } from "../../server/src/core/time-limits.ts";
import { redactUrls } from "../../server/src/logger.ts";

/** The pure helpers behind docs/input-limits.md. */

function nested(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

describe("describeValue / clip", () => {
  it("describes a value nested 100,000 deep without recursion", () => {
    expect(describeValue(nested(100_000))).toBe("an array of 1 item");
    expect(describeValue({ a: nested(100_000) })).toBe("an object");
  });

  it("quotes strings clipped, and never splits a surrogate pair", () => {
    expect(describeValue("x".repeat(10_000)).length).toBeLessThan(140);
    const cut = clip(`${"a".repeat(99)}\u{1F600}tail`, 100);
    expect(cut.startsWith("a".repeat(99))).toBe(true);
    expect(cut).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
  });
});

describe("times", () => {
  it("renders any number as an RFC 3339 time with a four-digit year, or null", () => {
    expect(renderTime(1e300)).toBe("9999-12-31T23:59:59.999Z");
    expect(renderTime(-Infinity)).toBe("0000-01-01T00:00:00.000Z");
    expect(renderTime(Number.NaN)).toBeNull();
    expect(renderTime(null)).toBeNull();
    expect(renderTime(0)).toBe("1970-01-01T00:00:00.000Z");
  });

  it("checks a msg delay on requests and clamps a stored one", () => {
    expect(msgDelayProblem('{"delay":1e13}')).toMatch(/custom_data.delay/);
    expect(msgDelayProblem('{"DELAY":-1}')).toMatch(/custom_data.delay/);
    expect(msgDelayProblem('{"delay":5}')).toBeUndefined();
    expect(msgDelayProblem('{"delay":"1e13"}')).toBeUndefined(); // not a number: ignored, as before
    expect(msgDelay('{"delay":1e13}')).toBe(MAX_SECONDS * 1000);
    expect(msgDelay('{"delay":2.5}')).toBe(2500);
  });

  it("clamps stored options into the ranges a request may set", () => {
    const o = decodeOptions('{"timeout_to_fail":1e308,"retry_interval":1e300,"request_timeout":1e9,"retry_limit":1e300}');
    expect(o.timeoutToFail).toBe(MAX_SECONDS * 1000);
    expect(o.retryInterval).toBe(MAX_SECONDS * 1000);
    expect(o.requestTimeout).toBe(2_147_483_000);
    expect(o.retryLimit).toBe(1_000_000);
  });
});

describe("redactUrls", () => {
  it("drops user info and query strings of every URL in a text", () => {
    const text = "GET http://u:pw@h:1/x?api_key=K: connect ECONNREFUSED; then https://tok@svc/y?t=1 and grpc://a:b@g:9/p.S/M";
    const out = redactUrls(text);
    expect(out).toBe("GET http://h:1/x: connect ECONNREFUSED; then https://svc/y and grpc://g:9/p.S/M");
  });

  it("drops user info it finds outside a parseable URL", () => {
    expect(redactUrls('invalid url "//user:pw@host/x"')).not.toContain("pw");
  });
});
