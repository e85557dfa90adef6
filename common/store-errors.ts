/**
 * The one test for a MongoDB duplicate-key error (E11000; 11001 from old servers), from MongoDB and
 * FerretDB alike: a unique index refused an insert or an upsert. Claims (leases), idempotency keys
 * and stale-version guards all decide on it.
 */
export function isDuplicateKey(err: unknown): boolean {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined
  return code === 11000 || code === 11001
}
