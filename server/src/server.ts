import type { FastifyInstance } from "fastify";
import type { Config } from "./config.ts";
import { ConfigError, redactConfig, redactUrl } from "./config.ts";
import { createProcessors } from "./core/processors.ts";
import type { TimingConfig } from "./core/retry.ts";
import { AdjustableClock } from "./core/clock.ts";
import { RecoveryLoop } from "./cron/recovery-loop.ts";
import { RetentionLoop } from "./cron/retention-loop.ts";
import { alertWebhook } from "./driver/alert-webhook.ts";
import type { BranchTls } from "./driver/branch-tls.ts";
import { loadBranchTls } from "./driver/branch-tls.ts";
import { DispatchInvoker } from "./driver/dispatch-invoker.ts";
import { HttpInvoker } from "./driver/http-invoker.ts";
import { JsonRpcInvoker } from "./driver/jsonrpc-invoker.ts";
import { buildHttpApp } from "./api/http/app.ts";
import { GrpcApi } from "./api/grpc/grpc-server.ts";
import { Authenticator } from "./api/auth.ts";
import { GrpcInvoker } from "./driver/grpc-invoker.ts";
import type { Logger } from "./logger.ts";
import { CoordinatorMetrics } from "./metrics.ts";
import { ClaimTokens } from "./service/claim.ts";
import { CrashPoints } from "./service/crash-points.ts";
import { Executor } from "./service/executor.ts";
import { PassAdmission } from "./service/pass-admission.ts";
import { TopicService } from "./service/topic-service.ts";
import { TransService } from "./service/trans-service.ts";
import { UrlPolicy } from "./driver/url-policy.ts";
import { BranchSigner } from "./driver/branch-signer.ts";
import { SigningKeyRing, signingEnabled } from "./driver/signing-keys.ts";
import type { WorkerMessage } from "./cluster/messages.ts";
import { WorkerLink } from "./cluster/worker-link.ts";
import { withDeadline } from "./store/deadline-store.ts";
import type { Store } from "./store/store.ts";

export const VERSION = "v1.19.0-dtx.0.1.0";
/** How long stop() lets running gRPC calls finish before cancelling them. */
const GRPC_SHUTDOWN_GRACE_MS = 5_000;

export interface Coordinator {
  readonly config: Config;
  readonly http: FastifyInstance;
  readonly grpc: GrpcApi;
  readonly store: Store;
  readonly cron: RecoveryLoop;
  /** Deletes old finished transactions; undefined when retention.finishedAge is 0 (keep for ever). */
  readonly retention: RetentionLoop | undefined;
  readonly service: TransService;
  readonly clock: AdjustableClock;
  /** Listens on the configured ports and starts the cron. Resolves with the bound HTTP and gRPC ports. */
  start(): Promise<{ httpPort: number; grpcPort: number }>;
  /** Graceful stop: refuse new requests, drain running passes, close the store. */
  stop(): Promise<void>;
}

export function timingOf(config: Config): TimingConfig {
  return {
    retryInterval: config.retryInterval * 1000,
    maxRetryInterval: config.maxRetryInterval * 1000,
    timeoutToFail: config.timeoutToFail * 1000,
    requestTimeout: config.requestTimeout * 1000,
    retryJitter: config.retryJitter,
  };
}

/**
 * The store the config names. Network stores share one database between coordinators. Each
 * driver is loaded only when chosen: pg, mysql2, ioredis and kysely cost ~35 MB of RSS that a
 * coordinator on the embedded store would otherwise carry for nothing.
 */
async function openStore(config: Config, logger: Logger): Promise<Store> {
  const timeoutMs = config.store.timeout * 1000;
  return withDeadline(await openDriverStore(config, logger, timeoutMs), timeoutMs);
}

