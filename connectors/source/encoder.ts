/**
 * A source's records as Kafka messages (the runner's encode stage, runner.ts): keys and values in the
 * Confluent wire format under their topic's contracts (TopicNameStrategy subjects, registered or found
 * once per topic), CloudEvents envelope headers, the position header, the publisher stamped; with
 * tracing on, the `send` span of the produce request they go out in.
 */
import type { Message, TopicMessages } from '../../common/kafka/index.ts'
import { DataError } from '../../common/errors.ts'
import {
  ATTR,
  endSpan,
  extractContext,
  headersOf,
  kafkaAttributes,
  linkOf,
  ROOT_CONTEXT,
  SpanKind,
  startSpan,
  tracingOn,
  type Span,
} from '../../common/tracing.ts'
import { contractSchema } from '../../schemas/contracts.ts'
import { HEADER, envelopeHeaders, newTraceparent, uuidv7 } from '../../schemas/headers.ts'
import type { AvroSerde } from '../../schemas/serde/serde.ts'
import { keySubject, valueSubject, type TopicSpec } from '../../schemas/topics.ts'
import { POSITION_HEADER, positionHeader } from './recovery.ts'
import type { SourceRecord } from './types.ts'

export interface TopicIds {
  keyId: number
  valueId: number
  subject: string
  version: number
}

/** Where a record keeps its encoded message once encoded (the runner's, not the plug-in's). */
const ENCODED = Symbol('encoded message')
type Encoded = { [ENCODED]?: Message }

export interface RecordEncoderOptions {
  /** The source instance's name (for errors). */
  name: string
  /** ce_source of its events. */
  source: string
  serde: AvroSerde
  /** The topics the source may write. */
  topics: readonly TopicSpec[]
  /** The organization the source publishes for (SourceRunnerOptions.publisherId). */
  publisherId?: string
}

export class RecordEncoder<V = unknown> {
  private readonly topics: Map<string, TopicSpec>
  private readonly ids = new Map<string, Promise<TopicIds>>()
  /** The `send` span of each encoded batch (tracing on), ended when the broker answered. */
  private readonly spans = new WeakMap<TopicMessages[], Span>()

  constructor(private readonly o: RecordEncoderOptions) {
    this.topics = new Map(o.topics.map((t) => [t.name, t]))
  }

  /** Key/value schema ids and the value schema version of a topic (registered once). */
  topicIds(topic: string): Promise<TopicIds> {
    let p = this.ids.get(topic)
    if (!p) {
      const spec = this.topics.get(topic)
      if (!spec)
        return Promise.reject(
          new DataError(`topic ${topic} is not one of this source's topics`, { connector: this.o.name, topic }),
        )
      p = (async () => {
        const keyId = await this.o.serde.register(keySubject(topic), contractSchema(spec.keySchema))
        const subject = valueSubject(topic)
        const valueSchema = contractSchema(spec.valueSchema)
        const valueId = await this.o.serde.register(subject, valueSchema)
        const found = await this.o.serde.client.lookup(subject, valueSchema)
        return { keyId, valueId, subject, version: found.version }
      })()
      p.catch(() => this.ids.delete(topic))
      this.ids.set(topic, p)
    }
    return p
  }

  /** The send span of an encoded batch (tracing on), handed over once: the runner ends it with the broker's answer. */
  takeSpan(topicMessages: TopicMessages[]): Span | undefined {
    const span = this.spans.get(topicMessages)
    this.spans.delete(topicMessages)
    return span
  }

  /**
   * Keys and values in the Confluent wire format, envelope headers and the position header, grouped
   * by topic. Assigns each record its event id (kept on a retry, so the same event keeps its id).
   */
  async encode(batch: SourceRecord<V>[]): Promise<TopicMessages[]> {
    const byTopic = new Map<string, { ids: TopicIds; messages: Message[] }>()
    for (const r of batch)
      if (!byTopic.has(r.topic)) byTopic.set(r.topic, { ids: await this.topicIds(r.topic), messages: [] })
    // Records without a trace context share the produce request's: its send span's, or (tracing off) a new trace.
    if (!tracingOn()) return this.encodeMessages(batch, byTopic, newTraceparent())
    const span = this.sendSpan(batch, byTopic.keys())
    let out: TopicMessages[]
    try {
      out = this.encodeMessages(batch, byTopic, headersOf(span.spanContext()).traceparent)
    } catch (err) {
      endSpan(span, err)
      throw err
    }
    this.spans.set(out, span)
    return out
  }

