/**
 * The kafka-topic sink as the sink worker builds it for a subscription, and the producer every such
 * sink of a worker shares.
 */
import {
  type Admin,
  createAdmin,
  createProducer,
  type Kafka,
  type Message,
  type Producer,
} from '../../common/kafka/index.ts'
import { ConfigError } from '../../common/errors.ts'
import { Limiter } from '../../common/limiter.ts'
import type { Logger } from '../../common/logger.ts'
import type { SinkConnector, SinkContext } from '../../connectors/sink/types.ts'
import { pinsOf } from '../../control-plane/schema-pins.ts'
import type { SubscriptionDoc } from '../../control-plane/types.ts'
import type { AvroSerde } from '../../schemas/serde/serde.ts'
import { topicsOf, type TopicSpec } from '../../schemas/topics.ts'
import { KafkaTopicSink, type KafkaTopicSinkConfig, type PartnerTopicWriter } from './sink.ts'

export function kafkaTopicSinkConfig(sub: SubscriptionDoc, topics: readonly TopicSpec[]): KafkaTopicSinkConfig {
  if (sub.sink.type !== 'kafka-topic' || !sub.sink.topic)
    throw new ConfigError(`subscription ${sub._id} has no partner topic`, {
      subscriptionId: sub._id,
      field: 'sink.type',
    })
  const read = topicsOf(sub.eventTypes, topics)
  if (read.length !== 1)
    throw new ConfigError(`kafka-topic subscription ${sub._id} reads ${read.length} topics; it reads one`, {
      subscriptionId: sub._id,
      field: 'eventTypes',
    })
  const spec = topics.find((t) => t.name === read[0])!
  const pinned = Object.entries(pinsOf(sub)).find(
    ([eventType]) => eventType === spec.name || spec.eventTypes.includes(eventType),
  )?.[1]
  return { topic: sub.sink.topic, sourceTopic: spec.name, ...(pinned !== undefined ? { pinnedVersion: pinned } : {}) }
}

interface Pending {
  topic: string
  messages: Message[]
  resolve: () => void
  reject: (err: unknown) => void
}

/**
 * One idempotent producer for the partner topics of a worker, replaced after a failed send, with
 * group commit: the records of every kafka-topic sink's `put` that arrive while the producer's
 * requests are in flight go out together in the next produce request (one `sendBatch` over all their
 * topics), as librdkafka's linger would gather them, but without waiting when the producer is idle.
 * A `put` resolves when its own records are acknowledged. Per-key order holds: the runtime never has
 * two puts of one key in flight, and the idempotent producer keeps the order of its requests per
 * partition (at most 5 in flight).
 */
export class SharedPartnerTopicWriter implements PartnerTopicWriter {
  #producer: Promise<Producer> | null = null
  #pending: Pending[] = []
  #inFlight = 0
  readonly #preparations = new Limiter(1)

  constructor(
    private readonly kafka: Kafka,
    readonly serde: AvroSerde,
    private readonly logger: Logger,
    private readonly options: { maxInFlight?: number; maxBatchRecords?: number } = {},
  ) {}

  producer(): Promise<Producer> {
    if (!this.#producer) {
      const p = createProducer(this.kafka, { idempotent: true, maxInFlightRequests: 5 })
      const ready = p.connect().then(() => p)
      ready.catch(() => {
        if (this.#producer === ready) this.#producer = null
      })
      this.#producer = ready
    }
    return this.#producer
  }

  /**
   * One topic preparation at a time, each with an admin client of its own: kafkajs' admin refreshes
   * the metadata of every topic it has ever been asked about, so on a shared admin a topic not in the
   * brokers' metadata yet (being created by another sink) or no longer (a deleted subscription's)
   * failed every later call with UNKNOWN_TOPIC_OR_PARTITION; 100 sinks starting at once kept failing
   * each other, and after one partner topic was deleted no sink could start again.
   */
  preparing<T>(task: (admin: Admin) => Promise<T>): Promise<T> {
    return this.#preparations.run(async () => {
      const admin = createAdmin(this.kafka)
      await admin.connect()
      try {
        return await task(admin)
      } finally {
        await admin.disconnect().catch(() => undefined)
      }
    })
  }

  failed(p: Producer): void {
    void this.#producer?.then(
      (current) => {
        if (current !== p) return
        this.#producer = null
        p.disconnect().catch((err: unknown) =>
          this.logger.debug('partner topic producer did not disconnect cleanly', { err }),
        )
      },
      () => undefined,
    )
  }

  send(topic: string, messages: Message[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ topic, messages, resolve, reject })
      this.#flush()
    })
  }

  #flush(): void {
    const maxInFlight = this.options.maxInFlight ?? 5
    const maxRecords = this.options.maxBatchRecords ?? 5000
    while (this.#pending.length > 0 && this.#inFlight < maxInFlight) {
      // one request: pending puts in arrival order, up to maxRecords (a single larger put goes alone)
      const batch: Pending[] = []
      let records = 0
      while (
        this.#pending.length > 0 &&
        (batch.length === 0 || records + this.#pending[0]!.messages.length <= maxRecords)
      ) {
        const next = this.#pending.shift()!
        records += next.messages.length
        batch.push(next)
      }
      this.#inFlight++
      void this.#sendBatch(batch).finally(() => {
        this.#inFlight--
        this.#flush()
      })
    }
  }

  async #sendBatch(batch: Pending[]): Promise<void> {
    const byTopic = new Map<string, Message[]>()
    for (const b of batch) {
      const list = byTopic.get(b.topic)
      if (list) list.push(...b.messages)
      else byTopic.set(b.topic, [...b.messages])
    }
    let producer: Producer | undefined
    try {
      producer = await this.producer()
      await producer.sendBatch({
        acks: -1,
        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
      })
    } catch (err) {
      if (producer) this.failed(producer)
      for (const b of batch) b.reject(err)
      return
    }
    for (const b of batch) b.resolve()
  }

  async close(): Promise<void> {
    const p = this.#producer
    this.#producer = null
    await p?.then((x) => x.disconnect()).catch(() => undefined)
  }
}

/** A SinkFactory (connectors/sink/types.ts) for kafka-topic subscriptions. */
export function kafkaTopicSinkFactory(writer: PartnerTopicWriter, topics: readonly TopicSpec[]) {
  return async (sub: SubscriptionDoc, ctx: SinkContext): Promise<SinkConnector<unknown>> => {
    const sink = new KafkaTopicSink(writer)
    await sink.start(kafkaTopicSinkConfig(sub, topics), ctx)
    return sink as SinkConnector<unknown>
  }
}
