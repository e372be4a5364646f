import { pino } from "pino";
import type { Logger } from "pino";

export type { Logger };

/** JSON logs on stdout. Header values that carry credentials never reach the log. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: "dtx" },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ["req.headers.authorization", "req.headers.cookie", "headers.authorization", "headers.cookie", "*.password"],
      censor: "***",
    },
  });
}

/**
 * A URL fit for a log line: no user info and no query string, either of which may carry
 * credentials. gRPC targets (`host:port/pkg.Service/Method`) keep their host and method.
 */
export function urlForLog(url: string): string {
  if (/^https?:\/\//i.test(url)) {
    try {
      const u = new URL(url);
      return `${u.protocol}//${u.host}${u.pathname}`;
    } catch {
      // not parseable: fall through to the plain cut below
    }
  }
  return (url.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^@/]*@/i, "$1").split("?")[0] ?? "");
}
