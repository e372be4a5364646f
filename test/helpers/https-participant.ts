/**
 * A real HTTPS participant on loopback for the TLS tests: the server certificate of a
 * {@link TestPki}, answering every request `200 {"dtm_result":"SUCCESS"}`, recording what it got.
 */
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import type { TestPki } from "./test-pki.ts";

export interface HttpsParticipant {
  /** `https://127.0.0.1:PORT/api` */
  readonly url: string;
  readonly port: number;
  /** Requests received (path with query), with the client certificate's CN when one was shown. */
  readonly seen: { path: string; clientCn: string | undefined }[];
  close(): Promise<void>;
}

/** Starts one; with `mtls` it requires a client certificate the PKI's CA signed. */
export async function startHttpsParticipant(pki: TestPki, mtls = false): Promise<HttpsParticipant> {
  const seen: HttpsParticipant["seen"] = [];
  const server = createServer({
    key: pki.read(pki.serverKey), cert: pki.read(pki.serverCert), ca: pki.read(pki.caCert), requestCert: mtls, rejectUnauthorized: mtls,
  }, (req, res) => {
    const peer = (req.socket as TLSSocket).getPeerCertificate();
    seen.push({ path: req.url ?? "", clientCn: typeof peer.subject?.CN === "string" ? peer.subject.CN : undefined });
    req.resume();
    req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end('{"dtm_result":"SUCCESS"}'));
  });
  server.on("tlsClientError", () => {}); // a refused handshake is what some tests expect
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}/api`,
    port,
    seen,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
