export { createOutboxRelay } from './relay.ts'
export type { OutboxRelay, OutboxRelayOptions } from './relay.ts'
export { OutboxSource, OUTBOX_LEASE_COLLECTION } from './source.ts'
export type { OutboxSourceOptions, OutboxLeaseDoc } from './source.ts'
