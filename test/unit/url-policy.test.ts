// The branch URL policy's matcher (docs/security.md#branch-url-policy): pure functions, plus the call-time address
// check with a fake resolver.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CoordinatorError } from "../../server/src/core/errors.ts";
import {
  isAllowedUrl, isPrivateAddress, matchesPattern, parseCallUrl, parseUrlPattern, UrlPolicy,
} from "../../server/src/driver/url-policy.ts";

// No "??--" labels: IDNA reserves them (an "xn--" label must be valid punycode), and the URL
// parser refuses an invalid one, as the pattern parser then does (seed 287654320 drew "xn--a").
const label = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9]$/).filter((l) => l.slice(2, 4) !== "--");
const hostArb = fc.oneof(fc.array(label, { minLength: 1, maxLength: 3 }).map((ls) => [...ls, "example"].join(".")), fc.ipV4());
const segment = fc.stringMatching(/^[A-Za-z0-9_.~-]{1,8}$/).filter((s) => s !== "." && s !== "..");
const pathArb = fc.array(segment, { maxLength: 4 }).map((ss) => ss.map((s) => `/${s}`).join(""));
const schemeArb = fc.constantFrom("http", "https");
const portArb = fc.integer({ min: 1, max: 65535 });

describe("parseUrlPattern", () => {
  it("fills in default ports, lower-cases the host and drops a trailing slash", () => {
    expect(parseUrlPattern("http://Busi.Example/api/")).toEqual({ scheme: "http", host: "busi.example", port: 80, path: "/api" });
    expect(parseUrlPattern("https://busi.example")).toEqual({ scheme: "https", host: "busi.example", port: 443, path: "" });
    expect(parseUrlPattern("grpc://[::1]:58081/busi.Busi")).toEqual({ scheme: "grpc", host: "[::1]", port: 58081, path: "/busi.Busi" });
  });

  it.each(["busi:80", "ftp://busi", "grpc://busi", "http://0x7f.1/", "http://127.1/", "http://2130706433/", "http://[::ffff:127.0.0.1]/", "http://a@b/", "http://busi:0/", "http://busi/x?y", "http://xn--a.example/"])(
    "refuses %s",
    (text) => expect(() => parseUrlPattern(text)).toThrow(),
  );
});

describe("matching (property)", () => {
  it("a URL built from a pattern plus any path under its prefix is allowed", () => {
    fc.assert(
      fc.property(schemeArb, hostArb, fc.option(portArb, { nil: undefined }), pathArb, pathArb, fc.boolean(), (scheme, host, port, prefix, rest, query) => {
        const pattern = `${scheme}://${host}${port === undefined ? "" : `:${port}`}${prefix}`;
        const url = `${scheme}://${host}${port === undefined ? "" : `:${port}`}${prefix}${rest}${query ? "?gid=1&op=action" : ""}`;
        expect(isAllowedUrl([parseUrlPattern(pattern)], url)).toBe(true);
      }),
    );
  });

  it("changing the scheme, host, port or leaving the prefix is refused", () => {
    fc.assert(
      fc.property(schemeArb, hostArb, portArb, pathArb, fc.constantFrom("scheme", "host", "port", "path"), (scheme, host, port, prefix, change) => {
        const patterns = [parseUrlPattern(`${scheme}://${host}:${port}${prefix}`)];
        const other = {
          scheme: change === "scheme" ? (scheme === "http" ? "https" : "http") : scheme,
          host: change === "host" ? `x${host}.other` : host,
          port: change === "port" ? (port === 65535 ? 1 : port + 1) : port,
          path: change === "path" ? `${prefix}x/y` : `${prefix}/y`,
        };
        const url = `${other.scheme}://${other.host}:${other.port}${other.path}`;
        const defaultPort = other.scheme === "http" ? 80 : 443;
        // http://h:80 and http://h are the same URL; skip the one case where the change is a no-op.
        fc.pre(!(change === "scheme" && port === defaultPort));
        expect(isAllowedUrl(patterns, url)).toBe(false);
      }),
    );
  });

  it("matches the path prefix on a segment boundary only", () => {
    const p = [parseUrlPattern("http://busi:8081/api/busi")];
    expect(isAllowedUrl(p, "http://busi:8081/api/busi")).toBe(true);
    expect(isAllowedUrl(p, "http://busi:8081/api/busi/TransOut?gid=1")).toBe(true);
    expect(isAllowedUrl(p, "http://busi:8081/api/busix/TransOut")).toBe(false);
    expect(isAllowedUrl(p, "http://busi:8081/api/busi/../../admin")).toBe(false);
    expect(isAllowedUrl(p, "http://busi:8081/api/busi%2F..%2Fadmin")).toBe(false);
    expect(isAllowedUrl(p, "http://BUSI:8081/api/busi/x")).toBe(true);
    expect(isAllowedUrl(p, "http://busi/api/busi/x")).toBe(false);
  });

  it("matches gRPC targets against grpc:// patterns only", () => {
    const p = [parseUrlPattern("grpc://busi:58081/busi.Busi")];
    expect(isAllowedUrl(p, "busi:58081/busi.Busi/TransOut")).toBe(true);
    expect(isAllowedUrl(p, "busi:58082/busi.Busi/TransOut")).toBe(false);
    expect(isAllowedUrl(p, "busi:58081/other.Svc/TransOut")).toBe(false);
    expect(isAllowedUrl(p, "http://busi:58081/busi.Busi/TransOut")).toBe(false);
    expect(isAllowedUrl([parseUrlPattern("http://busi:58081/")], "busi:58081/busi.Busi/TransOut")).toBe(false);
  });

  it("no patterns allows everything", () => {
    expect(isAllowedUrl([], "http://169.254.169.254/latest/meta-data")).toBe(true);
  });
});

