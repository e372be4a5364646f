import { createServer } from "node:net";
import type { Server as NetServer } from "node:net";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import type { sendUnaryData, ServerUnaryCall, ServiceDefinition, UntypedServiceImplementation } from "@grpc/grpc-js";
import type { MethodDefinition, PackageDefinition } from "@grpc/proto-loader";
import { HealthImplementation } from "grpc-health-check";
import type { Logger } from "../../logger.ts";
import type { Authenticator, Role } from "../auth.ts";
import { GRPC_METHOD_ROLES } from "../auth.ts";
import { apiLabel } from "../../metrics.ts";
import type { CoordinatorMetrics } from "../../metrics.ts";
import type { TopicService } from "../../service/topic-service.ts";
import type { TransService } from "../../service/trans-service.ts";
import { branchBody, progressesReply, transBody } from "./convert.ts";
import { authRefused, toGrpcError, undecodable } from "./error-map.ts";
import type { DtmBranchRequest, DtmRequest, DtmTopicRequest } from "./proto.ts";
import { loadDtmProto } from "./proto.ts";
import { reflectionService } from "./reflection.ts";

export const DTM_SERVICE = "dtmgimp.Dtm";
/** gRPC's default, kept explicit: a bigger request is answered RESOURCE_EXHAUSTED by grpc-js. */
export const MAX_RECEIVE_MESSAGE_BYTES = 4 * 1024 * 1024;

export interface GrpcApiDeps {
  service: TransService;
  topics: TopicService;
  logger: Logger;
  maxReceiveMessageBytes?: number;
  metrics?: CoordinatorMetrics;
  /** Bearer-token checks on dtmgimp.Dtm (off when it holds no token, or is absent). */
  auth?: Authenticator;
}

type Handler = (request: never) => Promise<unknown>;

/**
 * dtm's gRPC API, `dtmgimp.Dtm` (docs/protocol.md#grpc-api), plus grpc.health.v1 and server reflection. Each RPC
 * decodes its message, converts it to the body the HTTP API would pass, and calls the same
 * service; see {@link toGrpcError} for the status codes.
 *
 * Requests are registered with an identity deserializer and decoded in the handler, so that a
 * malformed message is INVALID_ARGUMENT (grpc-js would answer a failed deserializer INTERNAL).
 */
export class GrpcApi {
  readonly server: Server;
  readonly health = new HealthImplementation({ "": "SERVING", [DTM_SERVICE]: "SERVING" });
  private readonly definition: PackageDefinition;
  private listener: NetServer | undefined;

  constructor(private readonly deps: GrpcApiDeps) {
    this.definition = loadDtmProto();
    this.server = new Server({
      "grpc.max_receive_message_length": deps.maxReceiveMessageBytes ?? MAX_RECEIVE_MESSAGE_BYTES,
      // channelz (per-call bookkeeping for grpc's debug service) is not served by dtx.
      "grpc.enable_channelz": 0,
    });
    const { service, topics } = deps;
    const handlers: Record<string, Handler> = {
      NewGid: async () => ({ Gid: service.newGid() }),
      Submit: async (r: DtmRequest) => service.submit(transBody(r)).then(empty),
      Prepare: async (r: DtmRequest) => service.prepare(transBody(r)).then(empty),
      Abort: async (r: DtmRequest) => service.abort(transBody(r)).then(empty),
      RegisterBranch: async (r: DtmBranchRequest) => service.registerBranch(branchBody(r)).then(empty),
      PrepareWorkflow: async (r: DtmRequest) => progressesReply(await service.prepareWorkflow(transBody(r))),
      Subscribe: async (r: DtmTopicRequest) => topics.subscribe(r.Topic, r.URL, r.Remark).then(empty),
      Unsubscribe: async (r: DtmTopicRequest) => topics.unsubscribe(r.Topic, r.URL).then(empty),
      DeleteTopic: async (r: DtmTopicRequest) => topics.deleteTopic(r.Topic).then(empty),
    };
    const methods = this.definition[DTM_SERVICE] as Record<string, MethodDefinition<unknown, unknown>>;
    const definition: Record<string, MethodDefinition<unknown, unknown>> = {};
    const implementation: UntypedServiceImplementation = {};
    for (const [name, method] of Object.entries(methods)) {
      const handler = handlers[name];
      const role = GRPC_METHOD_ROLES[name];
      if (!handler) throw new Error(`no handler for ${DTM_SERVICE}/${name}`);
      if (!role) throw new Error(`no access rule for ${DTM_SERVICE}/${name} in GRPC_METHOD_ROLES`);
      definition[name] = { ...method, requestDeserialize: (bytes: Buffer) => bytes };
      implementation[name] = this.unary(method, handler, role);
    }
    this.server.addService(definition as ServiceDefinition, implementation);
    this.health.addToServer(this.server);
    reflectionService(this.definition).addToServer(this.server);
  }

