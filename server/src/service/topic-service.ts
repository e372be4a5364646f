import { CoordinatorError } from "../core/errors.ts";
import { renderTime } from "../core/time-limits.ts";
import type { Clock } from "../core/clock.ts";
import type { KvEntry, Store } from "../store/store.ts";
import { checkBranchUrl } from "./request.ts";
import type { UrlPolicy } from "../driver/url-policy.ts";

export const TOPICS_CAT = "topics";
const MAX_CAS_ATTEMPTS = 8;
const TOPIC_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;

export interface Subscriber {
  url: string;
  remark: string;
}

function parseSubscribers(v: string): Subscriber[] {
  try {
    const parsed: unknown = JSON.parse(v || "[]");
    if (!Array.isArray(parsed)) return [];
    return parsed
      .filter((s): s is Record<string, unknown> => s !== null && typeof s === "object")
      .map((s) => ({ url: typeof s["url"] === "string" ? s["url"] : "", remark: typeof s["remark"] === "string" ? s["remark"] : "" }))
      .filter((s) => s.url !== "");
  } catch {
    return [];
  }
}

function checkTopicName(topic: string | undefined): string {
  if (!topic) throw new CoordinatorError("INVALID_REQUEST", "topic is required");
  if (!TOPIC_NAME.test(topic)) throw new CoordinatorError("INVALID_REQUEST", "topic must be 1-128 characters from [A-Za-z0-9_.:-]");
  return topic;
}

/**
 * Topics for msg fan-out (docs/protocol.md#topics), kept in the store's KV under category `topics`. Each
 * change is a version CAS, retried on a lost race, so concurrent subscribers never overwrite
 * each other. Unlike dtm, the subscriber list is read from the store when a msg is prepared, so
 * a new subscription is visible at once.
 */
export class TopicService {
  constructor(private readonly store: Store, private readonly clock: Clock, private readonly urlPolicy?: UrlPolicy) {}

  async subscribe(topicParam: string | undefined, url: string | undefined, remark: string | undefined): Promise<void> {
    const topic = checkTopicName(topicParam);
    if (!url) throw new CoordinatorError("INVALID_REQUEST", "url is required");
    checkBranchUrl(url, "grpc", "url", this.urlPolicy);
    const entry: Subscriber = { url, remark: remark ?? "" };
    await this.change(topic, true, (subs) => {
      if (subs.some((s) => s.url === url)) throw new CoordinatorError("TOPIC_SUBSCRIBER_EXISTS", `${url} already subscribes to topic ${topic}`);
      return [...subs, entry];
    });
  }

  async unsubscribe(topicParam: string | undefined, url: string | undefined): Promise<void> {
    const topic = checkTopicName(topicParam);
    if (!url) throw new CoordinatorError("INVALID_REQUEST", "url is required");
    await this.change(topic, false, (subs) => {
      if (!subs.some((s) => s.url === url)) throw new CoordinatorError("TOPIC_SUBSCRIBER_NOT_FOUND", `${url} does not subscribe to topic ${topic}`);
      return subs.filter((s) => s.url !== url);
    });
  }

  async deleteTopic(topicParam: string | undefined): Promise<void> {
    const topic = checkTopicName(topicParam);
    if (!(await this.store.deleteKV(TOPICS_CAT, topic))) throw new CoordinatorError("TOPIC_NOT_FOUND", `no topic named ${topic}`);
  }

  /** The subscriber URLs of a topic, in subscription order ([] when none). */
  async subscribers(topic: string): Promise<string[]> {
    const entry = await this.store.findKV(TOPICS_CAT, topic);
    return entry ? parseSubscribers(entry.v).map((s) => s.url) : [];
  }

  scanKV(cat: string, position: string, limit: number): Promise<{ kv: KvEntry[]; nextPosition: string }> {
    return this.store.scanKV(cat, position, limit);
  }

  async queryKV(cat: string, key: string): Promise<KvEntry[]> {
    const entry = await this.store.findKV(cat, key);
    return entry ? [entry] : [];
  }

  private async change(topic: string, createIfMissing: boolean, edit: (subs: Subscriber[]) => Subscriber[]): Promise<void> {
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const now = this.clock.now();
      const entry = await this.store.findKV(TOPICS_CAT, topic);
      if (!entry) {
        if (!createIfMissing) throw new CoordinatorError("TOPIC_NOT_FOUND", `no topic named ${topic}`);
        if ((await this.store.createKV(TOPICS_CAT, topic, JSON.stringify(edit([])), now)) === "created") return;
        continue;
      }
      const next = JSON.stringify(edit(parseSubscribers(entry.v)));
      if (await this.store.updateKV(TOPICS_CAT, topic, next, entry.version, now)) return;
    }
    throw new CoordinatorError("INTERNAL", `topic ${topic} kept changing concurrently; retry the request`);
  }
}

export function kvToWire(e: KvEntry): Record<string, unknown> {
  return {
    id: e.id,
    create_time: e.createTime ? renderTime(e.createTime) : null,
    update_time: e.updateTime ? renderTime(e.updateTime) : null,
    cat: e.cat,
    k: e.k,
    v: e.v,
    version: e.version,
  };
}