/** Ways to write 127.0.0.1 (or the busi host) that a parser or resolver may turn into it. */
const ENCODINGS = [
  "2130706433", "0x7f.1", "127.1", "0x7f000001", "017700000001", "0177.0.0.1", "127.000.000.001", "127.0.1",
  "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[0:0:0:0:0:ffff:127.0.0.1]", "%31%32%37.0.0.1", "127.0.0.1.",
  "①②⑦.0.0.1", "127。0。0。1", "127.0.0.1\t", "0", "0.0.0.0", "[::1]", "localhost", "[::127.0.0.1]",
];

describe("odd host forms under an allowlist", () => {
  const patterns = [parseUrlPattern("http://127.0.0.1:8081/api")];
  it.each(ENCODINGS)("refuses %j", (host) => {
    expect(isAllowedUrl(patterns, `http://${host}:8081/api/x`)).toBe(false);
  });

  it("still allows the canonical form, and user information cannot change the host", () => {
    expect(isAllowedUrl(patterns, "http://127.0.0.1:8081/api/x")).toBe(true);
    expect(isAllowedUrl(patterns, "http://127.0.0.1:8081@evil.example/api/x")).toBe(false);
    expect(isAllowedUrl(patterns, "http://evil.example\\@127.0.0.1:8081/api/x")).toBe(false);
  });

  it("marks non-canonical gRPC hosts", () => {
    expect(parseCallUrl("2130706433:58081/busi.Busi/X")?.canonical).toBe(false);
    expect(parseCallUrl("127.0.0.1:58081/busi.Busi/X")?.canonical).toBe(true);
    expect(matchesPattern(parseUrlPattern("grpc://127.0.0.1:58081"), parseCallUrl("0x7f.1:58081/busi.Busi/X")!)).toBe(false);
  });
});

describe("isPrivateAddress", () => {
  it.each([
    "127.0.0.1", "127.255.0.9", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1", "100.127.255.255",
    "169.254.169.254", "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "::", "fc00::1", "fd00:ec2::254", "fe80::1",
    "::ffff:127.0.0.1", "::ffff:7f00:1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "64:ff9b::7f00:1", "2002:7f00:1::", "[::1]", "fe80::1%eth0", "not-an-ip",
  ])("%s is not public", (ip) => expect(isPrivateAddress(ip)).toBe(true));

  it.each(["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "169.255.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])("%s is public", (ip) =>
    expect(isPrivateAddress(ip)).toBe(false));
});