  private encodeMessages(
    batch: SourceRecord<V>[],
    byTopic: Map<string, { ids: TopicIds; messages: Message[] }>,
    batchTrace: string,
  ): TopicMessages[] {
    const serde = this.o.serde
    const now = new Date()
    // The records encoded here that carry a position share a batch tag (see positionHeader): after a
    // crash, recovery trusts a batch's positions only if all of its records reached Kafka.
    let positioned = 0
    for (const r of batch) if (r.position !== undefined && (r as Encoded)[ENCODED] === undefined) positioned++
    const tag = positioned > 0 ? `${uuidv7()} ${positioned}` : ''
    let last: { topic: string; ids: TopicIds; messages: Message[] } | undefined
    for (const r of batch) {
      if (last?.topic !== r.topic) {
        const t = byTopic.get(r.topic)!
        last = { topic: r.topic, ids: t.ids, messages: t.messages }
      }
      const kept = (r as Encoded)[ENCODED]
      if (kept !== undefined) {
        last.messages.push(kept) // a retry: the same bytes, id and headers as the first time
        continue
      }
      const ids = last.ids
      const id = r.id ?? uuidv7()
      r.id = id
      const headers = envelopeHeaders(
        id,
        r.type,
        this.o.source,
        r.occurredAt ?? now,
        ids.subject,
        ids.version,
        r.traceparent ?? batchTrace,
      )
      if (r.tracestate !== undefined && r.traceparent !== undefined) headers[HEADER.tracestate] = r.tracestate
      if (r.position !== undefined) headers[POSITION_HEADER] = positionHeader(r.position, tag)
      const publisher = this.publisherOf(r)
      if (publisher !== undefined) headers[HEADER.publisherId] = publisher
      const message: Message = {
        key: serde.encodeSync(ids.keyId, r.key),
        value: serde.encodeSync(ids.valueId, r.value),
        headers,
      }
      last.messages.push(message)
      // From here on the record is its bytes: its key and value objects are let go, so that a batch
      // waiting for its ack (and the one encoded behind it) holds no per-event object graph that the
      // garbage collector would copy and promote (see SourceRecord: read them before they are polled).
      ;(r as Encoded)[ENCODED] = message
      ;(r as { key: unknown }).key = undefined
      ;(r as { value: unknown }).value = undefined
    }
    return [...byTopic].map(([topic, t]) => ({ topic, messages: t.messages }))
  }

  /**
   * The span of one produce request (OpenTelemetry's messaging conventions: `send`). Records that
   * carry a trace context (an ingestion request's) are linked, the first one as the parent so the
   * request's trace shows its produce; the others keep this span's context as their creation context.
   */
  private sendSpan(batch: SourceRecord<V>[], topics: Iterable<string>): Span {
    const contexts = new Map<string, string | undefined>()
    for (const r of batch)
      if (r.traceparent !== undefined && !contexts.has(r.traceparent)) contexts.set(r.traceparent, r.tracestate)
    const carried = [...contexts].map(([traceparent, tracestate]) =>
      extractContext(tracestate !== undefined ? { traceparent, tracestate } : { traceparent }),
    )
    const names = [...topics]
    const links = carried.slice(1).flatMap((c) => linkOf(c) ?? [])
    return startSpan(
      names.length === 1 ? `send ${names[0]}` : 'send',
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          ...kafkaAttributes('send', 'send', names.length === 1 ? names[0] : undefined),
          [ATTR.messagingBatchMessageCount]: batch.length,
          [ATTR.cloudeventsEventSource]: this.o.source,
        },
        links,
      },
      carried[0] ?? ROOT_CONTEXT, // not the loop's context: a batch's trace is its records'
    )
  }

  /**
   * The publisher stamped on a record: the runner's own (a source's owner) or the record's. A record
   * that names another manufacturer than that (in publisherId, the value's or the key's
   * manufacturerId) is never produced: the platform stamps, the payload only claims.
   */
  private publisherOf(r: SourceRecord<V>): string | undefined {
    const stamped = this.o.publisherId ?? r.publisherId
    if (stamped === undefined) return undefined
    // checked per record on the ingest's hot path: no allocation unless a claim differs
    if (r.publisherId !== undefined && r.publisherId !== stamped) this.foreign(r, 'publisherId', r.publisherId, stamped)
    const value = r.value as { manufacturerId?: unknown } | null
    if (
      value !== null &&
      typeof value === 'object' &&
      value.manufacturerId !== undefined &&
      value.manufacturerId !== stamped
    )
      this.foreign(r, 'value.manufacturerId', value.manufacturerId, stamped)
    const key = r.key as { manufacturerId?: unknown } | null
    if (key !== null && typeof key === 'object' && key.manufacturerId !== undefined && key.manufacturerId !== stamped)
      this.foreign(r, 'key.manufacturerId', key.manufacturerId, stamped)
    return stamped
  }

  private foreign(r: SourceRecord<V>, field: string, claim: unknown, stamped: string): never {
    throw new DataError(
      `a record of source ${this.o.name} names manufacturer ${String(claim)} in ` +
        `${field}, but the source publishes for ${stamped}`,
      { connector: this.o.name, topic: r.topic, field },
    )
  }
}
