import { pino } from "pino";
import type { DestinationStream, Logger, LoggerOptions } from "pino";

export type { Logger };

/**
 * JSON logs on stdout (or `destination`, for tests that read the log). Header values that carry
 * credentials never reach the log.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level,
    base: { service: "dtx" },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ["req.headers.authorization", "req.headers.cookie", "headers.authorization", "headers.cookie", "*.password"],
      censor: "***",
    },
  };
  return destination ? pino(options, destination) : pino(options);
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

/** A URL with a scheme, up to the first character that cannot be part of one in running text. */
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]+/gi;
/** `user:password@` (or `token@`) right after `//`, for what the URL pattern above missed. */
const USERINFO = /\/\/[^\s/@"'<>`]*@/g;

/**
 * Free text (an error message from undici, Node or a participant) with every URL in it cleaned
 * as {@link urlForLog} cleans one: no user info, no query string. Error messages embed the URL
 * they failed on, credentials and all; this is applied to them before they reach a log line or
 * the alert webhook (docs/input-limits.md, "Credentials").
 */
export function redactUrls(text: string): string {
  return text
    .replace(URL_IN_TEXT, (match) => {
      // Punctuation that ends a sentence ("GET http://h/x: connect ...") is not part of the URL.
      const url = match.replace(/[.,;:!?)\]}]+$/, "");
      return urlForLog(url) + match.slice(url.length);
    })
    .replace(USERINFO, "//");
}
