import { request } from "undici";
import type { Logger } from "../logger.ts";
import { redactUrls, urlForLog } from "../logger.ts";
import type { BackoffEvent } from "../core/types.ts";

/**
 * dtm's alert webhook (docs/protocol.md#result-mapping and docs/protocol.md#retries): once a trans's retry interval has doubled
 * `limit` times, each further backoff POSTs `{branch, error, gid, retry_count, status}` to the
 * configured URL, so stuck transactions reach a human. Delivery is best effort: failures are logged.
 */
export function alertWebhook(url: string, limit: number, timeoutMs: number, logger: Logger): (event: BackoffEvent) => void {
  return (event) => {
    if (!url || event.retryCount < limit) return;
    // The receiver is a chat or paging tool, not a vault: no credentials from the branch URL,
    // neither in the URL itself nor in the error text that quotes it (docs/input-limits.md).
    const body = JSON.stringify({ branch: urlForLog(event.branchUrl), error: redactUrls(event.error), gid: event.gid, retry_count: event.retryCount, status: event.status });
    request(url, { method: "POST", headers: { "content-type": "application/json" }, body, headersTimeout: timeoutMs, bodyTimeout: timeoutMs })
      .then((res) => res.body.dump())
      .catch((error: unknown) => logger.warn({ gid: event.gid, err: error }, "alert webhook delivery failed"));
  };
}