/** The store of the configured driver, with the driver's own timeouts and keepalive (docs/store-outages.md). */
async function openDriverStore(config: Config, logger: Logger, timeoutMs: number): Promise<Store> {
  const { store } = config;
  switch (store.driver) {
    case "sqlite": {
      const { SqliteStore } = await import("./store/sqlite/sqlite-store.ts");
      return new SqliteStore({ path: store.path, synchronous: store.synchronous, busyTimeoutMs: timeoutMs });
    }
    case "postgres": {
      const { PostgresStore } = await import("./store/sql/postgres-store.ts");
      return new PostgresStore({
        url: store.url, poolSize: store.poolSize, schema: store.schema, prepareStatements: store.prepareStatements, timeoutMs,
        onPoolError: (err) => logger.warn({ err }, "postgres: an idle pooled connection failed; it will be replaced"),
      });
    }
    case "mysql": {
      const { MysqlStore } = await import("./store/sql/mysql-store.ts");
      return new MysqlStore({ url: store.url, poolSize: store.poolSize, timeoutMs });
    }
    case "redis": {
      const { RedisStore } = await import("./store/redis/redis-store.ts");
      return new RedisStore({
        url: store.url, prefix: store.prefix, finishedExpireSeconds: config.retention.finishedAge, timeoutMs,
        onError: (err) => logger.warn({ err }, "redis: the connection failed; reconnecting"),
        allowUnsafe: store.allowUnsafeRedis,
        onUnsafe: (message) => logger.warn({ unsafe: message }, "redis: store.allowUnsafeRedis is set; starting on a Redis that can lose acknowledged writes"),
      });
    }
  }
}

/**
 * Opens the store and brings its schema up to date: the first contact with the database, so a
 * wrong or unreachable URL fails the start here, with a message naming the key (and never the
 * password).
 */
async function openMigratedStore(config: Config, logger: Logger): Promise<Store> {
  let store: Store | undefined;
  try {
    store = await openStore(config, logger);
    await store.migrate();
    return store;
  } catch (error) {
    await store?.close().catch(() => undefined);
    const { driver, url, path } = config.store;
    const where = driver === "sqlite" ? `store.path (DTX_STORE_PATH) ${path}` : `store.url (DTX_STORE_URL) ${redactUrl(url)}`;
    throw new Error(`cannot open the ${driver} store at ${where}: ${describeError(error)}`, { cause: error });
  }
}

/** A one-line reason; Node's AggregateError (e.g. ECONNREFUSED on ::1 and 127.0.0.1) has no message of its own. */
function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  if (error instanceof AggregateError && error.errors.length > 0) return error.errors.map(describeError).join("; ");
  const code = (error as { code?: unknown }).code;
  const text = error.message || error.name;
  return typeof code === "string" && !text.includes(code) ? `${code}: ${text}` : text;
}

/** The branch TLS files, read once at start; a missing or unusable file is a {@link ConfigError}. */
function readBranchTls(config: Config): BranchTls {
  try {
    return loadBranchTls(config.branchTls);
  } catch (error) {
    throw new ConfigError(`invalid configuration:\n  ${(error as Error).message}`);
  }
}

/** The branch signing keys, watched for changes; undefined when signing is off. A key set that cannot be read fails the start. */
function openSigningKeys(config: Config, logger: Logger): SigningKeyRing | undefined {
  if (!signingEnabled(config.branchSigning)) return undefined;
  try {
    return new SigningKeyRing(config.branchSigning, logger);
  } catch (error) {
    throw new Error(`cannot load the branch signing keys (branchSigning): ${(error as Error).message}`, { cause: error });
  }
}

export interface CoordinatorOptions {
  /**
   * Set in a worker of a cluster (docs/operations.md#workers): the IPC channel to the primary,
   * which hears when this coordinator listens and sums every worker's metrics for a scrape.
   */
  readonly clusterPrimary?: { send(message: WorkerMessage): void };
}

