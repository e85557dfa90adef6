/**
 * The sink half of the connector contract (docs/architecture.md, after Kafka Connect's SinkTask): a sink
 * delivers records to one partner's system; the runtime owns positions, retries, dead letters and
 * the delivery log. `put` resolves when the partner confirmed every record and throws a classified
 * error from common/errors.ts otherwise.
 */
import type { Logger } from '../../common/logger.ts'
import type { SubscriptionDoc } from '../../control-plane/types.ts'

/** One decoded, filtered and projected event on its way to one subscription. */
export interface SinkRecord<V = unknown> {
  topic: string
  partition: number
  /** Kafka offset as kafkajs gives it (a decimal string). */
  offset: string
  /** Kafka record key as text; per-key order is kept for every subscription. Null: ordered per partition. */
  key: string | null
  value: V
  headers: Record<string, string>
  /** Stable id of the event: the idempotency key sent on every attempt (webhook-id). */
  eventId: string
  /** e.g. "inventory.level.changed" */
  eventType: string
  /** When the event happened (ms since the epoch). */
  timestamp: number
  /** When Kafka took the record (its timestamp in ms; absent outside Kafka): what freshness counts from. */
  appendedAt?: number
  /** The field paths the value was projected to by the grants and the subscription (absent: every field). */
  fields?: readonly string[]
}

/** What one attempt at the partner looked like, for the delivery log. */
export interface AttemptReport {
  eventId: string
  /** http(s) URL or another description of the destination; never carries secrets. */
  target: string
  startedAt: number
  durationMs: number
  /** HTTP status when an answer arrived. */
  status?: number
  /** The first bytes of the answer, for the delivery log (text, at most about 1 KB). */
  responseExcerpt?: string
  outcome: 'delivered' | 'retriable' | 'rejected' | 'disabled' | 'failed'
  /** Error code (common/errors.ts) when it did not succeed. */
  code?: string
  message?: string
}

export interface SinkContext {
  subscriptionId: string
  partnerId?: string
  logger: Logger
  /** Called once per attempt at the partner, success or not. */
  onAttempt?: (report: AttemptReport) => void
}

export interface PutOptions {
  /** Aborts in-flight calls (subscription removed, worker stopping); the error is then retriable. */
  signal?: AbortSignal
}

export interface SinkConnector<C, V = unknown> {
  readonly kind: 'sink'
  /**
   * True for a sink that projects state per key: it receives tombstones (keyed records with a null
   * value, `value: null`) and deletes the key. Other sinks never see them (they are dead-lettered).
   */
  readonly acceptsTombstones?: boolean
  /**
   * True for a sink whose destination is itself an ordered, durable record of what it received (a
   * Kafka topic: offsets, timestamps, the event id in the headers): its successful deliveries are not
   * written to the delivery log again (failures, retries and dead letters are, as for every sink).
   */
  readonly recordsDeliveries?: boolean
  /**
   * Records of different keys it sends together in one call at most (a batching sink: REST with a
   * batchSize): the worker lets at least this many keys be in flight at once, so that a batch can fill.
   */
  readonly batchSize?: number
  start(config: C, ctx: SinkContext): Promise<void>
  /**
   * Resolve = every record delivered; throw = a classified error (DataError, RetriableError, PartnerRejectedError,
   * EndpointDisabledError).
   */
  put(records: SinkRecord<V>[], options?: PutOptions): Promise<void>
  stop(): Promise<void>
}

/** Builds and starts the sink of a subscription (the runtime owns positions, retries and dead letters). */
export type SinkFactory = (sub: SubscriptionDoc, ctx: SinkContext) => Promise<SinkConnector<unknown>>
