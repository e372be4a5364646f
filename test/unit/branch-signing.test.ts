/**
 * Branch signing, the parts below the wire: the `branchSigning` config, the key ring (key file,
 * secret files, reload keeping the last good set), and the coordinator's signer agreeing with the
 * SDK's verifier, including the skew bounds on an injected clock. The end-to-end behaviour is in
 * test/e2e/branch-signing.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig, parseConfig, redactConfig } from "../../server/src/config.ts";
import { BranchSigner, canonicalRequest, grpcSignatureMetadata, signWith } from "../../server/src/driver/branch-signer.ts";
import { loadSigningKeys, SigningKeyRing } from "../../server/src/driver/signing-keys.ts";
import { createLogger } from "../../server/src/logger.ts";
import { BranchSignatureVerifier, canonicalBranchRequest, verifyBranchSignature } from "../../sdk/src/index.ts";

const SECRET = "0123456789abcdef0123456789abcdef-secret";
const OTHER = "fedcba9876543210fedcba9876543210-other!";
const dir = mkdtempSync(join(tmpdir(), "dtx-signing-unit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function configError(input: unknown): string {
  try {
    parseConfig(input);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("expected a config error");
}

describe("branchSigning config", () => {
  it("is off by default; inline keys name their active key; a key file comes from DTX_BRANCH_SIGNING_KEYS_FILE", () => {
    expect(parseConfig({}).branchSigning).toEqual({ keys: [], activeKeyId: "", keysFile: "", watchInterval: 2 });
    const inline = parseConfig({ branchSigning: { activeKeyId: "k1", keys: [{ id: "k1", secret: SECRET }, { id: "k0", secretFile: "/run/k0" }] } });
    expect(inline.branchSigning.keys.map((k) => k.id)).toEqual(["k1", "k0"]);
    expect(loadConfig({ DTX_BRANCH_SIGNING_KEYS_FILE: "/run/keys.json", DTX_BRANCH_SIGNING_WATCH_INTERVAL: "0.5" }, []).branchSigning)
      .toMatchObject({ keysFile: "/run/keys.json", watchInterval: 0.5 });
    const fromEnv = loadConfig({ DTX_BRANCH_SIGNING_KEYS: JSON.stringify([{ id: "k1", secret: SECRET }]), DTX_BRANCH_SIGNING_ACTIVE_KEY_ID: "k1" }, []);
    expect(fromEnv.branchSigning.activeKeyId).toBe("k1");
  });

  it("refuses a bad key set with a message naming the key, never the secret", () => {
    expect(configError({ branchSigning: { activeKeyId: "k2", keys: [{ id: "k1", secret: SECRET }] } })).toContain("branchSigning.activeKeyId: names no key");
    expect(configError({ branchSigning: { keysFile: "/x.json", keys: [{ id: "k1", secret: SECRET }], activeKeyId: "k1" } })).toContain("give either keysFile");
    expect(configError({ branchSigning: { activeKeyId: "k1", keys: [{ id: "k1", secret: SECRET }, { id: "k1", secret: OTHER }] } })).toContain('duplicate key id "k1"');
    expect(configError({ branchSigning: { activeKeyId: "k1", keys: [{ id: "k1", secret: SECRET, secretFile: "/x" }] } })).toContain("exactly one of secret and secretFile");
    expect(configError({ branchSigning: { activeKeyId: "a b", keys: [{ id: "a b", secret: SECRET }] } })).toContain("letters, digits");
    const short = configError({ branchSigning: { activeKeyId: "k1", keys: [{ id: "k1", secret: "too-short-secret" }] } });
    expect(short).toContain("at least 32 characters");
    expect(short).not.toContain("too-short-secret");
  });

  it("the logged config redacts inline secrets", () => {
    const config = parseConfig({ branchSigning: { activeKeyId: "k1", keys: [{ id: "k1", secret: SECRET }] } });
    expect(JSON.stringify(redactConfig(config))).not.toContain(SECRET);
    expect(redactConfig(config)["branchSigning"]).toMatchObject({ keys: [{ id: "k1", secret: "***" }] });
  });
});

describe("signing keys", () => {
  const base = { keys: [], activeKeyId: "", watchInterval: 60 };

  it("reads the active key from a key file, its secret inline or from a secret file (trimmed)", () => {
    const secretFile = file("k2.secret", `${OTHER}\n`);
    const keysFile = file("keys.json", JSON.stringify({ activeKeyId: "k2", keys: [{ id: "k1", secret: SECRET }, { id: "k2", secretFile }] }));
    const loaded = loadSigningKeys({ ...base, keysFile });
    expect(loaded.active).toEqual({ id: "k2", secret: Buffer.from(OTHER) });
    expect(loaded.files).toEqual([keysFile, secretFile]);
  });

  it("a broken key file is refused without quoting it", () => {
    const broken = file("broken.json", `{"activeKeyId":"k1","keys":[{"id":"k1","secret":"${SECRET}"`);
    expect(() => loadSigningKeys({ ...base, keysFile: broken })).toThrow(/is not valid JSON$/);
    const shortSecret = file("short.secret", "short\n");
    const keysFile = file("short.json", JSON.stringify({ activeKeyId: "k1", keys: [{ id: "k1", secretFile: shortSecret }] }));
    expect(() => loadSigningKeys({ ...base, keysFile })).toThrow(/shorter than 32 characters/);
    try {
      loadSigningKeys({ ...base, keysFile: broken });
    } catch (error) {
      expect((error as Error).message).not.toContain(SECRET);
    }
  });

  it("reload() takes a new active key, and keeps the last good one (logging an error) when the file breaks", () => {
    const keysFile = file("ring.json", JSON.stringify({ activeKeyId: "k1", keys: [{ id: "k1", secret: SECRET }] }));
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _e, done) => { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done(); } });
    const ring = new SigningKeyRing({ ...base, keysFile }, createLogger("info", sink));
    try {
      writeFileSync(keysFile, JSON.stringify({ activeKeyId: "k2", keys: [{ id: "k1", secret: SECRET }, { id: "k2", secret: OTHER }] }));
      expect(ring.reload()).toBe(true);
      expect(ring.active.id).toBe("k2");
      writeFileSync(keysFile, "{");
      expect(ring.reload()).toBe(false);
      expect(ring.active).toEqual({ id: "k2", secret: Buffer.from(OTHER) });
      expect(lines.map((l) => [l["level"], l["msg"], l["activeKeyId"]])).toEqual([
        [30, "branch signing keys reloaded", "k2"],
        [50, "branch signing keys not reloaded; still signing with the previous key", "k2"],
      ]);
      expect(JSON.stringify(lines)).not.toContain(OTHER);
    } finally {
      ring.close();
    }
  });
});

describe("the coordinator's signature and the SDK's verifier", () => {
  const T = 1_765_000_000; // seconds
  const signer = new BranchSigner({ active: { id: "k1", secret: Buffer.from(SECRET) } }, () => T * 1000 + 999);
  const keys = [{ id: "k0", secret: OTHER }, { id: "k1", secret: SECRET }];
  const at = (seconds: number) => ({ keys, now: () => seconds * 1000 });
  const req = { method: "POST", pathAndQuery: "/api/TransOut?gid=g1&trans_type=saga&branch_id=01&op=action", body: '{"amount":30}' };

  it("both sides build the same canonical string", () => {
    for (const body of ["", '{"amount":30}', new Uint8Array([0, 255, 10])]) {
      expect(canonicalRequest(T, "post", req.pathAndQuery, body)).toBe(canonicalBranchRequest(T, "POST", req.pathAndQuery, body));
    }
    expect(canonicalRequest(T, "GET", "/x?a=1", "")).toBe(`v1\n${T}\nGET\n/x?a=1\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855`);
  });

  it("a signature verifies within the skew either way (300 s by default) and not one second beyond", () => {
    const signature = signer.sign(req.method, req.pathAndQuery, req.body);
    expect(signature).toMatch(new RegExp(`^v1,kid=k1,t=${T},sig=[0-9a-f]{64}$`));
    for (const now of [T, T + 300, T - 300]) expect(verifyBranchSignature({ ...req, signature }, at(now)), String(now)).toEqual({ keyId: "k1" });
    for (const now of [T + 301, T - 301]) expect(() => verifyBranchSignature({ ...req, signature }, at(now)), String(now)).toThrow(/more than 300 s from now/);
    expect(() => verifyBranchSignature({ ...req, signature }, { ...at(T + 30), maxSkewSeconds: 10 })).toThrow(/more than 10 s/);
  });

  it("any change to the method, path, query or body, a wrong secret, an unknown key or a malformed header is refused as UNAUTHENTICATED", () => {
    const signature = signer.sign(req.method, req.pathAndQuery, req.body);
    const refused = (r: Partial<typeof req> & { signature?: string | undefined }, options = at(T)): string => {
      try {
        verifyBranchSignature({ ...req, signature, ...r }, options);
      } catch (error) {
        expect(error).toMatchObject({ code: "UNAUTHENTICATED" });
        return (error as Error).message;
      }
      throw new Error("verified");
    };
    expect(refused({ method: "GET" })).toContain("does not match");
    expect(refused({ pathAndQuery: req.pathAndQuery.replace("branch_id=01", "branch_id=02") })).toContain("does not match");
    expect(refused({ body: '{"amount":3000}' })).toContain("does not match");
    expect(refused({}, { keys: [{ id: "k1", secret: OTHER }], now: () => T * 1000 })).toContain("does not match");
    expect(refused({}, { keys: [{ id: "k2", secret: SECRET }], now: () => T * 1000 })).toContain('unknown key id "k1"');
    expect(refused({ signature: undefined })).toBe("branch signature refused: no x-dtx-signature");
    expect(refused({ signature: signature.replace("v1", "v2") })).toContain("is not v1,kid=");
    expect(refused({ signature: `${signature}0` })).toContain("is not v1,kid=");
  });

  it("the verifier object takes new keys at run time; HTTP headers and gRPC metadata carry the same value", () => {
    const verifier = new BranchSignatureVerifier({ keys: [{ id: "k0", secret: OTHER }], now: () => T * 1000 });
    const headers: Record<string, string> = { "X-Dtx-Signature": "forged by a branch header", "content-type": "application/json" };
    signWith(signer, headers, "POST", req.pathAndQuery, req.body);
    expect(Object.keys(headers)).toEqual(["content-type", "x-dtx-signature"]);
    const http = { method: "POST", url: req.pathAndQuery, headers, body: Buffer.from(req.body) };
    expect(() => verifier.verifyHttp(http)).toThrow(/unknown key id/);
    verifier.setKeys(keys);
    expect(verifier.verifyHttp(http)).toEqual({ keyId: "k1" });

    const message = new Uint8Array([8, 1]);
    const entries = grpcSignatureMetadata(signer, "/busi.Busi/TransOut", message);
    expect(entries.map(([k]) => k)).toEqual(["x-dtx-signature"]);
    const metadata = { get: (key: string) => entries.filter(([k]) => k === key).map(([, v]) => v) };
    expect(verifier.verifyGrpc({ path: "/busi.Busi/TransOut", metadata, message })).toEqual({ keyId: "k1" });
    expect(grpcSignatureMetadata(undefined, "/busi.Busi/TransOut", message)).toEqual([]);
  });
});
