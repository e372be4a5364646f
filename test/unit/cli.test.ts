/** The `dtx` command line (server/src/cli): argument parsing and the start warnings. */
import { describe, expect, it } from "vitest";
import { parseCliArgs } from "../../server/src/cli/args.ts";
import { branchUrlPolicyState, isLoopbackHost, startWarnings } from "../../server/src/cli/banner.ts";
import { parseConfig } from "../../server/src/config.ts";

describe("parseCliArgs", () => {
  it("no arguments, or `start`, starts with no config file", () => {
    expect(parseCliArgs([])).toEqual({ kind: "start", configFile: undefined });
    expect(parseCliArgs(["start"])).toEqual({ kind: "start", configFile: undefined });
  });

  it("--config FILE, -c FILE and --config=FILE name the file, before or after `start`", () => {
    for (const argv of [["start", "--config", "a.yml"], ["--config", "a.yml", "start"], ["-c", "a.yml"], ["start", "--config=a.yml"]]) {
      expect(parseCliArgs(argv)).toEqual({ kind: "start", configFile: "a.yml" });
    }
  });

  it("--help/-h and --version/-V win over everything else", () => {
    for (const argv of [["--help"], ["-h"], ["start", "--help"], ["help"]]) expect(parseCliArgs(argv)).toEqual({ kind: "help" });
    for (const argv of [["--version"], ["-V"], ["start", "-V"], ["version"]]) expect(parseCliArgs(argv)).toEqual({ kind: "version" });
  });

  it("an unknown word or a --config without a file is an error, never ignored", () => {
    expect(parseCliArgs(["--port", "1"])).toMatchObject({ kind: "error", message: 'unknown option "--port"' });
    expect(parseCliArgs(["stop"])).toMatchObject({ kind: "error", message: 'unknown command "stop"' });
    expect(parseCliArgs(["start", "start"])).toMatchObject({ kind: "error" });
    expect(parseCliArgs(["--config"])).toMatchObject({ kind: "error", message: "--config needs a file name" });
    expect(parseCliArgs(["-c", "--help"])).toMatchObject({ kind: "help" });
    expect(parseCliArgs(["--config="])).toMatchObject({ kind: "error" });
  });
});

describe("start warnings", () => {
  it("loopback hosts", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]", "::ffff:127.0.0.1"]) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ["0.0.0.0", "::", "10.0.0.5", "192.0.2.2", "example.com", "::ffff:10.0.0.1"]) expect(isLoopbackHost(h), h).toBe(false);
  });

  const token = { name: "ops", sha256: "a".repeat(64), roles: ["client", "admin"] };

  it("a non-loopback host with auth off and the branch URL policy open gets both warnings (the defaults)", () => {
    expect(startWarnings(parseConfig({})).map((w) => w.code)).toEqual(["AUTH_OFF_NON_LOOPBACK", "BRANCH_URLS_OPEN_NON_LOOPBACK"]);
    const [auth, urls] = startWarnings(parseConfig({ host: "0.0.0.0", httpPort: 8080 }));
    expect(auth!.message).toContain("host 0.0.0.0 (HTTP port 8080");
    expect(auth!.message).toContain("DTX_AUTH_TOKENS");
    expect(urls!.message).toContain("DTX_BRANCH_URLS_ALLOW");
  });

  it("each warning goes away with its setting; loopback has none", () => {
    expect(startWarnings(parseConfig({ auth: { tokens: [token] } })).map((w) => w.code)).toEqual(["BRANCH_URLS_OPEN_NON_LOOPBACK"]);
    expect(startWarnings(parseConfig({ branchUrls: { allow: ["http://10.0.0.0/8"] } })).map((w) => w.code)).toEqual(["AUTH_OFF_NON_LOOPBACK"]);
    expect(startWarnings(parseConfig({ auth: { tokens: [token] }, branchUrls: { allow: ["http://10.0.0.0/8"] } }))).toEqual([]);
    expect(startWarnings(parseConfig({ host: "127.0.0.1", branchUrls: { denyPrivate: true } }))).toEqual([]);
    expect(startWarnings(parseConfig({ host: "127.0.0.1", branchUrls: { allow: ["http://10.0.0.0/8"] } }))).toEqual([]);
  });

  it("the branch URL policy off is said on every host, with a pointer to the production checklist", () => {
    const [local] = startWarnings(parseConfig({ host: "127.0.0.1" }));
    expect(local).toMatchObject({ code: "BRANCH_URLS_OFF", level: "info" });
    expect(local!.message).toMatch(/^the branch URL policy is off: the coordinator calls any URL a client names/);
    expect(local!.message).toContain("docs/production-checklist.md");
    const [, open] = startWarnings(parseConfig({ host: "0.0.0.0" }));
    expect(open).toMatchObject({ code: "BRANCH_URLS_OPEN_NON_LOOPBACK", level: "warn" });
    expect(open!.message).toMatch(/^the branch URL policy is off and the API listens on host 0\.0\.0\.0/);
    expect(open!.message).toContain("open relay");
    expect(open!.message).toContain("docs/production-checklist.md");
    const [, partial] = startWarnings(parseConfig({ host: "0.0.0.0", branchUrls: { denyPrivate: true } }));
    expect(partial!.message).toMatch(/^the branch URL policy has no allow-list \(only private addresses are refused\)/);
    expect(partial!.message).not.toContain("DTX_BRANCH_URLS_DENY_PRIVATE");
  });

  it("the start line names the branch URL policy state", () => {
    expect(branchUrlPolicyState(parseConfig({}))).toBe("off");
    expect(branchUrlPolicyState(parseConfig({ branchUrls: { denyPrivate: true } }))).toBe("deny-private");
    expect(branchUrlPolicyState(parseConfig({ branchUrls: { allow: ["http://10.0.0.0/8"] } }))).toBe("allow-list");
    expect(branchUrlPolicyState(parseConfig({ branchUrls: { allow: ["http://10.0.0.0/8"], denyPrivate: true } }))).toBe("allow-list+deny-private");
  });
});
