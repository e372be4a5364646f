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
