/**
 * A Mongo server for tests. With `MONGODB_URI` set, that server is used (it must be a replica set,
 * since the barrier needs transactions). Otherwise this starts the Mongo-compatible stand-in
 * shipped as `@jongodb/memory-server-bin-linux-x64-gnu` as a single-node replica set on a free
 * loopback port. If it cannot start, the caller's test fails: it is never skipped.
 *
 * The stand-in (jongodb 0.1.6) is not faithful, and `connect()` works around what tests trip on:
 * - it does not support the streaming `hello` protocol ("Server ended moreToCome unexpectedly"),
 *   which makes the driver clear its pool and wait ~500 ms for the next heartbeat: clients use
 *   `serverMonitoringMode: "poll"`;
 * - two transactions that commit at the same moment can lose one of them (its commit merges
 *   from a snapshot of the current data taken outside its lock; seen as an acknowledged commit
 *   whose writes are gone): commits from this process's clients are serialized;
 * - a duplicate-key error inside a transaction does not abort the transaction;
 * - concurrent transactions do not conflict when they write (no WriteConflict, lost updates on
 *   one document); a unique-key clash shows at commit, as a closed connection
 *   (MongoNetworkError, UnknownTransactionCommitResult), after which the server session may be
 *   stuck "transaction already in progress": open a new client before retrying;
 * - a commit is not atomic across collections: it applies them one collection at a time, in an
 *   order set by their names, and a unique-key clash in a later one leaves the earlier ones'
 *   writes behind (a duplicate delivery whose barrier insert lost the race still wrote its
 *   business rows whenever the barrier collection came later). So tests run their barrier
 *   transactions through `exclusive()`, which on the stand-in runs them one at a time: duplicate
 *   and racing deliveries are still tested in both orders, but only a real Mongo (MONGODB_URI)
 *   runs them truly at once.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { MongoClient } from "mongodb";
import type { MongoClientOptions } from "mongodb";

export interface TestMongo {
  /** A connection string with `replicaSet=` for the stand-in; `MONGODB_URI` as given otherwise. */
  readonly uri: string;
  /** `jongodb <version>` or `external`. */
  readonly server: string;
  /** True for the stand-in. */
  readonly standIn: boolean;
  /** A connected client with what the server needs (see above); closed by `stop()`. */
  connect(options?: MongoClientOptions): Promise<MongoClient>;
  /**
   * Runs `transaction` (one barrier call: start, writes, commit) alone among this process's
   * `exclusive` calls on the stand-in, whose commits are not atomic (see above); straight away on
   * an external Mongo. A plain function (no `this`): pass it on as it is.
   */
  readonly exclusive: <T>(transaction: () => Promise<T>) => Promise<T>;
  /** Closes the clients from `connect()`, then stops the stand-in. */
  stop(): Promise<void>;
}

/** A queue that runs what it is given one at a time, in the order given. */
function oneAtATime(): <T>(work: () => Promise<T>) => Promise<T> {
  let chain: Promise<unknown> = Promise.resolve();
  return <T>(work: () => Promise<T>): Promise<T> => {
    const run = chain.then(work);
    chain = run.catch(() => undefined);
    return run;
  };
}

/** Commits one at a time across every stand-in client of this process. */
const serialCommit = oneAtATime();
/**
 * Whole transactions one at a time on the stand-in. A separate queue from the commits': a
 * transaction holds this one while its commit waits in the other.
 */
const serialTransaction = oneAtATime();
const runNow = <T>(transaction: () => Promise<T>): Promise<T> => transaction();

function clientFactory(uri: string, standIn: boolean): { connect(options?: MongoClientOptions): Promise<MongoClient>; closeAll(): Promise<void> } {
  const clients = new Set<MongoClient>();
  return {
    async connect(options = {}) {
      const client = new MongoClient(uri, {
        serverSelectionTimeoutMS: 10_000,
        ...(standIn ? { serverMonitoringMode: "poll" as const } : {}),
        ...options,
      });
      if (standIn) {
        const startSession = client.startSession.bind(client);
        client.startSession = ((sessionOptions?: Parameters<MongoClient["startSession"]>[0]) => {
          const session = startSession(sessionOptions);
          const commit = session.commitTransaction.bind(session);
          session.commitTransaction = () => serialCommit(commit);
          return session;
        }) as MongoClient["startSession"];
      }
      clients.add(client);
      await client.connect();
      return client;
    },
    async closeAll() {
      await Promise.allSettled([...clients].map((c) => c.close()));
      clients.clear();
    },
  };
}

