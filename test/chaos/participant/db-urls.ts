/**
 * Where the chaos participants keep their accounts. The world helper (test/chaos/world/databases.ts)
 * re-exports this type; it lives here because the participant was written first.
 */
export interface DbUrls {
  /** e.g. `postgres://postgres@127.0.0.1:PORT/chaos`. */
  postgres: string;
  /** e.g. `mysql://root@127.0.0.1:PORT/chaos` (MariaDB). */
  mysql: string;
  /** e.g. `redis://127.0.0.1:PORT`. */
  redis: string;
}

/** What else the participant's setup, handlers and snapshot need to agree on. */
export interface ParticipantDbOptions {
  /**
   * Prefix of every Redis key (balances and barrier keys), default {@link DEFAULT_REDIS_PREFIX}. A
   * test on the shared Redis passes one of its own.
   */
  redisPrefix?: string;
}

export const DEFAULT_REDIS_PREFIX = "chaos:";