describe("UrlPolicy", () => {
  const fakeDns = (table: Record<string, string[]>) => (host: string): Promise<string[]> =>
    table[host] ? Promise.resolve(table[host]) : Promise.reject(new Error(`ENOTFOUND ${host}`));

  it("is inactive by default and allows everything", async () => {
    const policy = new UrlPolicy({ allow: [], denyPrivate: false });
    expect(policy.active).toBe(false);
    expect(() => policy.check("http://127.0.0.1/x", "url")).not.toThrow();
    expect(await policy.callRefusal("http://169.254.169.254/")).toBeUndefined();
  });

  it("throws URL_NOT_ALLOWED naming the field", () => {
    const policy = new UrlPolicy({ allow: ["http://busi:8081"], denyPrivate: false });
    try {
      policy.check("http://evil:8081/x", "steps[0].action");
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(CoordinatorError);
      expect((error as CoordinatorError).code).toBe("URL_NOT_ALLOWED");
      expect((error as CoordinatorError).message).toContain("steps[0].action");
    }
    expect(() => policy.check("", "steps[0].compensate")).not.toThrow();
  });

  it("denyPrivate refuses literal and resolved private addresses unless the allowlist names the address", async () => {
    const dns = fakeDns({ "public.example": ["93.184.215.14"], "rebind.example": ["93.184.215.14", "127.0.0.1"], "meta.example": ["169.254.169.254"] });
    const policy = new UrlPolicy({ allow: [], denyPrivate: true }, dns);
    expect(policy.refusal("http://127.0.0.1:8081/x")).toMatch(/non-public address 127\.0\.0\.1/);
    expect(policy.refusal("http://2130706433:8081/x")).toMatch(/non-public/);
    expect(policy.refusal("http://[::ffff:127.0.0.1]/x")).toMatch(/non-public/);
    expect(policy.refusal("http://rebind.example/x")).toBeUndefined(); // a name is only resolved at call time
    expect(await policy.callRefusal("http://public.example/x")).toBeUndefined();
    expect(await policy.callRefusal("http://rebind.example/x")).toMatch(/127\.0\.0\.1/);
    expect(await policy.callRefusal("meta.example:443/svc.S/M")).toMatch(/169\.254\.169\.254/);
    expect(await policy.callRefusal("http://missing.example/x")).toMatch(/cannot resolve/);

    const named = new UrlPolicy({ allow: ["http://127.0.0.1:8081", "http://rebind.example"], denyPrivate: true }, dns);
    expect(named.refusal("http://127.0.0.1:8081/x")).toBeUndefined();
    expect(await named.callRefusal("http://127.0.0.1:8081/x")).toBeUndefined();
    // An allowlisted name does not vouch for the addresses it resolves to.
    expect(await named.callRefusal("http://rebind.example/x")).toMatch(/non-public address 127\.0\.0\.1/);
  });

  it("connectAddresses answers what the clients may connect to: the checked resolution, a literal as written", async () => {
    const dns = fakeDns({ "public.example": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"], "rebind.example": ["93.184.215.14", "127.0.0.1"], "empty.example": [] });
    const guarded = new UrlPolicy({ allow: [], denyPrivate: true }, dns);
    expect(await guarded.connectAddresses("public.example")).toEqual(["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]);
    await expect(guarded.connectAddresses("rebind.example")).rejects.toThrow(/non-public address 127\.0\.0\.1 when connecting/);
    await expect(guarded.connectAddresses("empty.example")).rejects.toThrow(/resolves to no address/);
    await expect(guarded.connectAddresses("missing.example")).rejects.toThrow(/cannot resolve missing\.example/);
    expect(await guarded.connectAddresses("[::1]")).toEqual(["::1"]);
    // Without denyPrivate the policy's resolver still decides where the clients connect.
    const allowOnly = new UrlPolicy({ allow: ["http://rebind.example"], denyPrivate: false }, dns);
    expect(await allowOnly.connectAddresses("rebind.example")).toEqual(["93.184.215.14", "127.0.0.1"]);
  });
});
