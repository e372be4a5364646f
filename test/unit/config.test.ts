import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../../server/src/config.ts";
import { CONFIG_ENV_VARS, ConfigError, loadConfig, parseConfig, redactConfig } from "../../server/src/config.ts";

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "dtx-config-"));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** Runs `fn` and returns the ConfigError it throws (failing the test if it throws nothing else). */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error("expected a ConfigError, but nothing was thrown");
}

const DEFAULTS: Config = {
  env: "development",
  host: "0.0.0.0",
  httpPort: 36789,
  grpcPort: 36790,
  store: {
    driver: "sqlite", path: "./data/dtx.db", synchronous: "full", url: "", poolSize: 10, prepareStatements: true, schema: "public", prefix: "{dtx}", allowUnsafeRedis: false, timeout: 5,
  },
  retention: { finishedAge: 604_800, interval: 300, batchSize: 500, batchPause: 0.1 },
  retryInterval: 10,
  maxRetryInterval: 60,
  retryJitter: 0.1,
  timeoutToFail: 35,
  requestTimeout: 3,
  leaseMargin: 1,
  deferBranchResults: true,
  cronInterval: 3,
  cronBatchSize: 64,
  cronConcurrency: 256,
  maxBodyBytes: 1024 * 1024,
  maxPayloadBytes: 256 * 1024,
  maxBranches: 1000,
  overload: { maxPassesInFlight: 1000, maxBacklog: 5000, branchConnections: 512, branchQueue: 1024 },
  strictResults: false,
  echoBranchBodies: false,
  branchSigning: { keys: [], activeKeyId: "", keysFile: "", watchInterval: 2 },
  alertRetryLimit: 3,
  alertWebhook: "",
  logLevel: "info",
  testControl: false,
  auth: { tokens: [] },
  branchUrls: { allow: [], denyPrivate: false },
  branchTls: { ca: "", cert: "", key: "", rejectUnauthorized: true, grpc: false },
};

