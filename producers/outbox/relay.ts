/**
 * The outbox relay: OutboxSource driven by a SourceRunner, so the events leave through the same
 * path as every other source (Avro in the Confluent wire format under the topic's contracts,
 * CloudEvents headers with the entry's event id, idempotent producer, acks=all, one request in
 * flight, the same batch retried until acknowledged, commit only after the ack).
 */
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import type { Db } from 'mongodb'
import type { Kafka } from '../../common/kafka/index.ts'
import type { Logger } from '../../common/logger.ts'
import { SourceRunner } from '../../connectors/source/runner.ts'
import type { AvroSerde } from '../../schemas/serde/serde.ts'
import { TOPICS, type TopicSpec } from '../../schemas/topics.ts'
import { OutboxSource, type OutboxSourceOptions } from './source.ts'

export interface OutboxRelayOptions extends Partial<
  Pick<
    OutboxSourceOptions,
    'scanBatch' | 'scanMarginMs' | 'fullScanMs' | 'holderId' | 'collection' | 'leaseId' | 'convert' | 'deleteSent'
  >
> {
  kafka: Kafka
  serde: AvroSerde
  db: Db
  logger: Logger
  pollMs: number
  leaseTtlMs: number
  /** Topics the outbox entries may name. Default: partners.profiles. */
  topics?: readonly TopicSpec[]
  producerRetry?: { retries: number; maxRetryTime: number; initialRetryTime?: number }
}

export interface OutboxRelay {
  source: OutboxSource
  runner: SourceRunner<undefined, Record<string, unknown>>
  start(): Promise<void>
  /** Scan now (called after the control plane wrote an outbox entry in this process). */
  nudge(): void
  stop(): Promise<void>
}

export function createOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const source = new OutboxSource({
    db: options.db,
    holderId: options.holderId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
    pollMs: options.pollMs,
    leaseTtlMs: options.leaseTtlMs,
    ...(options.scanBatch !== undefined ? { scanBatch: options.scanBatch } : {}),
    ...(options.scanMarginMs !== undefined ? { scanMarginMs: options.scanMarginMs } : {}),
    ...(options.fullScanMs !== undefined ? { fullScanMs: options.fullScanMs } : {}),
    ...(options.collection !== undefined ? { collection: options.collection } : {}),
    ...(options.leaseId !== undefined ? { leaseId: options.leaseId } : {}),
    ...(options.convert !== undefined ? { convert: options.convert } : {}),
    ...(options.deleteSent !== undefined ? { deleteSent: options.deleteSent } : {}),
  })
  const runner = new SourceRunner<undefined, Record<string, unknown>>(source, undefined, {
    name: options.leaseId ? `outbox-relay-${options.leaseId}` : 'outbox-relay',
    source: '/distributary/control-plane',
    kafka: options.kafka,
    serde: options.serde,
    topics: options.topics ?? [TOPICS.partnerProfiles],
    logger: options.logger,
    maxBatch: 500,
    idleMs: 0, // the source waits itself (interval or nudge)
    // The outbox source reads what is pending from the store, which only its commit advances: polling
    // the next batch while one is in flight would hand out the same entries again.
    overlapPoll: false,
    ...(options.producerRetry ? { producerRetry: options.producerRetry } : {}),
  })
  return {
    source,
    runner,
    start: () => runner.start(),
    nudge: () => source.nudge(),
    stop: () => runner.stop(),
  }
}
