import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { ROLES } from "./api/auth.ts";
import { parseUrlPattern } from "./driver/url-policy.ts";
import { SigningKeySchema, SigningKeySetSchema } from "./driver/signing-keys.ts";

const seconds = z.number().finite().nonnegative();
const port = z.number().int().min(0).max(65535);
/** Ten years: longer is "for ever", which is 0. */
const MAX_RETENTION_SECONDS = 10 * 365 * 24 * 3600;

/**
 * The coordinator's configuration. Time knobs are seconds and accept fractions (docs/deviations.md D7), so tests
 * can run on millisecond timings. Read from defaults, then a YAML/JSON file (`DTX_CONFIG` or
 * `--config`), then `DTX_*` environment variables; see the README's table.
 */
export const ConfigSchema = z
  .object({
    env: z.enum(["development", "production", "test"]).default("development"),
    host: z.string().min(1).default("0.0.0.0"),
    httpPort: port.default(36789),
    grpcPort: port.default(36790),
    /**
     * Coordinator processes sharing the ports and the store (docs/operations.md#workers). Unset: one per
     * core on a network store (less one for a store server on this machine), one on SQLite or with
     * the test-control API; see cluster/worker-count.ts.
     */
    workers: z.number().int().min(1).max(64).optional(),
    store: z
      .object({
        driver: z.enum(["sqlite", "postgres", "mysql", "redis"]).default("sqlite"),
        /** SQLite only. */
        path: z.string().min(1).default("./data/dtx.db"),
        /** SQLite only. */
        synchronous: z.enum(["full", "normal"]).default("full"),
        /** postgres / mysql / redis: the server to connect to (credentials included; redacted in logs). */
        url: z.string().default(""),
        /** postgres / mysql: connections in each coordinator's pool. */
        poolSize: z.number().int().positive().max(1000).default(10),
        /** postgres only: run the store's statements as named prepared statements (off behind a pooler that loses them). */
        prepareStatements: z.boolean().default(true),
        /** postgres only: the schema holding dtx's tables (created if missing). */
        schema: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, "must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*, at most 63 characters)").default("public"),
        /** redis only: the start of every key; keep a {hash tag} so a cluster puts them in one slot. */
        prefix: z.string().min(1).default("{dtx}"),
        /** redis only, deprecated: the old name of retention.finishedAge (parseConfig moves it there). */
        finishedExpire: z.number().int().nonnegative().max(MAX_RETENTION_SECONDS).optional(),
        /** redis only: start even if Redis can lose acknowledged writes (docs/redis.md); logs a warning. */
        allowUnsafeRedis: z.boolean().default(false),
        /**
         * Seconds any one store call may take (statement, command, connect, waiting for a pooled
         * connection or a lock) before it fails as STORE_UNAVAILABLE (docs/store-outages.md).
         */
        timeout: seconds.min(0.1).max(300).default(5),
      })
      .strict()
      .superRefine(checkStoreUrl)
      .prefault({}),
    /** Deleting finished transactions (docs/retention.md). */
    retention: z
      .object({
        /** Seconds a finished trans is kept after its last update (0 = for ever); also Redis' TTL. */
        finishedAge: z.number().int().nonnegative().max(MAX_RETENTION_SECONDS).default(7 * 24 * 3600),
        /** Seconds between retention rounds (jittered); a Node timer, so at most a day. */
        interval: seconds.positive().max(86_400).default(300),
        /** Transactions deleted per statement. */
        batchSize: z.number().int().positive().max(10_000).default(500),
        /** Seconds between two batches of a round, so deletion never hogs the database. */
        batchPause: seconds.max(60).default(0.1),
      })
      .strict()
      .prefault({}),
    retryInterval: seconds.positive().default(10),
    maxRetryInterval: seconds.positive().default(60),
    retryJitter: z.number().min(0).max(1).default(0.1),
    timeoutToFail: seconds.default(35),
    // Both become Node timers, which cannot exceed 2^31 ms.
    requestTimeout: seconds.positive().max(3600).default(3),
    /** Slack a claim's lease keeps beyond every call's deadline, for clock skew between coordinators (docs/fencing.md). */
    leaseMargin: seconds.max(60).default(1),
    // docs/deviations.md D14: a branch result is written with the pass's next write, not before the call it unlocks.
    deferBranchResults: z.boolean().default(true),
    cronInterval: seconds.positive().max(3600).default(3),
    cronBatchSize: z.number().int().positive().max(10_000).default(64),
    cronConcurrency: z.number().int().positive().max(10_000).default(256),
    maxBodyBytes: z.number().int().positive().default(1024 * 1024),
    maxPayloadBytes: z.number().int().positive().default(256 * 1024),
    maxBranches: z.number().int().positive().default(1000),
    /** Bounds on work in flight under a flood of requests; see docs/overload.md. */
    overload: z
      .object({
        /** Passes (request- and cron-driven) running at once in this process; past it, new work is stored and left to the cron. */
        maxPassesInFlight: z.number().int().min(1).max(100_000).default(1000),
        /** Transactions this process left to the cron and not yet picked up; past it (with the pass cap full), writes answer 503 OVERLOADED. */
        maxBacklog: z.number().int().min(0).max(1_000_000).default(5000),
        /** Connections the branch clients open to one origin (HTTP host:port); gRPC multiplexes on one. */
        branchConnections: z.number().int().min(1).max(10_000).default(512),
        /** Branch calls to one origin waiting for a connection (HTTP) or a stream (gRPC); past it a call fails at once as a retryable error. */
        branchQueue: z.number().int().min(0).max(100_000).default(1024),
      })
      .strict()
      .prefault({}),
    strictResults: z.boolean().default(false),
    /**
     * Quote up to 512 characters of a branch's raw answer in what API clients see (a 409 / 425
     * answer, rollback_reason); off: only the branch's own `message` / `error` field is kept.
     */
    echoBranchBodies: z.boolean().default(false),
    /** Signed branch calls (docs/security.md#signed-branch-calls); no keys and no keysFile (the default) = off. */
    branchSigning: z
      .object({
        /** Inline keys; the coordinator reads only the active one's secret. */
        keys: z.array(SigningKeySchema).default([]),
        activeKeyId: z.string().default(""),
        /** A JSON file `{"activeKeyId": ..., "keys": [...]}`, read again when it changes (rotation without restart). */
        keysFile: z.string().default(""),
        /** Seconds between checks of the key files' modification times. */
        watchInterval: seconds.min(0.01).max(3600).default(2),
      })
      .strict()
      .superRefine(checkSigning)
      .prefault({}),
    alertRetryLimit: z.number().int().nonnegative().default(3),
    alertWebhook: z.string().default(""),
    /** Which URLs the coordinator may call; off (everything allowed) by default, as in dtm. See the README. */
    branchUrls: z
      .object({
        allow: z.array(z.string()).default([]).superRefine(checkUrlPatterns),
        denyPrivate: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
    /** TLS of branch calls: CA bundle, client certificate for mTLS, verification (docs/security.md#tls-for-branch-calls). */
    branchTls: z
      .object({
        /** PEM CA bundle that verifies participants' certificates ("" = Node's root CAs). */
        ca: z.string().default(""),
        /** PEM client certificate presented to participants that ask for one (mTLS); needs `key`. */
        cert: z.string().default(""),
        /** PEM private key of `cert`. */
        key: z.string().default(""),
        /** Refuse a participant whose certificate does not verify. */
        rejectUnauthorized: z.boolean().default(true),
        /** Call gRPC participants over TLS (HTTP ones by their https:// URL). */
        grpc: z.boolean().default(false),
      })
      .strict()
      .refine((t) => (t.cert === "") === (t.key === ""), { message: "cert and key go together: set both (DTX_BRANCH_TLS_CERT, DTX_BRANCH_TLS_KEY) or neither" })
      .prefault({}),
    logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    testControl: z.boolean().default(false),
    /** Bearer-token authentication; no token (the default) = off, as in dtm. See the README. */
    auth: z
      .object({
        tokens: z
          .array(
            z
              .object({
                name: z.string().min(1),
                sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, "must be the SHA-256 hex digest of the token (64 hex digits), never the token itself (DTX_AUTH_TOKENS)"),
                roles: z.array(z.enum(ROLES)).min(1, "needs at least one of client, admin, metrics"),
              })
              .strict(),
          )
          .default([])
          .superRefine(checkTokens),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .refine((c) => c.maxRetryInterval >= c.retryInterval, {
    message: "maxRetryInterval must be >= retryInterval",
    path: ["maxRetryInterval"],
  })
  .refine((c) => !(c.workers !== undefined && c.workers > 1 && c.store.driver === "sqlite"), {
    message: "the embedded SQLite store runs in one process (docs/operations.md#workers): set workers to 1 or use a network store",
    path: ["workers"],
  })
  .refine((c) => !(c.workers !== undefined && c.workers > 1 && c.testControl), {
    message: "the test-control API acts on one process's clock and cron: it needs workers = 1",
    path: ["workers"],
  })
  .refine((c) => !(c.testControl && c.env === "production"), {
    message: "the test-control API cannot be enabled in production",
    path: ["testControl"],
  });

/** Token names and digests must be unique; messages never repeat a digest. */
function checkTokens(tokens: readonly { name: string; sha256: string }[], ctx: z.RefinementCtx): void {
  const names = new Set<string>();
  const digests = new Set<string>();
  tokens.forEach((t, i) => {
    if (names.has(t.name)) ctx.addIssue({ code: "custom", path: [i, "name"], message: `duplicate token name ${JSON.stringify(t.name)} (DTX_AUTH_TOKENS)` });
    if (digests.has(t.sha256.toLowerCase())) ctx.addIssue({ code: "custom", path: [i, "sha256"], message: "the same digest is given twice (DTX_AUTH_TOKENS)" });
    names.add(t.name);
    digests.add(t.sha256.toLowerCase());
  });
}

/** Inline keys or a key file, not both; inline keys name their active key. Messages never repeat a secret. */
function checkSigning(signing: { keys: readonly unknown[]; activeKeyId: string; keysFile: string }, ctx: z.RefinementCtx): void {
  if (signing.keysFile !== "" && (signing.keys.length > 0 || signing.activeKeyId !== "")) {
    ctx.addIssue({ code: "custom", path: ["keysFile"], message: "give either keysFile (DTX_BRANCH_SIGNING_KEYS_FILE) or keys and activeKeyId, not both" });
    return;
  }
  if (signing.keysFile !== "" || (signing.keys.length === 0 && signing.activeKeyId === "")) return;
  const result = SigningKeySetSchema.safeParse({ activeKeyId: signing.activeKeyId, keys: signing.keys });
  for (const issue of result.error?.issues ?? []) ctx.addIssue({ code: "custom", path: issue.path, message: issue.message });
}

function checkUrlPatterns(patterns: readonly string[], ctx: z.RefinementCtx): void {
  patterns.forEach((p, i) => {
    try {
      parseUrlPattern(p);
    } catch (error) {
      ctx.addIssue({ code: "custom", path: [i], message: `${(error as Error).message} (DTX_BRANCH_URLS_ALLOW)` });
    }
  });
}

const STORE_URL_SCHEMES: Record<string, readonly string[]> = {
  postgres: ["postgres:", "postgresql:"],
  mysql: ["mysql:", "mariadb:"],
  redis: ["redis:", "rediss:"],
};

const STORE_URL_EXAMPLES: Record<string, string> = {
  redis: "redis://:password@host:6379",
};

/**
 * A network store needs a URL of its own kind. The message never repeats the URL, which may hold
 * a password.
 */
function checkStoreUrl(store: { driver: string; url: string }, ctx: z.RefinementCtx): void {
  const schemes = STORE_URL_SCHEMES[store.driver];
  if (!schemes) return;
  const example = STORE_URL_EXAMPLES[store.driver] ?? `${schemes[0]}//user:password@host/database`;
  const fail = (message: string): void => {
    ctx.addIssue({ code: "custom", path: ["url"], message: `${message} (DTX_STORE_URL), e.g. ${example}` });
  };
  if (store.url === "") return fail(`required when store.driver is ${store.driver}`);
  let url: URL;
  try {
    url = new URL(store.url);
  } catch {
    return fail(`is not a valid URL`);
  }
  if (!schemes.includes(url.protocol)) return fail(`must start with ${schemes.map((s) => `${s}//`).join(" or ")} for store.driver ${store.driver}`);
  if (!url.hostname) return fail("has no host");
  if (store.driver === "mysql" && url.pathname.replace(/^\//, "") === "") return fail("names no database");
}

export type Config = z.infer<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;

type EnvKind = "string" | "number" | "boolean" | "json" | "list";

/** Environment variable -> [config path, how to read its text]. */
const ENV_KEYS: Record<string, [string[], EnvKind]> = {
  DTX_ENV: [["env"], "string"],
  DTX_HOST: [["host"], "string"],
  DTX_HTTP_PORT: [["httpPort"], "number"],
  DTX_GRPC_PORT: [["grpcPort"], "number"],
  DTX_WORKERS: [["workers"], "number"],
  DTX_STORE_DRIVER: [["store", "driver"], "string"],
  DTX_STORE_PATH: [["store", "path"], "string"],
  DTX_STORE_SYNCHRONOUS: [["store", "synchronous"], "string"],
  DTX_STORE_URL: [["store", "url"], "string"],
  DTX_STORE_POOL_SIZE: [["store", "poolSize"], "number"],
  DTX_STORE_SCHEMA: [["store", "schema"], "string"],
  DTX_STORE_PREPARE_STATEMENTS: [["store", "prepareStatements"], "boolean"],
  DTX_STORE_PREFIX: [["store", "prefix"], "string"],
  DTX_STORE_FINISHED_EXPIRE: [["store", "finishedExpire"], "number"],
  DTX_STORE_TIMEOUT: [["store", "timeout"], "number"],
  DTX_STORE_ALLOW_UNSAFE_REDIS: [["store", "allowUnsafeRedis"], "boolean"],
  DTX_RETENTION_FINISHED_AGE: [["retention", "finishedAge"], "number"],
  DTX_RETENTION_INTERVAL: [["retention", "interval"], "number"],
  DTX_RETENTION_BATCH_SIZE: [["retention", "batchSize"], "number"],
  DTX_RETENTION_BATCH_PAUSE: [["retention", "batchPause"], "number"],
  DTX_RETRY_INTERVAL: [["retryInterval"], "number"],
  DTX_MAX_RETRY_INTERVAL: [["maxRetryInterval"], "number"],
  DTX_RETRY_JITTER: [["retryJitter"], "number"],
  DTX_TIMEOUT_TO_FAIL: [["timeoutToFail"], "number"],
  DTX_REQUEST_TIMEOUT: [["requestTimeout"], "number"],
  DTX_LEASE_MARGIN: [["leaseMargin"], "number"],
  DTX_DEFER_BRANCH_RESULTS: [["deferBranchResults"], "boolean"],
  DTX_CRON_INTERVAL: [["cronInterval"], "number"],
  DTX_CRON_BATCH_SIZE: [["cronBatchSize"], "number"],
  DTX_CRON_CONCURRENCY: [["cronConcurrency"], "number"],
  DTX_MAX_BODY_BYTES: [["maxBodyBytes"], "number"],
  DTX_MAX_PAYLOAD_BYTES: [["maxPayloadBytes"], "number"],
  DTX_MAX_BRANCHES: [["maxBranches"], "number"],
  DTX_MAX_PASSES_IN_FLIGHT: [["overload", "maxPassesInFlight"], "number"],
  DTX_MAX_BACKLOG: [["overload", "maxBacklog"], "number"],
  DTX_BRANCH_CONNECTIONS: [["overload", "branchConnections"], "number"],
  DTX_BRANCH_QUEUE: [["overload", "branchQueue"], "number"],
  DTX_STRICT_RESULTS: [["strictResults"], "boolean"],
  DTX_ECHO_BRANCH_BODIES: [["echoBranchBodies"], "boolean"],
  DTX_BRANCH_SIGNING_KEYS: [["branchSigning", "keys"], "json"],
  DTX_BRANCH_SIGNING_ACTIVE_KEY_ID: [["branchSigning", "activeKeyId"], "string"],
  DTX_BRANCH_SIGNING_KEYS_FILE: [["branchSigning", "keysFile"], "string"],
  DTX_BRANCH_SIGNING_WATCH_INTERVAL: [["branchSigning", "watchInterval"], "number"],
  DTX_ALERT_RETRY_LIMIT: [["alertRetryLimit"], "number"],
  DTX_ALERT_WEBHOOK: [["alertWebhook"], "string"],
  DTX_LOG_LEVEL: [["logLevel"], "string"],
  DTX_TEST_CONTROL: [["testControl"], "boolean"],
  DTX_AUTH_TOKENS: [["auth", "tokens"], "json"],
  DTX_BRANCH_URLS_ALLOW: [["branchUrls", "allow"], "list"],
  DTX_BRANCH_URLS_DENY_PRIVATE: [["branchUrls", "denyPrivate"], "boolean"],
  DTX_BRANCH_TLS_CA: [["branchTls", "ca"], "string"],
  DTX_BRANCH_TLS_CERT: [["branchTls", "cert"], "string"],
  DTX_BRANCH_TLS_KEY: [["branchTls", "key"], "string"],
  DTX_BRANCH_TLS_REJECT_UNAUTHORIZED: [["branchTls", "rejectUnauthorized"], "boolean"],
  DTX_BRANCH_TLS_GRPC: [["branchTls", "grpc"], "boolean"],
};

export const CONFIG_ENV_VARS = Object.keys(ENV_KEYS);

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Loads, merges and validates the config; throws {@link ConfigError} naming the bad key. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, argv: readonly string[] = process.argv.slice(2)): Config {
  const merged: Record<string, unknown> = {};
  const file = configFilePath(env, argv);
  if (file) deepMerge(merged, readConfigFile(file));
  deepMerge(merged, fromEnv(env));
  if (env["NODE_ENV"] === "production" && merged["env"] === undefined) merged["env"] = "production";
  return parseConfig(merged);
}

export function parseConfig(input: unknown): Config {
  const result = ConfigSchema.safeParse(moveFinishedExpire(input));
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
  }
  return Object.freeze(result.data);
}

/**
 * `store.finishedExpire` (DTX_STORE_FINISHED_EXPIRE) was the Redis-only retention; one setting,
 * retention.finishedAge, now governs every store, so the old key is read as the new one. Both
 * given with different values is an error rather than a silent choice.
 */
function moveFinishedExpire(input: unknown): unknown {
  if (!isPlainObject(input) || !isPlainObject(input["store"])) return input;
  const old = input["store"]["finishedExpire"];
  if (old === undefined) return input;
  const retention = isPlainObject(input["retention"]) ? input["retention"] : {};
  const given = retention["finishedAge"];
  if (given !== undefined && given !== old) {
    throw new ConfigError("invalid configuration:\n  store.finishedExpire: is the old name of retention.finishedAge (DTX_RETENTION_FINISHED_AGE); both are set, to different values: keep only retention.finishedAge");
  }
  return { ...input, retention: { ...retention, finishedAge: old } };
}

function configFilePath(env: NodeJS.ProcessEnv, argv: readonly string[]): string | undefined {
  const i = argv.findIndex((a) => a === "-c" || a === "--config");
  if (i >= 0 && argv[i + 1]) return argv[i + 1];
  return env["DTX_CONFIG"] || undefined;
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = path.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new ConfigError(`config file ${path} is not valid ${path.endsWith(".json") ? "JSON" : "YAML"}: ${(error as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== "object" || Array.isArray(parsed)) throw new ConfigError(`config file ${path} must hold an object`);
  return parsed as Record<string, unknown>;
}

function fromEnv(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, [path, kind]] of Object.entries(ENV_KEYS)) {
    const raw = env[name];
    if (raw === undefined || raw.trim() === "") continue;
    setPath(out, path, kind === "json" ? parseJsonEnv(name, raw) : coerce(raw.trim(), kind));
  }
  return out;
}

/** The message never repeats the text, which may hold a secret. */
function parseJsonEnv(name: string, raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch (error) {
    throw new ConfigError(`invalid configuration:\n  ${name}: is not valid JSON (${(error as Error).message.replace(/".*"/s, "...")})`);
  }
}

/** Leaves text the schema will reject as it is, so the error message shows what was given. */
function coerce(raw: string, kind: EnvKind): unknown {
  if (kind === "number") {
    const n = Number(raw);
    return Number.isFinite(n) ? n : raw;
  }
  if (kind === "list") return raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (kind === "boolean") {
    if (["1", "true", "yes", "on"].includes(raw.toLowerCase())) return true;
    if (["0", "false", "no", "off"].includes(raw.toLowerCase())) return false;
    return raw;
  }
  return raw;
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  path.slice(0, -1).forEach((key) => {
    const next = node[key];
    if (next === null || typeof next !== "object") node[key] = {};
    node = node[key] as Record<string, unknown>;
  });
  const last = path[path.length - 1];
  if (last !== undefined) node[last] = value;
}

function deepMerge(target: Record<string, unknown>, source: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(source)) {
    const existing = target[key];
    if (isPlainObject(value) && isPlainObject(existing)) deepMerge(existing, value);
    else target[key] = value;
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Redacts credentials in the config for logging (token digests included). */
export function redactConfig(config: Config): Record<string, unknown> {
  return {
    ...config,
    alertWebhook: redactUrl(config.alertWebhook),
    store: { ...config.store, url: redactUrl(config.store.url) },
    auth: { tokens: config.auth.tokens.map((t) => ({ name: t.name, sha256: "***", roles: t.roles })) },
    branchSigning: { ...config.branchSigning, keys: config.branchSigning.keys.map((k) => (k.secret === undefined ? k : { ...k, secret: "***" })) },
  };
}

/** A URL with its password replaced by `***` (anything unparsable becomes `***`), for logs and errors. */
export function redactUrl(url: string): string {
  if (!url) return url;
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "***";
  }
}
