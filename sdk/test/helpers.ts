/**
 * Shared helpers of the SDK tests: a real coordinator (in-process, random ports) with an SDK
 * client over HTTP and one over gRPC, small fastify participants built with the SDK's handler
 * helpers, and a capture server that records what the SDK sends.
 */
import Fastify from "fastify";
import type { FastifyInstance } from "fastify";
import { createServer } from "node:http";
import type { IncomingMessage, Server } from "node:http";
import type { AddressInfo } from "node:net";
import { DtxClient, fastifyJsonParser } from "../src/index.ts";
import type { ExpressResponseLike } from "../src/index.ts";
import type { TestCoordinator } from "../../test/helpers/coordinator.ts";
import { startCoordinator } from "../../test/helpers/coordinator.ts";

/** A coordinator plus SDK clients for it. */
export interface SdkEnv {
  readonly dtx: TestCoordinator;
  /** SDK client over HTTP. */
  readonly http: DtxClient;
  /** SDK client over gRPC (with `server` too, so `query` works); undefined when the coordinator serves no gRPC. */
  readonly grpc: DtxClient | undefined;
  stop(): Promise<void>;
}

/** Starts a coordinator (SQLite in a temp dir, cron only on demand) and SDK clients for it. */
export async function startSdkEnv(): Promise<SdkEnv> {
  const dtx = await startCoordinator();
  const http = new DtxClient({ server: `${dtx.url}/api/dtmsvr`, timeoutMs: 15_000, branchTimeoutMs: 5_000 });
  const grpcPort = (dtx as { grpcPort?: number }).grpcPort;
  const grpc = grpcPort ? new DtxClient({ grpcServer: `127.0.0.1:${grpcPort}`, server: dtx.url, timeoutMs: 15_000, branchTimeoutMs: 5_000 }) : undefined;
  return {
    dtx,
    http,
    grpc,
    async stop() {
      await http.close();
      await grpc?.close();
      await dtx.stop();
    },
  };
}

/** A fastify app listening on 127.0.0.1 and a free port, with the empty-body-tolerant JSON parser. */
export interface App {
  readonly app: FastifyInstance;
  readonly baseUrl: string;
  close(): Promise<void>;
}

/** Builds a fastify app with `routes`, then listens. */
export async function startApp(routes: (app: FastifyInstance) => void): Promise<App> {
  const app = Fastify({ logger: false });
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, fastifyJsonParser);
  routes(app);
  await app.listen({ port: 0, host: "127.0.0.1" });
  const { port } = app.server.address() as AddressInfo;
  return { app, baseUrl: `http://127.0.0.1:${port}`, close: () => app.close() };
}

/** One request a {@link CaptureServer} received. */
export interface Captured {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly headers: IncomingMessage["headers"];
  readonly body: string;
}

/** A fake coordinator that records requests and answers them with `answer` (default 200 SUCCESS). */
export interface CaptureServer {
  readonly url: string;
  readonly requests: Captured[];
  /** How to answer; a promise that never settles makes the request hang until {@link close}. */
  answer: (req: Captured) => { status: number; body: string } | Promise<{ status: number; body: string }>;
  close(): Promise<void>;
}

/** Starts a {@link CaptureServer}. */
export async function startCaptureServer(): Promise<CaptureServer> {
  const requests: Captured[] = [];
  const capture: CaptureServer = {
    url: "",
    requests,
    answer: () => ({ status: 200, body: '{"dtm_result":"SUCCESS"}' }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://x");
      const captured: Captured = {
        method: req.method ?? "",
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      };
      requests.push(captured);
      void Promise.resolve(capture.answer(captured)).then(({ status, body }) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(body);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const { port } = server.address() as AddressInfo;
  (capture as { url: string }).url = `http://127.0.0.1:${port}`;
  return capture;
}

/** Polls `check` (every 20 ms, up to `timeoutMs`) until it returns true. For states with no event to wait on. */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A unique gid for a test: `<prefix>-<random>`. */
export function gidFor(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
}

/** An express-shaped response that records what a handler sent (express itself is not a dependency). */
export function recordingResponse(): { res: ExpressResponseLike; sent: { status?: number; body?: unknown } } {
  const sent: { status?: number; body?: unknown } = {};
  const res: ExpressResponseLike = {
    status(code) {
      sent.status = code;
      return res;
    },
    json(body) {
      sent.body = body;
      return res;
    },
  };
  return { res, sent };
}
