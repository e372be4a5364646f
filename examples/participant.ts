/**
 * A tiny sample participant ("branch" service) for the README's curl example.
 *
 *   npm run example:participant        # listens on 127.0.0.1:8081 (PORT, HOST override)
 *
 * Every endpoint answers 200 {"dtm_result":"SUCCESS"} and logs the call as one line.
 */
import Fastify from "fastify";

const port = Number(process.env["PORT"] ?? 8081);
// In a container (docker-compose.yml's cluster profile) it must listen on 0.0.0.0.
const host = process.env["HOST"] ?? "127.0.0.1";
const app = Fastify({ logger: false });

// Keep the body as raw text whatever its content type (and accept an empty JSON body).
app.removeAllContentTypeParsers();
app.addContentTypeParser("*", { parseAs: "string" }, (_req, body, done) => done(null, body));

for (const name of ["TransOut", "TransOutRevert", "TransIn", "TransInRevert"]) {
  app.post<{ Querystring: Record<string, string | undefined> }>(`/api/${name}`, async (req, reply) => {
    const { gid = "", branch_id = "", op = "" } = req.query;
    const body = typeof req.body === "string" ? req.body : "";
    console.log(`${req.method} /api/${name} gid=${gid} branch_id=${branch_id} op=${op} body=${body}`);
    return reply.code(200).header("content-type", "application/json").send('{"dtm_result":"SUCCESS"}');
  });
}

try {
  await app.listen({ port, host });
  console.log(`sample participant listening on http://${host}:${port}/api`);
} catch (err) {
  console.error(err);
  process.exit(1);
}
