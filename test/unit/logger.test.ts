import { describe, expect, it } from "vitest";
import { urlForLog } from "../../server/src/logger.ts";

describe("urlForLog", () => {
  it("drops user info and the query string of HTTP URLs", () => {
    expect(urlForLog("http://user:secret@127.0.0.1:8081/api/busi/TransOut?token=abc&x=1")).toBe("http://127.0.0.1:8081/api/busi/TransOut");
    expect(urlForLog("https://svc.example:443/a/b")).toBe("https://svc.example/a/b");
  });

  it("keeps gRPC targets readable and drops user info from them", () => {
    expect(urlForLog("127.0.0.1:58081/busi.Busi/TransOut")).toBe("127.0.0.1:58081/busi.Busi/TransOut");
    expect(urlForLog("discovery://user:pw@svc/busi.Busi/TransIn?x=1")).toBe("discovery://svc/busi.Busi/TransIn");
  });

  it("cuts what it cannot parse at the query string", () => {
    expect(urlForLog("http://[bad/path?secret=1")).toBe("http://[bad/path");
  });
});
