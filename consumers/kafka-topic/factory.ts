/**
 * The kafka-topic sink as the sink worker builds it for a subscription, and the producer every such
 * sink of a worker shares.
 */
import type { Kafka, Producer } from 'kafkajs'
import { ConfigError } from '../../common/errors.ts'
import type { Logger } from '../../common/logger.ts'
import type { SinkConnector, SinkContext } from '../../connectors/sink/types.ts'
import { pinsOf } from '../../control-plane/schema-pins.ts'
import type { SubscriptionDoc } from '../../control-plane/types.ts'
import type { AvroSerde } from '../../schemas/serde/serde.ts'
import type { TopicSpec } from '../../schemas/topics.ts'
import { topicsOf } from '../mongodb/factory.ts'
import { KafkaTopicSink, type KafkaTopicSinkConfig, type PartnerTopicWriter } from './sink.ts'

export function kafkaTopicSinkConfig(sub: SubscriptionDoc, topics: readonly TopicSpec[]): KafkaTopicSinkConfig {
  if (sub.sink.type !== 'kafka-topic' || !sub.sink.topic) throw new ConfigError(`subscription ${sub._id} has no partner topic`, { subscriptionId: sub._id, field: 'sink.type' })
  const read = topicsOf(sub.eventTypes, topics)
  if (read.length !== 1) throw new ConfigError(`kafka-topic subscription ${sub._id} reads ${read.length} topics; it reads one`, { subscriptionId: sub._id, field: 'eventTypes' })
  const spec = topics.find((t) => t.name === read[0])!
  const pinned = Object.entries(pinsOf(sub)).find(([eventType]) => eventType === spec.name || spec.eventTypes.includes(eventType))?.[1]
  return { topic: sub.sink.topic, sourceTopic: spec.name, ...(pinned !== undefined ? { pinnedVersion: pinned } : {}) }
}

/** One idempotent producer for the partner topics of a worker, replaced after a failed send. */
export class SharedPartnerTopicWriter implements PartnerTopicWriter {
  #producer: Promise<Producer> | null = null
  readonly admin

  constructor(
    private readonly kafka: Kafka,
    readonly serde: AvroSerde,
    private readonly logger: Logger,
  ) {
    this.admin = kafka.admin()
  }

  producer(): Promise<Producer> {
    if (!this.#producer) {
      const p = this.kafka.producer({ idempotent: true, maxInFlightRequests: 5, allowAutoTopicCreation: false })
      const ready = p.connect().then(() => p)
      ready.catch(() => {
        if (this.#producer === ready) this.#producer = null
      })
      this.#producer = ready
    }
    return this.#producer
  }

  failed(p: Producer): void {
    void this.#producer?.then((current) => {
      if (current !== p) return
      this.#producer = null
      p.disconnect().catch((err: unknown) => this.logger.debug('partner topic producer did not disconnect cleanly', { err }))
    }, () => undefined)
  }

  async close(): Promise<void> {
    const p = this.#producer
    this.#producer = null
    await Promise.allSettled([p?.then((x) => x.disconnect()), this.admin.disconnect()])
  }
}

/** A SinkFactory (connectors/sink/worker.ts) for kafka-topic subscriptions. */
export function kafkaTopicSinkFactory(writer: PartnerTopicWriter, topics: readonly TopicSpec[]) {
  return async (sub: SubscriptionDoc, ctx: SinkContext): Promise<SinkConnector<unknown>> => {
    const sink = new KafkaTopicSink(writer)
    await sink.start(kafkaTopicSinkConfig(sub, topics), ctx)
    return sink as SinkConnector<unknown>
  }
}
