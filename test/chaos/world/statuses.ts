/**
 * The status of every transaction a coordinator's store holds, read page by page through
 * `GET /api/dtmsvr/all` (1000 a page): quiesce polls this instead of querying each gid, so a poll
 * over 10,000 gids costs ten requests, not ten thousand.
 */

const PAGE = 1000;
const REQUEST_TIMEOUT_MS = 10_000;

interface AllPage {
  next_position?: string;
  transactions: Array<{ gid: string; status: string }> | null;
}

/** gid → status of every stored transaction; `maxPages` bounds the walk. */
export async function readStatuses(coordinatorHttpUrl: string, maxPages: number): Promise<Map<string, string>> {
  const statuses = new Map<string, string>();
  let position = "";
  for (let page = 0; page < maxPages; page++) {
    const url = `${coordinatorHttpUrl}/api/dtmsvr/all?limit=${PAGE}${position ? `&position=${encodeURIComponent(position)}` : ""}`;
    const res = await fetch(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    if (res.status !== 200) throw new Error(`GET /api/dtmsvr/all: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
    const body = (await res.json()) as AllPage;
    for (const t of body.transactions ?? []) statuses.set(t.gid, t.status);
    if (!body.next_position || !body.transactions?.length || body.next_position === position) return statuses;
    position = body.next_position;
  }
  throw new Error(`GET /api/dtmsvr/all: more than ${maxPages} pages`);
}

/** Pages enough for `gids` transactions, with room to spare. */
export function pagesFor(gids: number): number {
  return Math.ceil(gids / PAGE) + 5;
}
