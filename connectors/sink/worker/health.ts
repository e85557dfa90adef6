/**
 * Freshness objective events (docs/freshness.md, "Breach and recovery events"): when a subscription's
 * freshness crosses its `freshnessSloSeconds` (status.ts), the worker holding it writes
 * `subscription.freshness.breached` or `.recovered` to subscriptions.health (schemas/topics.ts), one
 * record per publisher whose events the subscription receives, stamped with that publisher. The
 * partner that owns the subscription receives them without a grant (its audience), the publisher with
 * its own subscriptions. At least once: the change is applied to the run, and so to its stored status,
 * only after Kafka took the records; a crash before that finds the change again.
 */
import type { Producer } from '../../../common/kafka/index.ts'
import { grantAcceptsType } from '../../../control-plane/entitlements.ts'
import { contractSchema } from '../../../schemas/contracts.ts'
import type { AvroSerde } from '../../../schemas/serde/serde.ts'
import { eventTypesOf, type TopicSpec } from '../../../schemas/topics.ts'
import { createConverter, type Converter } from '../../source/json-avro.ts'
import { RecordEncoder } from '../../source/encoder.ts'
import type { SourceRecord } from '../../source/types.ts'
import type { GrantsCache } from './grants-cache.ts'
import type { Run } from './run.ts'

/** A freshness objective breached (since: when it began) or met again, as seen at one status report. */
export interface ObjectiveChange {
  run: Run
  status: 'BREACHED' | 'RECOVERED'
  freshnessSeconds: number
  objectiveSeconds: number | null
  /** When the breach began (ms since the epoch): for a recovery, the breach that ended. */
  breachedSince: number
  at: number
}

export interface HealthEventsOptions {
  /** The topic of the subscription health contract among the worker's topics (none: no events are written). */
  topic: TopicSpec | undefined
  serde: AvroSerde
  grants: GrantsCache
  producer(): Producer
}

export class HealthEvents {
  readonly #o: HealthEventsOptions
  readonly #encoder: RecordEncoder | undefined
  #converter: Converter | undefined

  constructor(o: HealthEventsOptions) {
    this.#o = o
    this.#encoder = o.topic
      ? new RecordEncoder({
          name: 'subscription health',
          source: 'distributary/sink-worker',
          serde: o.serde,
          topics: [o.topic],
        })
      : undefined
  }

  /** Writes the events of these changes; resolves once Kafka took them all (throws otherwise). */
  async publish(changes: readonly ObjectiveChange[]): Promise<void> {
    const topic = this.#o.topic
    if (!topic || !this.#encoder || changes.length === 0) return
    const records = changes.flatMap((c) => this.#records(topic, c))
    if (records.length === 0) return
    const topicMessages = await this.#encoder.encode(records)
    await this.#o.producer().sendBatch({ topicMessages, acks: -1 })
  }

  #records(topic: TopicSpec, c: ObjectiveChange): SourceRecord[] {
    const converter = (this.#converter ??= createConverter(contractSchema(topic.valueSchema)))
    const sub = c.run.sub
    return this.publishersOf(c.run).map((publisherId) => {
      const json = {
        manufacturerId: publisherId,
        partnerId: sub.partnerId,
        subscriptionId: sub._id,
        subscriptionName: sub.name,
        status: c.status,
        freshnessSeconds: c.freshnessSeconds,
        objectiveSeconds: c.objectiveSeconds,
        breachedSince: new Date(c.breachedSince).toISOString(),
        breachedForSeconds: c.status === 'RECOVERED' ? Math.max(0, c.at - c.breachedSince) / 1000 : null,
        sequence: c.at,
        occurredAt: new Date(c.at).toISOString(),
      }
      const { value, faults } = converter.convert(json)
      if (faults.length > 0) throw new Error(`subscription health event: ${faults[0]!.path} ${faults[0]!.message}`)
      return {
        topic: topic.name,
        key: { manufacturerId: publisherId, subscriptionId: sub._id },
        value,
        type: c.status === 'BREACHED' ? 'subscription.freshness.breached' : 'subscription.freshness.recovered',
        occurredAt: new Date(c.at),
        publisherId,
      }
    })
  }

  /**
   * The publishers whose events the run receives: those of the partner's accepted grants covering one of its event
   * types; none (a publisher's own subscription): the subscriber itself.
   */
  publishersOf(run: Run): string[] {
    const covering = this.#o.grants
      .of(run.sub.partnerId)
      .filter((g) => eventTypesOf(run.sub.eventTypes).some((t) => grantAcceptsType(g, t)))
      .map((g) => g.publisherId)
    return covering.length > 0 ? [...new Set(covering)].sort() : [run.sub.partnerId]
  }
}
