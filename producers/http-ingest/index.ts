export { createHttpIngest } from './router.ts'
export type { HttpIngest, HttpIngestOptions, Principal } from './router.ts'
export { HttpIngestSource } from './source.ts'
export type { HttpIngestSourceConfig } from './source.ts'
// the platform's one Idempotency-Key store (the management API's creates use it too)
export { IdempotencyStore, fingerprint } from '../../common/idempotency.ts'
export type { IdempotencyDoc, StoredResponse, ClaimOutcome } from '../../common/idempotency.ts'
