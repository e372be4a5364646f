/**
 * The network stores of the outage tests, each in an area of its own (./store-areas.ts), reached
 * through a TcpProxy (./tcp-proxy.ts): where the real server is, and the coordinator's `store`
 * config for a URL rewritten to the proxy.
 */
import type { ConfigInput } from "../../server/src/config.ts";
import { testServiceUrls } from "./services.ts";
import { MysqlArea, PgArea, RedisArea } from "./store-areas.ts";

export interface OpenedOutageStore {
  /** The `store` config for the coordinator, with `proxied` applied to the store URL. */
  store(proxied: (url: string) => string): NonNullable<ConfigInput["store"]>;
  close(): Promise<void>;
}

export interface OutageStore {
  name: string;
  /** Host and port of the real server. */
  target(): { host: string; port: number };
  open(label: string): Promise<OpenedOutageStore>;
}

function hostPort(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port) };
}

export const OUTAGE_STORES: readonly OutageStore[] = [
  {
    name: "postgres",
    target: () => hostPort(testServiceUrls().pg),
    async open(label) {
      const area = new PgArea(label);
      await area.open();
      return { store: (p) => ({ driver: "postgres", url: p(area.url), schema: area.schema }), close: () => area.close() };
    },
  },
  {
    name: "mariadb",
    target: () => hostPort(testServiceUrls().mysql),
    async open(label) {
      const area = new MysqlArea(label);
      await area.open();
      return { store: (p) => ({ driver: "mysql", url: p(area.url) }), close: () => area.close() };
    },
  },
  {
    name: "redis",
    target: () => hostPort(testServiceUrls().redis),
    async open(label) {
      const area = new RedisArea(label);
      await area.open();
      return { store: (p) => ({ driver: "redis", url: p(area.url), prefix: area.prefix }), close: () => area.close() };
    },
  },
];