const PACKAGE = "@jongodb/memory-server-bin-linux-x64-gnu";
/** The stand-in version these tests were written against; a different one fails loudly. */
export const JONGODB_VERSION = "0.1.6";
const START_TIMEOUT_MS = 30_000;

interface BinPackage {
  version: string;
  jongodb?: { binary?: string; sha256?: string };
}

/** The stand-in's binary, checked against the pinned version and the package's sha256. */
export function jongodbBinary(): { path: string; version: string } {
  const require = createRequire(import.meta.url);
  let manifestPath: string;
  try {
    manifestPath = require.resolve(`${PACKAGE}/package.json`);
  } catch (cause) {
    throw new Error(`${PACKAGE} is not installed (it is a devDependency of dtx; run npm ci). Or set MONGODB_URI to a Mongo replica set.`, { cause });
  }
  const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as BinPackage;
  if (manifest.version !== JONGODB_VERSION) {
    throw new Error(`${PACKAGE} is ${manifest.version}, the tests are pinned to ${JONGODB_VERSION}: check the stand-in's behaviour and update JONGODB_VERSION in test/helpers/mongo.ts`);
  }
  const path = join(dirname(manifestPath), manifest.jongodb?.binary ?? "bin/jongodb");
  if (!existsSync(path)) throw new Error(`${PACKAGE} has no binary at ${path}`);
  const expected = manifest.jongodb?.sha256;
  if (expected) {
    const actual = createHash("sha256").update(readFileSync(path)).digest("hex");
    if (actual !== expected) throw new Error(`${path}: sha256 ${actual} does not match the package's ${expected}`);
  }
  return { path, version: manifest.version };
}

/** Starts the stand-in (or wraps `MONGODB_URI`). */
export async function startMongo(): Promise<TestMongo> {
  const external = process.env["MONGODB_URI"]?.trim();
  if (external) {
    const factory = clientFactory(external, false);
    return { uri: external, server: "external", standIn: false, connect: factory.connect, exclusive: runNow, stop: factory.closeAll };
  }

  const { path, version } = jongodbBinary();
  const child = spawn(path, ["--host=127.0.0.1", "--port=0", "--topology-profile=singleNodeReplicaSet", "--replica-set-name=rs0"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  const keep = (line: string): void => {
    output.push(line);
    if (output.length > 50) output.shift();
  };
  const exited = new Promise<string>((resolve) => {
    child.once("exit", (code, signal) => resolve(signal ?? String(code)));
    child.once("error", (err) => resolve(`spawn error: ${err.message}`));
  });
  const killOnExit = (): void => {
    child.kill("SIGKILL");
  };
  process.once("exit", killOnExit);
  createInterface({ input: child.stderr }).on("line", keep);
  const stdout = createInterface({ input: child.stdout });

  let timer: NodeJS.Timeout | undefined;
  try {
    const uri = await Promise.race([
      new Promise<string>((resolve) => {
        stdout.on("line", (line) => {
          keep(line);
          const m = /^JONGODB_URI=(\S+)/.exec(line.trim());
          if (m?.[1]) resolve(m[1]);
        });
      }),
      exited.then((how) => Promise.reject(new Error(`jongodb ${version} exited (${how}) before printing JONGODB_URI:\n${output.join("\n")}`))),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`jongodb ${version} printed no JONGODB_URI within ${START_TIMEOUT_MS} ms:\n${output.join("\n")}`)), START_TIMEOUT_MS);
      }),
    ]);
    const factory = clientFactory(uri, true);
    return {
      uri,
      server: `jongodb ${version}`,
      standIn: true,
      connect: factory.connect,
      exclusive: serialTransaction,
      async stop() {
        await factory.closeAll();
        process.removeListener("exit", killOnExit);
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill("SIGTERM");
        const hard = setTimeout(() => child.kill("SIGKILL"), 5_000);
        await exited;
        clearTimeout(hard);
      },
    };
  } catch (err) {
    process.removeListener("exit", killOnExit);
    child.kill("SIGKILL");
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
