/**
 * docker-compose.yml's cluster profile: two coordinators on the Postgres service (with the settings
 * scripts/services.sh checks) and the sample participant, all with env the server accepts. No
 * Docker engine runs here, so this checks the file; the image test runs the same image.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { CONFIG_ENV_VARS, loadConfig } from "../../server/src/config.ts";

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  profiles?: string[];
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
}
const compose = parse(readFileSync("docker-compose.yml", "utf8"), { merge: true }) as { services: Record<string, Service> };
const services = compose.services;
const inProfile = (name: string): [string, Service][] => Object.entries(services).filter(([, s]) => s.profiles?.includes(name));

/** What scripts/services.sh requires of PostgreSQL (`setting >= N`), read from the script itself. */
function pgMinimum(setting: string): number {
  const m = new RegExp(`current_setting\\('${setting}'\\)::int >= (\\d+)`).exec(readFileSync("scripts/services.sh", "utf8"));
  if (!m?.[1]) throw new Error(`scripts/services.sh no longer checks ${setting}`);
  return Number(m[1]);
}

describe("docker-compose.yml cluster profile", () => {
  const coordinators = inProfile("cluster").filter(([, s]) => s.environment?.["DTX_STORE_DRIVER"] !== undefined);

  it("runs two coordinators of the image on one Postgres store, each waiting for it", () => {
    expect(coordinators.map(([n]) => n)).toHaveLength(2);
    const urls = new Set<string>();
    for (const [name, s] of coordinators) {
      expect(s.build?.dockerfile, name).toBe("deploy/Dockerfile");
      expect(Object.keys(s.environment ?? {}).filter((k) => !CONFIG_ENV_VARS.includes(k)), name).toEqual([]);
      const config = loadConfig({ ...s.environment }, []);
      expect(config.store.driver).toBe("postgres");
      expect(new URL(config.store.url).hostname).toBe("postgres");
      urls.add(`${config.store.url} ${config.store.schema}`);
      expect(s.depends_on?.["postgres"]?.condition, name).toBe("service_healthy");
    }
    expect(urls.size, "one store shared by both").toBe(1);
  });

  it("gives every service its own host ports", () => {
    const hostPorts = Object.values(services).flatMap((s) => (s.ports ?? []).map((p) => p.split(":")[0]));
    expect(new Set(hostPorts).size).toBe(hostPorts.length);
  });

  it("starts Postgres with the settings scripts/services.sh checks", () => {
    const pg = services["postgres"];
    expect(pg?.profiles).toContain("cluster");
    const args = (pg?.command ?? []).join(" ");
    for (const setting of ["max_prepared_transactions", "max_connections"]) {
      const value = Number(new RegExp(`${setting}=(\\d+)`).exec(args)?.[1]);
      expect(value, setting).toBeGreaterThanOrEqual(pgMinimum(setting));
    }
  });

  it("runs the sample participant from the image, listening on all interfaces", () => {
    const p = services["participant"];
    expect(p?.profiles).toContain("cluster");
    expect(p?.image).toBe(services["dtx"]?.image);
    expect(p?.command).toEqual(["node", "examples/participant.ts"]);
    expect(p?.volumes).toEqual(["./examples/participant.ts:/app/examples/participant.ts:ro"]);
    expect(p?.environment).toMatchObject({ HOST: "0.0.0.0" });
    expect(readFileSync("examples/participant.ts", "utf8")).toContain('process.env["HOST"]');
  });
});
