/**
 * The relay of the deal and lead registries (control-plane/deals/): their steps' events wait in
 * `deal_outbox` (one document each, written with the step) until the broker acknowledged them, then
 * are deleted; one relay sends at a time (its lease `deals` in `outbox_relay_lease`), woken at once by
 * a write in this process. Values are stored as JSON and converted to what avsc encodes as they leave
 * (control-plane/deals/contract.ts). Per deal (and lead) the events leave in version order.
 */
import type { Db } from 'mongodb'
import type { Kafka } from '../../common/kafka/index.ts'
import type { Logger } from '../../common/logger.ts'
import { convertEntry, type DealRegistry } from '../../control-plane/deals/index.ts'
import { COLLECTION_NAMES } from '../../control-plane/store.ts'
import type { AvroSerde } from '../../schemas/serde/serde.ts'
import { TOPICS } from '../../schemas/topics.ts'
import { createOutboxRelay, type OutboxRelay } from './relay.ts'

export interface DealRelayOptions {
  kafka: Kafka
  serde: AvroSerde
  db: Db
  logger: Logger
  registry: DealRegistry
  pollMs: number
  leaseTtlMs: number
  holderId?: string
}

export interface DealRelays {
  relays: OutboxRelay[]
  stop(): Promise<void>
}

export async function startDealRelays(o: DealRelayOptions): Promise<DealRelays> {
  const relay = createOutboxRelay({
    kafka: o.kafka,
    serde: o.serde,
    db: o.db,
    logger: o.logger,
    pollMs: o.pollMs,
    leaseTtlMs: o.leaseTtlMs,
    topics: [TOPICS.dealRegistrations, TOPICS.leads],
    collection: COLLECTION_NAMES.dealOutbox,
    leaseId: 'deals',
    convert: convertEntry,
    // deal_outbox holds only what is pending: read whole, deleted once acknowledged
    deleteSent: true,
    ...(o.holderId !== undefined ? { holderId: o.holderId } : {}),
  })
  await relay.start()
  const off = o.registry.onWrite(() => relay.nudge())
  return {
    relays: [relay],
    async stop() {
      off()
      await relay.stop()
    },
  }
}