describe("loadConfig: defaults", () => {
  it("uses the documented defaults with no file and no environment", () => {
    const config = loadConfig({}, []);
    // toMatchObject: a knob added later only needs its own test.
    expect(config).toMatchObject(DEFAULTS);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it("ignores unrelated and empty environment variables", () => {
    expect(loadConfig({ PATH: "/bin", HOME: "/root", DTX_HTTP_PORT: "", DTX_UNKNOWN: "1" }, [])).toEqual(loadConfig({}, []));
  });

  it("NODE_ENV=production selects the production env unless DTX_ENV says otherwise", () => {
    expect(loadConfig({ NODE_ENV: "production" }, []).env).toBe("production");
    expect(loadConfig({ NODE_ENV: "production", DTX_ENV: "test" }, []).env).toBe("test");
  });

  it("the sample config in deploy/ loads and holds the defaults", () => {
    const sample = fileURLToPath(new URL("../../deploy/config.sample.yml", import.meta.url));
    expect(loadConfig({}, ["--config", sample])).toEqual(loadConfig({}, []));
  });
});

describe("loadConfig: file and environment", () => {
  it("reads a YAML file named by DTX_CONFIG, -c or --config", () => {
    const path = file("a.yml", "httpPort: 1234\nstore:\n  path: /var/lib/dtx/a.db\nlogLevel: debug\n");
    for (const [env, argv] of [
      [{ DTX_CONFIG: path }, []],
      [{}, ["-c", path]],
      [{}, ["--config", path]],
    ] as const) {
      const config = loadConfig(env, argv);
      expect(config.httpPort).toBe(1234);
      expect(config.store).toEqual({ ...DEFAULTS.store, path: "/var/lib/dtx/a.db" });
      expect(config.logLevel).toBe("debug");
    }
  });

  it("reads a JSON file", () => {
    const path = file("b.json", JSON.stringify({ grpcPort: 4321, retryInterval: 2, maxRetryInterval: 8, store: { synchronous: "normal" } }));
    const config = loadConfig({ DTX_CONFIG: path }, []);
    expect(config.grpcPort).toBe(4321);
    expect(config.retryInterval).toBe(2);
    expect(config.maxRetryInterval).toBe(8);
    expect(config.store.synchronous).toBe("normal");
  });

  it("an empty file is the defaults", () => {
    expect(loadConfig({}, ["-c", file("empty.yml", "")])).toEqual(loadConfig({}, []));
  });

  it("--config on the command line wins over DTX_CONFIG", () => {
    const a = file("arg.yml", "httpPort: 1111\n");
    const b = file("env.yml", "httpPort: 2222\n");
    expect(loadConfig({ DTX_CONFIG: b }, ["--config", a]).httpPort).toBe(1111);
  });

  it("environment variables override the file, key by key (nested objects merge)", () => {
    const path = file("c.yml", "httpPort: 1000\ngrpcPort: 1001\nstore:\n  path: /data/x.db\n  synchronous: normal\nstrictResults: true\n");
    const config = loadConfig(
      { DTX_CONFIG: path, DTX_HTTP_PORT: "2000", DTX_STORE_SYNCHRONOUS: "full", DTX_STRICT_RESULTS: "off", DTX_LOG_LEVEL: "warn" },
      [],
    );
    expect(config.httpPort).toBe(2000);
    expect(config.grpcPort).toBe(1001);
    expect(config.store).toEqual({ ...DEFAULTS.store, path: "/data/x.db" });
    expect(config.strictResults).toBe(false);
    expect(config.logLevel).toBe("warn");
  });

  it("reads booleans and trims values", () => {
    for (const yes of ["1", "true", "TRUE", "yes", "on"]) expect(loadConfig({ DTX_STRICT_RESULTS: yes }, []).strictResults).toBe(true);
    for (const no of ["0", "false", "No", "off"]) expect(loadConfig({ DTX_STRICT_RESULTS: no }, []).strictResults).toBe(false);
    expect(loadConfig({ DTX_HTTP_PORT: " 8080 " }, []).httpPort).toBe(8080);
  });

  it("reads every DTX_ variable", () => {
    const values: Record<string, string> = {
      DTX_ENV: "test",
      DTX_HOST: "127.0.0.1",
      DTX_HTTP_PORT: "1",
      DTX_GRPC_PORT: "2",
      DTX_STORE_DRIVER: "sqlite",
      DTX_STORE_PATH: "/tmp/x.db",
      DTX_STORE_SYNCHRONOUS: "normal",
      DTX_STORE_URL: "sqlite:///tmp/x.db",
      DTX_RETRY_INTERVAL: "0.5",
      DTX_MAX_RETRY_INTERVAL: "4",
      DTX_RETRY_JITTER: "0",
      DTX_TIMEOUT_TO_FAIL: "7",
      DTX_REQUEST_TIMEOUT: "0.2",
      DTX_CRON_INTERVAL: "0.1",
      DTX_CRON_BATCH_SIZE: "5",
      DTX_CRON_CONCURRENCY: "6",
      DTX_MAX_BODY_BYTES: "1000",
      DTX_MAX_PAYLOAD_BYTES: "100",
      DTX_MAX_BRANCHES: "10",
      DTX_STRICT_RESULTS: "1",
      DTX_ALERT_RETRY_LIMIT: "5",
      DTX_ALERT_WEBHOOK: "http://hook.local/a",
      DTX_LOG_LEVEL: "silent",
      DTX_TEST_CONTROL: "1",
    };
    for (const name of Object.keys(values)) expect(CONFIG_ENV_VARS).toContain(name);
    const config = loadConfig(values, []);
    expect(config).toMatchObject({
      env: "test",
      host: "127.0.0.1",
      httpPort: 1,
      grpcPort: 2,
      store: { driver: "sqlite", path: "/tmp/x.db", synchronous: "normal", url: "sqlite:///tmp/x.db" },
      retryInterval: 0.5,
      maxRetryInterval: 4,
      retryJitter: 0,
      timeoutToFail: 7,
      requestTimeout: 0.2,
      cronInterval: 0.1,
      cronBatchSize: 5,
      cronConcurrency: 6,
      maxBodyBytes: 1000,
      maxPayloadBytes: 100,
      maxBranches: 10,
      strictResults: true,
      alertRetryLimit: 5,
      alertWebhook: "http://hook.local/a",
      logLevel: "silent",
      testControl: true,
    });
  });

  it("accepts fractions of a second for every timing knob, with no floor (D7)", () => {
    const config = loadConfig(
      {
        DTX_RETRY_INTERVAL: "0.05",
        DTX_MAX_RETRY_INTERVAL: "0.2",
        DTX_TIMEOUT_TO_FAIL: "0.5",
        DTX_REQUEST_TIMEOUT: "0.025",
        DTX_CRON_INTERVAL: "0.01",
      },
      [],
    );
    expect(config).toMatchObject({ retryInterval: 0.05, maxRetryInterval: 0.2, timeoutToFail: 0.5, requestTimeout: 0.025, cronInterval: 0.01 });
    const fromFile = loadConfig({}, ["-c", file("frac.yml", "retryInterval: 0.001\nmaxRetryInterval: 0.002\ntimeoutToFail: 0\n")]);
    expect(fromFile).toMatchObject({ retryInterval: 0.001, maxRetryInterval: 0.002, timeoutToFail: 0 });
  });
});

describe("loadConfig: bad values throw a ConfigError naming the key", () => {
  const cases: [string, Record<string, string>, string][] = [
    ["a port that is not a number", { DTX_HTTP_PORT: "abc" }, "httpPort"],
    ["a port out of range", { DTX_GRPC_PORT: "70000" }, "grpcPort"],
    ["a fractional port", { DTX_HTTP_PORT: "80.5" }, "httpPort"],
    ["a negative interval", { DTX_RETRY_INTERVAL: "-1" }, "retryInterval"],
    ["a zero interval", { DTX_REQUEST_TIMEOUT: "0" }, "requestTimeout"],
    ["a negative timeout", { DTX_TIMEOUT_TO_FAIL: "-0.5" }, "timeoutToFail"],
    ["jitter above 1", { DTX_RETRY_JITTER: "1.5" }, "retryJitter"],
    ["a bad boolean", { DTX_STRICT_RESULTS: "maybe" }, "strictResults"],
    ["an unknown enum value", { DTX_LOG_LEVEL: "loud" }, "logLevel"],
    ["an unknown store driver", { DTX_STORE_DRIVER: "oracle" }, "store.driver"],
    ["an unknown env", { DTX_ENV: "staging" }, "env"],
    ["a non-integer batch size", { DTX_CRON_BATCH_SIZE: "1.5" }, "cronBatchSize"],
    ["maxRetryInterval < retryInterval", { DTX_RETRY_INTERVAL: "20", DTX_MAX_RETRY_INTERVAL: "10" }, "maxRetryInterval"],
    ["workers = 0", { DTX_WORKERS: "0" }, "workers"],
    ["fractional workers", { DTX_WORKERS: "1.5" }, "workers"],
    ["workers > 1 on the embedded SQLite store", { DTX_WORKERS: "2" }, "workers"],
    ["workers > 1 with the test-control API", { DTX_WORKERS: "2", DTX_STORE_DRIVER: "redis", DTX_STORE_URL: "redis://h:6379", DTX_TEST_CONTROL: "1" }, "workers"],
    ["testControl in production (DTX_ENV)", { DTX_ENV: "production", DTX_TEST_CONTROL: "1" }, "testControl"],
    ["testControl in production (NODE_ENV)", { NODE_ENV: "production", DTX_TEST_CONTROL: "true" }, "testControl"],
  ];
  for (const [name, env, key] of cases) {
    it(name, () => {
      const error = configError(() => loadConfig(env, []));
      expect(error.name).toBe("ConfigError");
      expect(error.message).toContain(`${key}:`);
    });
  }

  it("the message shows every bad key at once", () => {
    const error = configError(() => loadConfig({ DTX_HTTP_PORT: "abc", DTX_RETRY_JITTER: "2" }, []));
    expect(error.message).toContain("httpPort");
    expect(error.message).toContain("retryJitter");
  });

  it("an unknown key in the file (top level or nested)", () => {
    const error = configError(() => loadConfig({}, ["-c", file("unknown.yml", "httpPort: 1\nbogusKey: 1\nstore:\n  pasword: x\n")]));
    expect(error.message).toContain("bogusKey");
    expect(error.message).toContain("pasword");
  });

  it("a wrongly typed value in the file", () => {
    const error = configError(() => loadConfig({}, ["-c", file("typed.json", '{"retryInterval":"10"}')]));
    expect(error.message).toContain("retryInterval");
  });

  it("a missing file, bad YAML, bad JSON and a file that is not an object", () => {
    expect(configError(() => loadConfig({ DTX_CONFIG: join(dir, "missing.yml") }, [])).message).toContain("missing.yml");
    expect(configError(() => loadConfig({}, ["-c", file("bad.yml", "a: [1,\n")])).message).toContain("bad.yml");
    expect(configError(() => loadConfig({}, ["-c", file("bad.json", "{nope")])).message).toContain("bad.json");
    expect(configError(() => loadConfig({}, ["-c", file("list.yml", "- 1\n- 2\n")])).message).toContain("list.yml");
  });

  it("parseConfig rejects a non-object", () => {
    configError(() => parseConfig("text"));
    configError(() => parseConfig([]));
  });

  // BUG (fails today): a whitespace-only value is not treated like an empty one. config.ts `fromEnv`
  // skips only "" and then trims, so " " reaches `coerce`, where Number("") === 0: DTX_HTTP_PORT=" "
  // silently listens on a random port, and DTX_TIMEOUT_TO_FAIL=" " silently turns the default
  // tcc/xa/msg timeout off. Expected: the default, or a ConfigError naming the key.
  it("a blank (whitespace-only) variable does not become 0", () => {
    for (const [name, key] of [
      ["DTX_HTTP_PORT", "httpPort"],
      ["DTX_TIMEOUT_TO_FAIL", "timeoutToFail"],
    ] as const) {
      let value: unknown;
      try {
        value = loadConfig({ [name]: "  " }, [])[key];
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        expect((error as Error).message).toContain(key);
        continue;
      }
      expect(value, name).toBe(DEFAULTS[key]);
    }
  });
});

describe("redactConfig", () => {
  it("hides the password of a store URL and keeps the rest", () => {
    const config = loadConfig({ DTX_STORE_URL: "postgres://dtx:s3cr3t-pw@db.local:5432/dtx?sslmode=require" }, []);
    const redacted = redactConfig(config);
    const text = JSON.stringify(redacted);
    expect(text).not.toContain("s3cr3t-pw");
    const url = (redacted["store"] as { url: string }).url;
    expect(url).toContain("dtx:");
    expect(url).toContain("db.local:5432/dtx");
    expect(url).toContain("***");
    // The config itself is untouched.
    expect(config.store.url).toContain("s3cr3t-pw");
    expect(redacted["httpPort"]).toBe(config.httpPort);
  });

  it("hides the password of the alert webhook URL", () => {
    const redacted = redactConfig(loadConfig({ DTX_ALERT_WEBHOOK: "https://bot:hook-pw@alerts.local/notify" }, []));
    expect(JSON.stringify(redacted)).not.toContain("hook-pw");
  });

  it("leaves URLs without a password and empty URLs alone, and hides what it cannot parse", () => {
    expect((redactConfig(loadConfig({ DTX_STORE_URL: "redis://cache.local:6379/0" }, []))["store"] as { url: string }).url).toBe(
      "redis://cache.local:6379/0",
    );
    expect((redactConfig(loadConfig({}, []))["store"] as { url: string }).url).toBe("");
    const odd = redactConfig(loadConfig({ DTX_STORE_URL: "not a url :: pw" }, []));
    expect((odd["store"] as { url: string }).url).toBe("***");
  });
});

describe("loadConfig: the network stores", () => {
  it("DTX_STORE_DRIVER / DTX_STORE_URL / DTX_STORE_POOL_SIZE / DTX_STORE_SCHEMA select and tune PostgreSQL", () => {
    const config = loadConfig(
      { DTX_STORE_DRIVER: "postgres", DTX_STORE_URL: "postgres://dtx:pw@db.local:5432/dtx", DTX_STORE_POOL_SIZE: "25", DTX_STORE_SCHEMA: "dtx_a" },
      [],
    );
    expect(config.store).toMatchObject({ driver: "postgres", url: "postgres://dtx:pw@db.local:5432/dtx", poolSize: 25, schema: "dtx_a" });
    expect(loadConfig({ DTX_STORE_DRIVER: "postgres", DTX_STORE_URL: "postgresql://db.local/dtx" }, []).store.poolSize).toBe(10);
  });

  it("DTX_STORE_PREPARE_STATEMENTS=false turns Postgres' prepared statements off", () => {
    const env = { DTX_STORE_DRIVER: "postgres", DTX_STORE_URL: "postgres://u@db/dtx" };
    expect(loadConfig(env, []).store.prepareStatements).toBe(true);
    expect(loadConfig({ ...env, DTX_STORE_PREPARE_STATEMENTS: "false" }, []).store.prepareStatements).toBe(false);
  });

  it("MySQL and MariaDB URLs", () => {
    expect(loadConfig({ DTX_STORE_DRIVER: "mysql", DTX_STORE_URL: "mysql://root@127.0.0.1:3306/dtx" }, []).store.driver).toBe("mysql");
    expect(loadConfig({ DTX_STORE_DRIVER: "mysql", DTX_STORE_URL: "mariadb://root@db/dtx" }, []).store.url).toBe("mariadb://root@db/dtx");
  });

  it("DTX_STORE_DRIVER=redis with redis:// or rediss://, DTX_STORE_PREFIX and DTX_STORE_FINISHED_EXPIRE", () => {
    const config = loadConfig(
      { DTX_STORE_DRIVER: "redis", DTX_STORE_URL: "redis://:pw@cache.local:6379/2", DTX_STORE_PREFIX: "{dtx-a}", DTX_STORE_FINISHED_EXPIRE: "0" },
      [],
    );
    expect(config.store).toMatchObject({ driver: "redis", url: "redis://:pw@cache.local:6379/2", prefix: "{dtx-a}" });
    // The old Redis-only name is read as retention.finishedAge, which governs every store.
    expect(config.retention.finishedAge).toBe(0);
    expect(loadConfig({ DTX_STORE_DRIVER: "redis", DTX_STORE_URL: "rediss://cache.local" }, []).store).toMatchObject({ prefix: "{dtx}", allowUnsafeRedis: false });
  });

  const cases: [string, Record<string, string>, string, RegExp][] = [
    ["redis without a URL", { DTX_STORE_DRIVER: "redis" }, "store.url", /required when store.driver is redis.*redis:\/\//],
    ["a redis driver with a postgres URL", { DTX_STORE_DRIVER: "redis", DTX_STORE_URL: "postgres://u:secret-pw@db/dtx" }, "store.url", /must start with redis:\/\/ or rediss:\/\//],
    ["postgres without a URL", { DTX_STORE_DRIVER: "postgres" }, "store.url", /required when store.driver is postgres/],
    ["mysql without a URL", { DTX_STORE_DRIVER: "mysql" }, "store.url", /required/],
    ["a URL that does not parse", { DTX_STORE_DRIVER: "postgres", DTX_STORE_URL: "not a url" }, "store.url", /not a valid URL/],
    ["host:port without a scheme", { DTX_STORE_DRIVER: "postgres", DTX_STORE_URL: "db.local:5432" }, "store.url", /must start with postgres:\/\//],
    ["a URL of the other kind", { DTX_STORE_DRIVER: "postgres", DTX_STORE_URL: "mysql://u:secret-pw@db/dtx" }, "store.url", /postgres:\/\//],
    ["a mysql URL without a database", { DTX_STORE_DRIVER: "mysql", DTX_STORE_URL: "mysql://u:secret-pw@db:3306/" }, "store.url", /database/],
    ["a pool size of 0", { DTX_STORE_POOL_SIZE: "0" }, "store.poolSize", /./],
    ["a schema that is not an identifier", { DTX_STORE_SCHEMA: "a;drop" }, "store.schema", /identifier/],
    ["a store timeout of 0", { DTX_STORE_TIMEOUT: "0" }, "store.timeout", /./],
    ["a store timeout above 300 s", { DTX_STORE_TIMEOUT: "301" }, "store.timeout", /./],
  ];
  for (const [name, env, key, why] of cases) {
    it(`${name}: a ConfigError naming ${key}, without the password`, () => {
      const error = configError(() => loadConfig(env, []));
      expect(error.message).toContain(`${key}:`);
      expect(error.message).toMatch(why);
      expect(error.message).not.toContain("secret-pw");
    });
  }
});

describe("auth.tokens", () => {
  const DIGEST = "a".repeat(64);
  const DIGEST2 = "0123456789ABCDEF".repeat(4);

  it("is empty (auth off) by default", () => {
    expect(loadConfig({}, []).auth).toEqual({ tokens: [] });
  });

  it("reads DTX_AUTH_TOKENS as JSON, and a file's auth.tokens", () => {
    const tokens = [{ name: "app", sha256: DIGEST, roles: ["client"] }, { name: "ops", sha256: DIGEST2, roles: ["admin", "metrics"] }];
    expect(CONFIG_ENV_VARS).toContain("DTX_AUTH_TOKENS");
    expect(loadConfig({ DTX_AUTH_TOKENS: JSON.stringify(tokens) }, []).auth.tokens).toEqual(tokens);
    const path = file("auth.yml", `auth:\n  tokens:\n    - name: app\n      sha256: ${DIGEST}\n      roles: [client]\n`);
    expect(loadConfig({}, ["--config", path]).auth.tokens).toEqual([tokens[0]]);
  });

  it.each([
    ["a token in clear instead of its digest", [{ name: "app", sha256: "my-secret-token", roles: ["client"] }], "auth.tokens.0.sha256", "SHA-256 hex digest"],
    ["a digest one digit short", [{ name: "app", sha256: DIGEST.slice(1), roles: ["client"] }], "auth.tokens.0.sha256", "64 hex digits"],
    ["an unknown role", [{ name: "app", sha256: DIGEST, roles: ["root"] }], "auth.tokens.0.roles.0", ""],
    ["no role", [{ name: "app", sha256: DIGEST, roles: [] }], "auth.tokens.0.roles", "at least one"],
    ["no name", [{ name: "", sha256: DIGEST, roles: ["client"] }], "auth.tokens.0.name", ""],
    ["an unknown key", [{ name: "app", sha256: DIGEST, roles: ["client"], token: "x" }], "auth.tokens.0", ""],
    ["a duplicate name", [{ name: "app", sha256: DIGEST, roles: ["client"] }, { name: "app", sha256: DIGEST2, roles: ["client"] }], "auth.tokens.1.name", "duplicate"],
    ["a duplicate digest", [{ name: "a", sha256: DIGEST, roles: ["client"] }, { name: "b", sha256: DIGEST.toUpperCase(), roles: ["admin"] }], "auth.tokens.1.sha256", "twice"],
    ["not a list", { name: "app" }, "auth.tokens", ""],
  ])("refuses %s, naming the key", (_what, tokens, key, text) => {
    const err = configError(() => loadConfig({ DTX_AUTH_TOKENS: JSON.stringify(tokens) }, []));
    expect(err.message).toContain(`${key}:`);
    expect(err.message).toContain(text);
  });

  it("refuses DTX_AUTH_TOKENS that is not JSON, without repeating its text", () => {
    const err = configError(() => loadConfig({ DTX_AUTH_TOKENS: "[{name: secret-ish-text}]" }, []));
    expect(err.message).toContain("DTX_AUTH_TOKENS");
    expect(err.message).toContain("not valid JSON");
    expect(err.message).not.toContain("secret-ish-text");
  });

  it("redactConfig keeps names and roles but never a digest", () => {
    const config = loadConfig({ DTX_AUTH_TOKENS: JSON.stringify([{ name: "app", sha256: DIGEST2, roles: ["client"] }]) }, []);
    const redacted = redactConfig(config);
    expect(JSON.stringify(redacted)).not.toContain(DIGEST2);
    expect(redacted["auth"]).toEqual({ tokens: [{ name: "app", sha256: "***", roles: ["client"] }] });
    expect(config.auth.tokens[0]?.sha256).toBe(DIGEST2);
  });
});

describe("branchUrls", () => {
  it("is off by default and reads DTX_BRANCH_URLS_ALLOW as a comma-separated list", () => {
    expect(loadConfig({}, []).branchUrls).toEqual({ allow: [], denyPrivate: false });
    const config = loadConfig({ DTX_BRANCH_URLS_ALLOW: " http://busi:8081/api , grpc://busi:58081,", DTX_BRANCH_URLS_DENY_PRIVATE: "true" }, []);
    expect(config.branchUrls).toEqual({ allow: ["http://busi:8081/api", "grpc://busi:58081"], denyPrivate: true });
    expect(CONFIG_ENV_VARS).toEqual(expect.arrayContaining(["DTX_BRANCH_URLS_ALLOW", "DTX_BRANCH_URLS_DENY_PRIVATE"]));
  });

  it.each([
    ["ftp://busi/x", "scheme://host"],
    ["busi:8081", "scheme://host"],
    ["grpc://busi", "needs a port"],
    ["http://2130706433/", "canonical form (127.0.0.1)"],
    ["http://127.1:8081/api", "canonical form (127.0.0.1)"],
    ["http://busi:99999/", "invalid port"],
    ["http://user@busi/", "user information"],
  ])("refuses the pattern %s, naming the key", (pattern, words) => {
    const error = configError(() => loadConfig({ DTX_BRANCH_URLS_ALLOW: pattern }, []));
    expect(error.message).toContain("branchUrls.allow.0");
    expect(error.message).toContain(words);
    expect(error.message).toContain("DTX_BRANCH_URLS_ALLOW");
  });
});

describe("overload", () => {
  it("reads the caps from DTX_MAX_PASSES_IN_FLIGHT, DTX_MAX_BACKLOG, DTX_BRANCH_CONNECTIONS, DTX_BRANCH_QUEUE", () => {
    const config = loadConfig({ DTX_MAX_PASSES_IN_FLIGHT: "64", DTX_MAX_BACKLOG: "0", DTX_BRANCH_CONNECTIONS: "8", DTX_BRANCH_QUEUE: "16" }, []);
    expect(config.overload).toEqual({ maxPassesInFlight: 64, maxBacklog: 0, branchConnections: 8, branchQueue: 16 });
  });

  it.each([
    ["DTX_MAX_PASSES_IN_FLIGHT", "0", "overload.maxPassesInFlight"],
    ["DTX_MAX_PASSES_IN_FLIGHT", "100001", "overload.maxPassesInFlight"],
    ["DTX_MAX_PASSES_IN_FLIGHT", "1.5", "overload.maxPassesInFlight"],
    ["DTX_MAX_BACKLOG", "-1", "overload.maxBacklog"],
    ["DTX_BRANCH_CONNECTIONS", "0", "overload.branchConnections"],
    ["DTX_BRANCH_QUEUE", "100001", "overload.branchQueue"],
  ])("refuses %s=%s, naming the key", (name, value, key) => {
    expect(configError(() => loadConfig({ [name]: value }, [])).message).toContain(key);
  });
});

describe("retention and store.allowUnsafeRedis", () => {
  it("DTX_RETENTION_* and DTX_STORE_ALLOW_UNSAFE_REDIS", () => {
    const config = loadConfig({
      DTX_RETENTION_FINISHED_AGE: "86400", DTX_RETENTION_INTERVAL: "60", DTX_RETENTION_BATCH_SIZE: "100", DTX_RETENTION_BATCH_PAUSE: "0",
      DTX_STORE_ALLOW_UNSAFE_REDIS: "1",
    }, []);
    expect(config.retention).toEqual({ finishedAge: 86_400, interval: 60, batchSize: 100, batchPause: 0 });
    expect(config.store.allowUnsafeRedis).toBe(true);
    expect(loadConfig({ DTX_RETENTION_FINISHED_AGE: "0" }, []).retention.finishedAge).toBe(0);
  });

  it.each([
    ["a negative finishedAge", { DTX_RETENTION_FINISHED_AGE: "-1" }, "retention.finishedAge"],
    ["a fractional finishedAge (Redis TTLs are whole seconds)", { DTX_RETENTION_FINISHED_AGE: "1.5" }, "retention.finishedAge"],
    ["a finishedAge past ten years (0 is for ever)", { DTX_RETENTION_FINISHED_AGE: "400000000" }, "retention.finishedAge"],
    ["an interval of 0", { DTX_RETENTION_INTERVAL: "0" }, "retention.interval"],
    ["an interval past a day", { DTX_RETENTION_INTERVAL: "90000" }, "retention.interval"],
    ["a batch size of 0", { DTX_RETENTION_BATCH_SIZE: "0" }, "retention.batchSize"],
    ["a batch size past 10,000", { DTX_RETENTION_BATCH_SIZE: "10001" }, "retention.batchSize"],
    ["a negative batch pause", { DTX_RETENTION_BATCH_PAUSE: "-0.1" }, "retention.batchPause"],
    ["a negative finishedExpire (the old name)", { DTX_STORE_FINISHED_EXPIRE: "-1" }, "store.finishedExpire"],
  ])("rejects %s", (_name, env, path) => {
    expect(() => loadConfig(env, [])).toThrow(new RegExp(path.replace(".", "\\.")));
  });

  it("store.finishedExpire and retention.finishedAge set to different values is an error; equal values are fine", () => {
    expect(() => loadConfig({ DTX_STORE_FINISHED_EXPIRE: "60", DTX_RETENTION_FINISHED_AGE: "120" }, [])).toThrow(/old name of retention\.finishedAge/);
    expect(loadConfig({ DTX_STORE_FINISHED_EXPIRE: "60", DTX_RETENTION_FINISHED_AGE: "60" }, []).retention.finishedAge).toBe(60);
  });
});
