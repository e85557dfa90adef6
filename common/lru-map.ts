/**
 * A Map bounded to `capacity` entries that evicts the least recently used ones: a Map keeps
 * insertion order, so a read or write moves its entry to the end (delete + set) and eviction takes
 * from the front. Used for per-caller state that a flood of distinct callers must not grow without
 * bound (rate-limit buckets, verified API keys), where clearing everything at a threshold would
 * also forget the state of the callers that matter (a flooding address's empty bucket).
 */
export class LruMap<K, V> {
  readonly #map = new Map<K, V>()

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError(`LruMap capacity must be a positive integer, got ${capacity}`)
  }

  get size(): number {
    return this.#map.size
  }

  /** The value, now the most recently used. */
  get(key: K): V | undefined {
    const value = this.#map.get(key)
    if (value !== undefined) {
      this.#map.delete(key)
      this.#map.set(key, value)
    }
    return value
  }

  /** The value without making it more recent. */
  peek(key: K): V | undefined {
    return this.#map.get(key)
  }

  /** Stores the value as the most recent, evicting the least recently used beyond capacity. */
  set(key: K, value: V): this {
    this.#map.delete(key)
    this.#map.set(key, value)
    while (this.#map.size > this.capacity) this.#map.delete(this.#map.keys().next().value as K)
    return this
  }

  delete(key: K): boolean {
    return this.#map.delete(key)
  }

  /** Entries from the least to the most recently used. */
  entries(): IterableIterator<[K, V]> {
    return this.#map.entries()
  }

  keys(): IterableIterator<K> {
    return this.#map.keys()
  }
}
