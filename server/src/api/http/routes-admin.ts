import type { FastifyInstance, FastifyReply } from "fastify";
import { ADMIN_CSS, ADMIN_HTML, ADMIN_JS } from "./admin-page.ts";

/** Only the page's own script, stylesheet and API calls; no inline code, no framing, no forms. */
export const ADMIN_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function send(reply: FastifyReply, contentType: string, body: string): FastifyReply {
  return reply
    .header("content-type", contentType)
    .header("content-security-policy", ADMIN_CSP)
    .header("x-content-type-options", "nosniff")
    .header("referrer-policy", "no-referrer")
    .header("cache-control", "no-cache")
    .send(body);
}

/** The built-in admin view (docs/protocol.md#admin-metrics-and-health): `/` leads to `/admin/`, which uses the /api/dtmsvr API. */
export function adminRoutes() {
  return async (app: FastifyInstance): Promise<void> => {
    app.get("/", async (_req, reply) => reply.redirect("/admin/", 302));
    app.get("/admin", async (_req, reply) => reply.redirect("/admin/", 302));
    app.get("/admin/", async (_req, reply) => send(reply, "text/html; charset=utf-8", ADMIN_HTML));
    app.get("/admin/app.js", async (_req, reply) => send(reply, "text/javascript; charset=utf-8", ADMIN_JS));
    app.get("/admin/style.css", async (_req, reply) => send(reply, "text/css; charset=utf-8", ADMIN_CSS));
  };
}