/** The composition root: wires config, store, engine, cron and API together. */
export async function createCoordinator(config: Config, logger: Logger, options: CoordinatorOptions = {}): Promise<Coordinator> {
  const branchTls = readBranchTls(config);
  if (!branchTls.rejectUnauthorized) logger.warn("branchTls.rejectUnauthorized is false: branch calls over TLS accept any certificate (docs/security.md#tls-for-branch-calls)");
  const timing = timingOf(config);
  const clock = new AdjustableClock();
  // Before the store: a key set that cannot be read fails the start with nothing to close.
  const signingKeys = openSigningKeys(config, logger);
  const store = await openMigratedStore(config, logger).catch((error: unknown) => {
    signingKeys?.close();
    throw error;
  });
  const crash = new CrashPoints();
  const metrics = new CoordinatorMetrics(VERSION);
  const primary = options.clusterPrimary;
  const link = primary ? new WorkerLink(metrics.registries(), (message) => primary.send(message)) : undefined;
  if (link) metrics.aggregateWith(() => link.clusterMetrics());
  const urlPolicy = new UrlPolicy(config.branchUrls);
  const branchLimits = { connections: config.overload.branchConnections, queue: config.overload.branchQueue };
  const signer = signingKeys ? new BranchSigner(signingKeys, () => clock.now()) : undefined;
  const callOptions = { echoBodies: config.echoBranchBodies, ...(signer ? { signer } : {}) };
  // With the URL policy on, the clients connect to the addresses that passed it (docs/security.md#pinned-addresses).
  const resolve = urlPolicy.active ? (host: string) => urlPolicy.connectAddresses(host) : undefined;
  const connect = { tls: branchTls, ...(resolve ? { resolve } : {}) };
  const invoker = metrics.meter(new DispatchInvoker({
    http: new HttpInvoker(config.strictResults, branchLimits, callOptions, connect),
    "json-rpc": new JsonRpcInvoker(config.strictResults, branchLimits, callOptions, connect),
    grpc: new GrpcInvoker({ limits: branchLimits, ...connect, ...(signer ? { signer } : {}) }),
  }, urlPolicy));
  const executor = new Executor({
    store, invoker, clock, timing, processors: createProcessors(timing), logger, crash, random: Math.random,
    lease: { leaseMs: timing.retryInterval, marginMs: config.leaseMargin * 1000 },
    onBackoff: alertWebhook(config.alertWebhook, config.alertRetryLimit, timing.requestTimeout, logger),
    // ok unless a branch answered an error or FAILURE, or another writer won (dtm: Process returned no error)
    onPassEnd: (trans, result) => metrics.passDone(trans.transType, result.lastError === undefined && !result.lostRace, (clock.now() - trans.createTime) / 1000),
  });
  const topics = new TopicService(store, clock, urlPolicy);
  const tokens = new ClaimTokens({ deferBranchResults: config.deferBranchResults });
  const admission = new PassAdmission(config.overload, () => executor.inFlight);
  const service = new TransService({
    store, executor, clock, timing, logger, topics, admission, newToken: () => tokens.next(),
    limits: { maxBranches: config.maxBranches, maxPayloadBytes: config.maxPayloadBytes, urlPolicy },
  });
  // The cron claims no more than there are free pass slots (docs/overload.md).
  const cron = new RecoveryLoop(store, executor, clock, {
    idleMs: config.cronInterval * 1000,
    leaseMs: timing.retryInterval,
    batchSize: config.cronBatchSize,
    concurrency: config.cronConcurrency,
    newToken: () => tokens.next(),
    gate: admission,
  }, logger);
  const retention = config.retention.finishedAge > 0
    ? new RetentionLoop(store, clock, {
      finishedAgeMs: config.retention.finishedAge * 1000,
      intervalMs: config.retention.interval * 1000,
      batchSize: config.retention.batchSize,
      batchPauseMs: config.retention.batchPause * 1000,
    }, logger, (batch) => metrics.retentionDone(batch.deleted, batch.pruned))
    : undefined;
  const auth = new Authenticator(config.auth.tokens);
  const grpc = new GrpcApi({ service, topics, logger, metrics, auth });
  const http = buildHttpApp({
    service, topics, store, logger, maxBodyBytes: config.maxBodyBytes, version: VERSION, metrics, auth, admission,
    ...(config.testControl ? { testControl: { clock, cron, crash, settle: () => executor.drain(), ...(retention ? { retention } : {}) } } : {}),
  });

  return {
    config, http, grpc, store, cron, retention, service, clock,
    async start() {
      logger.info({ config: redactConfig(config) }, "dtx starting");
      await http.listen({ port: config.httpPort, host: config.host });
      const grpcPort = await grpc.listen(config.host, config.grpcPort);
      cron.start();
      retention?.start();
      const address = http.server.address();
      const httpPort = typeof address === "object" && address ? address.port : config.httpPort;
      logger.info({ httpPort, grpcPort, store: config.store.driver, testControl: config.testControl, auth: auth.enabled, branchSigningKeyId: signingKeys?.active.id ?? "off" }, "dtx listening");
      link?.listening(httpPort, grpcPort);
      return { httpPort, grpcPort };
    },
    async stop() {
      await Promise.all([cron.stop(), retention?.stop()]);
      await Promise.all([http.close(), grpc.close(GRPC_SHUTDOWN_GRACE_MS)]);
      await executor.drain();
      await invoker.close();
      signingKeys?.close();
      await store.close();
    },
  };
}
