/**
 * The delivery queue's model (delivery-queue.ts): what its API takes and reports (a subscription's
 * options, the events, stats and positions), and what it keeps per subscription: lanes of entries,
 * one per key, and per topic-partition the track of positions not done yet.
 */
import { setMaxListeners } from 'node:events'
import type { EndpointDisabledReason } from '../../common/errors.ts'
import type { Logger } from '../../common/logger.ts'
import { ATTR, eventContext, kafkaAttributes, SpanKind, startSpan, type Span } from '../../common/tracing.ts'
import type { RetryPolicy } from '../retry.ts'
import type { Fifo } from './fifo.ts'
import type { SinkRecord } from './types.ts'

export type DeliverFn = (record: SinkRecord, info: { attempt: number; signal: AbortSignal }) => Promise<void>

/** How `inject` delivers a record (instead of the subscription's deliver function and policy). */
export interface InjectOptions {
  deliver?: DeliverFn
  policy?: RetryPolicy
  /** Refuse (null) when its lane holds records: they are newer versions of its key. */
  ifLatest?: boolean
}

/** The lane of a record: its (topic, key), or its (topic, partition) when it has no key. */
export function laneKey(record: SinkRecord): string {
  return record.key === null ? `\u0000${record.topic}\u0000${record.partition}` : `${record.topic}\u0000${record.key}`
}

export interface SubscriptionOptions {
  id: string
  deliver: DeliverFn
  policy?: RetryPolicy
  /** Lanes (keys) delivered at the same time. */
  concurrency?: number
  /** Consecutive retriable failures (no success in between) that park the subscription. */
  parkAfterFailures?: number
  /** Failing without a single success for this long disables the subscription. */
  disableAfterMs?: number
  /**
   * Deliveries started per second at most (deliveryPolicy.rateLimitPerSecond; 0 or absent: no limit).
   * A token bucket of one second's worth: a quiet subscription may start that many at once, then
   * one every 1/rate s. Retries and probes count too: it is what the partner's endpoint receives.
   */
  rateLimitPerSecond?: number
}

export interface DeliveredInfo {
  attempts: number
  firstAttemptAt: number
  /** From the first attempt to the confirmation. */
  latencyMs: number
}

export interface FailedAttemptInfo {
  attempt: number
  error: unknown
  /** Undefined when no retry follows (dead letter or disabled). */
  retryInMs?: number
}

export interface DeadLetterInfo {
  attempts: number
  firstAttemptAt: number
  error: unknown
  /** exhausted: the retry schedule ran out; rejected: an error that is never retried. */
  reason: 'exhausted' | 'rejected'
}

export interface DeliveryQueueEvents {
  onDelivered?(subscriptionId: string, record: SinkRecord, info: DeliveredInfo): void
  onAttemptFailed?(subscriptionId: string, record: SinkRecord, info: FailedAttemptInfo): void
  /** Store the dead letter (topic + delivery log); a throw is retried, the lane waits meanwhile. */
  onDeadLetter(subscriptionId: string, record: SinkRecord, info: DeadLetterInfo): Promise<void> | void
  onParked?(subscriptionId: string, info: { consecutiveFailures: number; error: unknown }): void
  onUnparked?(subscriptionId: string): void
  onDisabled?(subscriptionId: string, info: { reason: EndpointDisabledReason; error: unknown }): void
}

export interface DeliveryQueueOptions {
  logger?: Logger
  random?: () => number
  now?: () => number
}

export type SubscriptionStatus = 'active' | 'parked' | 'disabled'

export interface SubscriptionStats {
  status: SubscriptionStatus
  paused: boolean
  buffered: number
  inFlight: number
  lanes: number
  /** Lanes whose head waits for a retry timer. */
  waiting: number
  consecutiveFailures: number
}

export interface Position {
  topic: string
  partition: number
  /** The next offset to read: everything below it is delivered, dead-lettered or skipped. */
  offset: string
}

export interface PosEntry {
  offset: number
  done: boolean
  /** When Kafka took the record (SinkRecord.appendedAt, else its event time): freshness counts from it. */
  at: number
}

export interface PartitionTrack {
  topic: string
  partition: number
  pending: Fifo<PosEntry>
  /** One past the highest offset enqueued or skipped. */
  floor: number
}

export interface Injected {
  deliver: DeliverFn | undefined
  policy: RetryPolicy | undefined
  resolve(): void
  reject(err: unknown): void
}

export interface Entry {
  record: SinkRecord
  /** Null for an injected record (no position of the subscription). */
  pos: PosEntry | null
  track: PartitionTrack | null
  attempts: number
  firstAttemptAt: number
  injected: Injected | null
}

export type LaneState = 'ready' | 'inflight' | 'waiting' | 'due'

export interface Lane {
  key: string
  entries: Fifo<Entry>
  state: LaneState
  timer: NodeJS.Timeout | undefined
}

export interface Sub {
  id: string
  deliver: DeliverFn
  policy: RetryPolicy
  concurrency: number
  parkAfterFailures: number
  disableAfterMs: number
  lanes: Map<string, Lane>
  /** Lanes with a fresh head, oldest first. */
  ready: Fifo<Lane>
  /** Lanes whose retry is due: served before fresh lanes. */
  due: Fifo<Lane>
  inFlight: number
  waiting: number
  buffered: number
  status: SubscriptionStatus
  paused: boolean
  removed: boolean
  consecutiveFailures: number
  failingSince: number | undefined
  partitions: Map<string, PartitionTrack>
  controller: AbortController
  /** Watched lane keys (`watch`): how many records of each were enqueued since. */
  watched: Map<string, { refs: number; enqueued: number }>
  /** The rate limit's bucket (undefined: unlimited) and the timer that pumps when a token is due. */
  rate: { perSecond: number; tokens: number; at: number; timer: NodeJS.Timeout | undefined } | undefined
}

/**
 * The span of one delivery attempt (OpenTelemetry's messaging conventions: a `process` operation),
 * a child of the event's trace context: the ingestion request's or the source's produce.
 */
export function deliverySpan(subscriptionId: string, entry: Entry, attempt: number): Span {
  const r = entry.record
  return startSpan(
    `deliver ${r.topic}`,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        ...kafkaAttributes('process', 'deliver', r.topic),
        [ATTR.messagingDestinationPartitionId]: String(r.partition),
        [ATTR.messagingKafkaOffset]: Number(r.offset),
        [ATTR.messagingMessageId]: r.eventId,
        [ATTR.cloudeventsEventId]: r.eventId,
        [ATTR.cloudeventsEventType]: r.eventType,
        'distributary.subscription.id': subscriptionId,
        'distributary.delivery.attempt': attempt,
        ...(entry.injected ? { 'distributary.delivery.redelivery': true } : {}),
      },
    },
    eventContext(r.headers),
  )
}

/** A subscription's controller: its signal goes to every call in flight (up to `concurrency` listeners). */
export function quietController(): AbortController {
  const c = new AbortController()
  setMaxListeners(0, c.signal)
  return c
}
