import Fastify, { LogController } from "fastify";
import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import type { Logger } from "../../logger.ts";
import { apiLabel } from "../../metrics.ts";
import type { CoordinatorMetrics } from "../../metrics.ts";
import type { TopicService } from "../../service/topic-service.ts";
import type { PassAdmission } from "../../service/pass-admission.ts";
import type { TransService } from "../../service/trans-service.ts";
import { jsonRpcRoute } from "./route-json-rpc.ts";
import type { Store } from "../../store/store.ts";
import type { Authenticator } from "../auth.ts";
import { HTTP_ROUTE_ROLES } from "../auth.ts";
import { clip } from "../../core/echo.ts";
import { clientErrorHandler } from "./client-error.ts";
import { authRefusal, errorHandler } from "./error-map.ts";
import { adminRoutes } from "./routes-admin.ts";
import { dtmsvrRoutes } from "./routes-dtmsvr.ts";
import type { TestControlDeps } from "./routes-test-control.ts";
import { testControlRoutes } from "./routes-test-control.ts";

export interface HttpAppDeps {
  service: TransService;
  topics: TopicService;
  store: Store;
  logger: Logger;
  maxBodyBytes: number;
  version: string;
  /** Serves `GET /api/metrics` and counts every request when present. */
  metrics?: CoordinatorMetrics;
  /** Present only when the test-control API is enabled. */
  testControl?: TestControlDeps;
  /** Bearer-token checks (off when it holds no token, or is absent). */
  auth?: Authenticator;
  /** When present, writes are refused before their body is read while the coordinator is overloaded. */
  admission?: PassAdmission;
}

/** Routes that create or advance work, refused under overload (docs/overload.md); reads stay served. */
const OVERLOAD_REFUSED_ROUTES = new Set(["submit", "prepare", "registerBranch", "registerXaBranch", "registerTccBranch", "prepareWorkflow"].map((r) => `/api/dtmsvr/${r}`));

/** Builds the HTTP app without listening, so tests can also drive it with inject(). */
export function buildHttpApp(deps: HttpAppDeps): FastifyInstance {
  const app = Fastify({
    // pino's Logger is a FastifyBaseLogger; the cast only drops pino's extra generic parameters.
    loggerInstance: deps.logger as FastifyBaseLogger,
    // Per-request logs would dominate CPU at thousands of sagas/s; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: deps.maxBodyBytes,
    // Slow or idle clients are cut off instead of holding sockets forever.
    connectionTimeout: 60_000,
    keepAliveTimeout: 65_000,
    requestTimeout: 120_000,
    return503OnClosing: true,
    // Errors fastify raises before routing (a malformed URL) get our JSON body and code too.
    frameworkErrors: errorHandler(deps.logger),
    // ...and so do requests Node's HTTP parser refuses (431, malformed request lines).
    clientErrorHandler: clientErrorHandler(deps.logger),
  });
  // Only JSON is accepted (a text/plain body is a 415, not a parse attempt).
  app.removeContentTypeParser("text/plain");
  app.setErrorHandler(errorHandler(deps.logger));
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({ message: `no route ${clip(req.method)} ${clip(req.url.split("?")[0] ?? "")}`, code: "ROUTE_NOT_FOUND" });
  });

  // Who may call each route is decided in one table (auth.ts); a route missing there is a bug.
  app.addHook("onRoute", (route) => {
    if (!Object.hasOwn(HTTP_ROUTE_ROLES, route.url)) throw new Error(`no access rule for HTTP route ${route.url} in HTTP_ROUTE_ROLES`);
  });
  const { auth } = deps;
  if (auth?.enabled) {
    // onRequest runs before the body is read or any handler runs: a refused request writes nothing.
    app.addHook("onRequest", (req, reply, done) => {
      const url = req.routeOptions.url;
      if (url === undefined) return done(); // no route: the 404 handler answers
      const result = auth.check(req.headers.authorization, HTTP_ROUTE_ROLES[url] ?? "admin");
      if (result.ok) return done();
      const { status, headers, body } = authRefusal(result.code, result.message);
      void reply.status(status).headers(headers).send(body);
    });
  }

  const { admission } = deps;
  if (admission) {
    // Before the body is read: a flood of refused requests costs no parsing. The service checks again.
    app.addHook("onRequest", (req, _reply, done) => {
      if (!OVERLOAD_REFUSED_ROUTES.has(req.routeOptions.url ?? "")) return done();
      try {
        admission.refuseIfOverloaded();
        done();
      } catch (error) {
        done(error as Error);
      }
    });
  }

  const { metrics } = deps;
  if (metrics) {
    // The route's pattern, not the raw URL: scanners probing random paths (404s, label "") must
    // not create a series each. Patterns are few, so each label is worked out once.
    const labels = new Map<string, string>();
    const labelOf = (route: string): string => {
      let label = labels.get(route);
      if (label === undefined) labels.set(route, (label = apiLabel(route)));
      return label;
    };
    app.addHook("onResponse", (req, reply, done) => {
      metrics.requestDone("http", labelOf(req.routeOptions.url ?? ""), reply.statusCode < 400, reply.elapsedTime / 1000);
      done();
    });
    app.get("/api/metrics", async (_req, reply) => reply.type(metrics.contentType).send(await metrics.text()));
  }

  app.all("/api/ping", async () => ({ msg: "pong" }));
  app.get("/api/dtx/health", async () => {
    await deps.store.ping();
    return { status: "ok" };
  });
  void app.register(dtmsvrRoutes(deps.service, deps.topics, deps.version), { prefix: "/api/dtmsvr" });
  void app.register(jsonRpcRoute(deps.service, deps.logger));
  void app.register(adminRoutes());
  if (deps.testControl) void app.register(testControlRoutes(deps.testControl), { prefix: "/api/dtx/test" });
  return app;
}
