/**
 * Token buckets per caller (an API key, a client address, a key prefix): `burst` tokens at most,
 * refilled at `perSecond`. The map of buckets is bounded (least recently used evicted first), so a
 * flood of distinct callers costs a fixed amount of memory and never resets the buckets of the
 * callers that are being limited (they were used most recently).
 */
import { LruMap } from './lru-map.ts'

export interface RateLimit {
  /** Tokens added per second (0: no limit). */
  perSecond: number
  /** Tokens a bucket holds at most: what a caller may spend at once. */
  burst: number
}

/** Buckets tracked at most per TokenBuckets by default (about 100 bytes each). */
export const MAX_TRACKED_BUCKETS = 50_000

interface Bucket {
  tokens: number
  at: number
}

export class TokenBuckets {
  readonly #buckets: LruMap<string, Bucket>

  constructor(
    readonly limit: RateLimit,
    capacity = MAX_TRACKED_BUCKETS,
  ) {
    this.#buckets = new LruMap(capacity)
  }

  get size(): number {
    return this.#buckets.size
  }

  /**
   * Takes `cost` tokens when the bucket holds at least one: 0 when allowed, else the seconds to wait.
   * A cost above the balance is charged whole (the balance goes negative and refills before the next
   * request is allowed), so a batch is never refused for its size alone; cost 0 only checks.
   */
  take(id: string, cost = 1, now = Date.now()): number {
    const { perSecond, burst } = this.limit
    if (perSecond <= 0) return 0
    const b = this.#buckets.get(id)
    if (b) this.#refill(b, now)
    const tokens = b ? b.tokens : burst
    if (tokens < 1) return this.#wait(tokens)
    if (cost > 0) {
      if (b) b.tokens -= cost
      else this.#buckets.set(id, { tokens: burst - cost, at: now })
    }
    return 0
  }

  /** Gives tokens back (a request that turned out not to count), never above the burst. */
  refund(id: string, cost = 1, now = Date.now()): void {
    const b = this.#buckets.peek(id)
    if (!b) return
    this.#refill(b, now)
    b.tokens = Math.min(this.limit.burst, b.tokens + cost)
  }

  /** The balance of `id` now (the burst for a caller without a bucket; negative while in debt). */
  tokens(id: string, now = Date.now()): number {
    const b = this.#buckets.peek(id)
    return b ? this.#balance(b, now) : this.limit.burst
  }

  /** Seconds until `id` may send again (0: now). */
  waitSeconds(id: string, now = Date.now()): number {
    const tokens = this.tokens(id, now)
    return tokens >= 1 || this.limit.perSecond <= 0 ? 0 : this.#wait(tokens)
  }

  #wait(tokens: number): number {
    return Math.max(1, Math.ceil((1 - tokens) / this.limit.perSecond))
  }

  #balance(b: Bucket, now: number): number {
    return Math.min(this.limit.burst, b.tokens + (Math.max(0, now - b.at) / 1000) * this.limit.perSecond)
  }

  #refill(b: Bucket, now: number): void {
    b.tokens = this.#balance(b, now)
    b.at = now
  }
}
