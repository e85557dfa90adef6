/**
 * The one test for a MongoDB duplicate-key error (E11000; 11001 from old servers), from MongoDB and
 * FerretDB alike: a unique index refused an insert or an upsert. Claims (leases), idempotency keys
 * and stale-version guards all decide on it.
 */
export function isDuplicateKey(err: unknown): boolean {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined
  return code === 11000 || code === 11001
}

const UNAVAILABLE = new Set([
  'MongoNetworkError',
  'MongoNetworkTimeoutError',
  'MongoServerSelectionError',
  'MongoTopologyClosedError',
  'MongoNotConnectedError',
  'PoolClearedError',
  'PoolClearedOnNetworkError',
])

/**
 * The store could not be reached (no server to select, a dropped or closed connection): a moment's
 * outage, not a fault of the request. HTTP answers it with 503 and Retry-After, never 500, so that a
 * client retrying 503s keeps its events (the chaos run saw ingestion answer 500 while the store was away).
 */
export function isStoreUnavailable(err: unknown): boolean {
  for (
    let e: unknown = err, depth = 0;
    e && typeof e === 'object' && depth < 4;
    e = (e as { cause?: unknown }).cause, depth++
  ) {
    if (UNAVAILABLE.has((e as { name?: string }).name ?? '')) return true
  }
  return false
}

/** The 503 answer's Retry-After for a store outage, in seconds. */
export const STORE_RETRY_AFTER_SECONDS = 5
