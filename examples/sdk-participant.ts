/**
 * The participant the SDK examples call: a fastify app built with the SDK's handler helpers.
 * Every endpoint logs its call; `?fail=1` in a URL makes it answer FAILURE (HTTP 409).
 */
import Fastify from "fastify";
import type { FastifyRequest } from "fastify";
import type { AddressInfo } from "node:net";
import { DtxFailure, branchInfoFromQuery, fastifyHandler, fastifyJsonParser } from "../sdk/src/index.ts";

export interface DemoParticipant {
  /** e.g. `http://127.0.0.1:PORT/api` */
  readonly api: string;
  close(): Promise<void>;
}

/** Starts the demo participant on 127.0.0.1 and a free port. `extra` adds routes. */
export async function startDemoParticipant(extra: (app: ReturnType<typeof Fastify>) => void = () => undefined): Promise<DemoParticipant> {
  const app = Fastify({ logger: false });
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, fastifyJsonParser);
  app.route({
    method: ["GET", "POST"],
    url: "/api/:name",
    handler: fastifyHandler(async (req: FastifyRequest) => {
      const query = req.query as Record<string, string>;
      const info = branchInfoFromQuery(query);
      console.log(`  participant: ${(req.params as { name: string }).name} gid=${info.gid} branch=${info.branchId} op=${info.op} body=${JSON.stringify(req.body ?? null)}`);
      if (query["fail"] === "1") throw new DtxFailure("the participant refused");
    }),
  });
  extra(app);
  await app.listen({ port: 0, host: "127.0.0.1" });
  const { port } = app.server.address() as AddressInfo;
  return { api: `http://127.0.0.1:${port}/api`, close: () => app.close() };
}

/** The coordinator the examples use: `DTX_SERVER`, or a local `npm start`. */
export const DTX_SERVER = process.env["DTX_SERVER"] ?? "http://127.0.0.1:36789/api/dtmsvr";