  private unary(method: MethodDefinition<unknown, unknown>, handler: Handler, role: Role) {
    const { logger, metrics } = this.deps;
    const auth = this.deps.auth?.enabled ? this.deps.auth : undefined;
    const api = apiLabel(method.path);
    return (call: ServerUnaryCall<Buffer, unknown>, raw: sendUnaryData<unknown>): void => {
      const started = metrics ? performance.now() : 0;
      const callback: sendUnaryData<unknown> = metrics
        ? (error, reply) => {
            metrics.requestDone("grpc", api, !error, (performance.now() - started) / 1000);
            raw(error, reply);
          }
        : raw;
      if (auth) {
        const header = call.metadata.get("authorization")[0];
        const result = auth.check(typeof header === "string" ? header : undefined, role);
        if (!result.ok) {
          callback(authRefused(result.code, result.message));
          return;
        }
      }
      let request: unknown;
      try {
        request = method.requestDeserialize(call.request);
      } catch (error) {
        callback(undecodable(method.path, error));
        return;
      }
      handler(request as never)
        .then(
          (reply) => callback(null, reply),
          (error: unknown) => callback(toGrpcError(error, logger, method.path)),
        )
        // Sending the answer can throw (grpc-js serialises and encodes it synchronously); that
        // must be logged, not become an unhandled rejection that ends the process.
        .catch((error: unknown) => logger.error({ err: error, method: method.path }, "could not send a gRPC answer"));
    };
  }

  /**
   * Listens on `host:port` (0 = any free port) and resolves with the bound port.
   *
   * The TCP listener is ours, handing each connection to grpc-js through its connection injector,
   * because grpc-js's own bindAsync leaves Nagle's algorithm on for accepted sockets: with many
   * calls in flight on one HTTP/2 connection, replies then wait for the client's delayed ACKs
   * (measured: about a third less throughput). Go's gRPC servers, which dtm clients are used to,
   * set TCP_NODELAY too.
   */
  listen(host: string, port: number): Promise<number> {
    const injector = this.server.createConnectionInjector(ServerCredentials.createInsecure());
    const listener = createServer({ noDelay: true }, (socket) => injector.injectConnection(socket));
    this.listener = listener;
    return new Promise((resolve, reject) => {
      listener.once("error", reject);
      listener.listen({ host, port }, () => {
        listener.off("error", reject);
        listener.on("error", (error) => this.deps.logger.error({ err: error }, "gRPC listener error"));
        const address = listener.address();
        resolve(typeof address === "object" && address ? address.port : port);
      });
    });
  }

  /**
   * Graceful stop: reports NOT_SERVING, refuses new calls, lets running ones finish, and cancels
   * whatever is still running after `graceMs`.
   */
  close(graceMs: number): Promise<void> {
    this.health.setStatus("", "NOT_SERVING");
    this.health.setStatus(DTM_SERVICE, "NOT_SERVING");
    this.listener?.close();
    this.listener = undefined;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.deps.logger.warn({ graceMs }, "gRPC calls still running at shutdown; cancelling them");
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

function empty(): Record<string, never> {
  return {};
}

